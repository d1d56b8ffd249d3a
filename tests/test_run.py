"""`viewcast run`: the main job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import synthetic_views, write_totals

pytestmark = pytest.mark.slow  # end to end: `viewcast run`


def test_run_is_the_whole_job_and_reruns_safely(home: Path, tiny_grid: Path, cli):
    files = [
        write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        for seed, name in ((0, "alpha"), (1, "beta"))
    ]
    result = cli("run", *files, "--grid", tiny_grid, "--max-minutes", "5")
    assert result.exit_code == 0, result.output
    out = result.output
    for stage in ("1. ingest", "2. features", "3. sweep", "4. select", "5. sealed test"):
        assert stage in out
    assert "7 of 7 configurations trained" in out
    for row in ("(champion)", "naive (baseline)", "seasonal-naive (baseline)"):
        assert row in out
    final = json.loads((home / "reports" / "final.json").read_text())
    assert final["series"] == 2 and final["champion"]["run_id"] in out

    again = cli("run", *files, "--grid", tiny_grid, "--json")
    assert again.exit_code == 0, again.output
    assert "store unchanged" in again.stderr  # --json: the tables went to stderr
    assert "0 of 7 configurations trained" in again.stderr
    assert json.loads(again.stdout)["champion"] == final["champion"]
    assert "the test was finalized on" in again.stderr
    assert json.loads((home / "reports" / "final.json").read_text()) == final
