"""Named queries: runs by stage, by workspace, a run's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths


def test_queries_find_runs_by_stage_and_the_workspace_alone(trained: str, home: Path) -> None:
    ws = Paths(home)
    assert [r.run_id for r in tracking.runs(ws, tracking.Stage.TRAIN)] == [trained]
    assert tracking.runs(ws, tracking.Stage.SWEEP) == []
    other = Paths(home.parent / "other")
    assert tracking.all_runs(other) == [], "a second workspace has its own store"
    with pytest.raises(ViewcastError, match="no run 'nosuchrun'"):
        tracking.get_run(ws, "nosuchrun")
    mcfg, tcfg = tracking.run_config(tracking.get_run(ws, trained))
    assert (mcfg.model, mcfg.layers, mcfg.width, mcfg.lags) == ("relu", 2, 16, 56)
    assert (tcfg.optimizer, tcfg.lr, tcfg.epochs, tcfg.patience) == ("adam", 3e-3, 30, 10)
