"""The workspace lock: one holder at a time, released when its process dies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import Workspace
from pipeline.errors import LockedError
from pipeline.lock import workspace_lock

from .conftest import FORTNIGHT, export, snapshot


def hold(home: Path) -> subprocess.Popen:
    """Another process holding the workspace lock for a minute."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pipeline.config import Workspace\n"
            "from pipeline.lock import workspace_lock\n"
            f"with workspace_lock(Workspace.resolve({str(home)!r})):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_holder_is_refused_at_once_and_named(home: Path):
    holder = hold(home)
    try:
        started = time.monotonic()
        busy = pytest.raises(LockedError, match=f"workspace busy .*pid {holder.pid}")
        with busy, workspace_lock(Workspace(home)):
            pass
        assert time.monotonic() - started < 1
    finally:
        holder.kill()
        holder.wait()
    with workspace_lock(Workspace(home)):  # the kernel released it with its holder
        pass


def test_two_daily_runs_do_not_both_proceed(production: Path, series: pd.DataFrame, cli):
    holder = hold(production)
    try:
        before = snapshot(production / "data")
        new = export(series.iloc[-FORTNIGHT - 20 : -FORTNIGHT + 1], production.parent / "new.csv")
        started = time.monotonic()
        result = cli("daily", new, "--series", "series")
        assert time.monotonic() - started < 5, "the second run exits at once"
        assert result.exit_code == 4
        assert "workspace busy" in result.stderr and str(holder.pid) in result.stderr
        assert snapshot(production / "data") == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("daily", new, "--series", "series").exit_code == 0, "the lock dies with its holder"
