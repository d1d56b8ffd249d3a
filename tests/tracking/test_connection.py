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


def test_the_migrations_run_once_per_process_and_later_stores_copy_the_first(
    tmp_path: Path, monkeypatch
) -> None:
    """A second new store in the same process is the first empty store's bytes, and MLflow
    reads and writes it like any store it built itself."""
    import mlflow

    from pipeline.tracking import connection

    monkeypatch.setattr(connection, "_EMPTY_STORES", {})
    first, second = Paths(tmp_path / "one"), Paths(tmp_path / "two")
    tracking.connect(first)
    empty = connection._EMPTY_STORES[mlflow.__version__]
    migrations = []
    monkeypatch.setattr(
        mlflow.tracking.MlflowClient, "search_experiments", lambda *a, **k: migrations.append(1)
    )
    second.mlruns.mkdir(parents=True)
    connection._create_store(mlflow, second.mlruns / "mlflow.db")
    assert migrations == [] and (second.mlruns / "mlflow.db").read_bytes() == empty
    monkeypatch.undo()
    run = tracking.create_run(second, "a run", tracking.Stage.TRAIN, {})
    run.metrics({"val_mae": 1.5})
    assert tracking.get_run(second, run.run_id).metrics == {"val_mae": 1.5}
    assert tracking.all_runs(first) == [], "each workspace has its own store"
