"""The workspace lock: one holder at a time, released when its process dies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.errors import LockedError
from pipeline.data.lock import workspace_lock
from pipeline.data.workspace import Paths
from tests.conftest import FORTNIGHT, export, snapshot


def hold(home: Path) -> subprocess.Popen:
    """Another process holding the workspace lock for a minute."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pipeline.data.workspace import Paths\n"
            "from pipeline.data.lock import workspace_lock\n"
            f"with workspace_lock(Paths.resolve({str(home)!r})):\n"
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
        with busy, workspace_lock(Paths(home)):
            pass
        assert time.monotonic() - started < 1
    finally:
        holder.kill()
        holder.wait()
    with workspace_lock(Paths(home)):  # the kernel released it with its holder
        pass


def test_two_daily_runs_do_not_both_proceed(production: Path, series: pd.DataFrame, cli):
    holder = hold(production)
    try:
        before = snapshot(production / "data")
        new = export(series.iloc[-FORTNIGHT - 20 : -FORTNIGHT + 1], production.parent / "new.csv")
        started = time.monotonic()
        result = cli("daily", new, "--name", "series")
        assert time.monotonic() - started < 5, "the second run exits at once"
        assert result.exit_code == 4
        assert "workspace busy" in result.stderr and str(holder.pid) in result.stderr
        assert snapshot(production / "data") == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("daily", new, "--name", "series").exit_code == 0, "the lock dies with its holder"


def test_concurrent_ingests_of_different_files_both_land(home: Path, tmp_path: Path):
    """Two `viewcast ingest` processes at once, 200 series each, in a workspace that already
    holds one: the second waits for the first, and every series is there afterwards."""
    import json
    import os

    import numpy as np
    import pandas as pd

    from tests.conftest import invoke, synthetic_views, write_totals

    assert (
        invoke(
            home, "ingest", write_totals(tmp_path / "x.csv", synthetic_views(200)), "--name", "x"
        ).exit_code
        == 0
    )
    files = []
    for part in ("a", "b"):
        days = pd.date_range("2021-01-01", periods=150).strftime("%Y-%m-%d")
        rows = [
            {"series_id": f"{part}{i:03d}", "date": d, "views": int(v)}
            for i in range(200)
            for d, v in zip(days, np.arange(150) + i, strict=True)
        ]
        files.append(tmp_path / f"{part}.csv")
        pd.DataFrame(rows).to_csv(files[-1], index=False)
    env = os.environ | {"VIEWCAST_HOME": str(home), "VIEWCAST_WAIT": "120"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ingest", str(f)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    series = json.loads(invoke(home, "status", "--json").stdout)["series"]
    assert len(series) == 401 and {"x", "a000", "a199", "b000", "b199"} <= set(series)


def test_a_writer_waits_then_exits_4_while_a_reader_goes_on(two_series: Path, cli):
    holder = hold(two_series)
    try:
        started = time.monotonic()
        result = cli("--wait", "1", "features")
        waited = time.monotonic() - started
        assert result.exit_code == 4 and "waited 1 s" in result.stderr, result.output
        assert 1 <= waited < 10
        assert "Traceback" not in result.output
        assert cli("status").exit_code == 0, "readers need no lock"
    finally:
        holder.kill()
        holder.wait()
    assert cli("features").exit_code == 0


@pytest.mark.slow
def test_two_identical_sweeps_at_once_train_each_configuration_once(
    two_series: Path, tiny_grid: Path
):
    import os

    from pipeline import tracking

    env = os.environ | {"VIEWCAST_HOME": str(two_series), "VIEWCAST_WAIT": "300"}
    command = [sys.executable, "-m", "pipeline", "sweep", "--grid", str(tiny_grid)]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    ws = Paths(two_series)
    (sweep,) = tracking.runs(ws, tracking.Stage.SWEEP)
    runs = tracking.sweep_children(ws, sweep.run_id, finished_only=False)
    keys = [r.tags["config_key"] for r in runs]
    assert len(keys) == len(set(keys)) == 7, "the second waited, then found nothing left to do"
