"""One stage each, as the entry points call them: what each says when its input is missing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import jobs
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths


def test_each_stage_names_the_command_its_input_needs(two_series: Path) -> None:
    ws = Paths(two_series)
    assert jobs.check(ws) == [], "a fresh workspace checks clean (store and MLflow)"
    assert jobs.leaderboard(ws) == []
    for call, words in (
        (lambda: jobs.select(ws), "no sweep in this workspace yet: run `viewcast sweep` first"),
        (lambda: jobs.submit(ws), "no champion yet: run `viewcast select` first"),
        (lambda: jobs.finalize(ws), "no champion yet: run `viewcast select` first"),
        (lambda: jobs.refit(ws), "run `viewcast finalize` first"),
        (lambda: jobs.plot(ws, "nosuchrun"), "nosuchrun"),
    ):
        with pytest.raises(ViewcastError, match=re.escape(words)):
            call()


def test_the_lock_is_taken_here_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    ws = Paths(tmp_path / "ws")
    script = (
        "from pathlib import Path\n"
        "from pipeline import jobs\n"
        "from pipeline.data.workspace import Paths\n"
        f"with jobs.locked(Paths(Path({str(ws.home)!r}))):\n"
        "    print('held')\n"
    )
    second = [sys.executable, "-c", script]
    with jobs.locked(ws):
        busy = subprocess.run(second, capture_output=True, text=True, timeout=60)
    assert busy.returncode != 0 and "LockedError" in busy.stderr and "workspace busy" in busy.stderr
    free = subprocess.run(second, capture_output=True, text=True, timeout=60)
    assert free.returncode == 0 and free.stdout.strip() == "held"
