"""The MLflow store: created whole, and the only package that imports mlflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths


def test_mlflow_is_imported_by_the_tracking_package_alone() -> None:
    """The MLflow door is pipeline.tracking: no module outside it imports mlflow."""
    package = Path(tracking.__file__).parents[1]
    importers = sorted(
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if "import mlflow" in p.read_text() or "from mlflow" in p.read_text()
    )
    assert importers and all(name.startswith("tracking/") for name in importers), importers


def test_a_new_store_is_renamed_into_place_whole(tmp_path: Path, monkeypatch) -> None:
    """Dying during MLflow's schema migrations (here: just before the rename) leaves no
    mlflow.db at all, and the next command builds it."""
    import os

    ws = Paths(tmp_path / "ws")
    real = os.replace

    def die(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        tracking.connect(ws)
    monkeypatch.setattr(os, "replace", real)
    assert not (ws.mlruns / "mlflow.db").exists() and not list(ws.mlruns.glob(".mlflow-*"))
    tracking.connect(ws)
    assert tracking.all_runs(ws) == [] and (ws.mlruns / "mlflow.db").stat().st_size > 0
