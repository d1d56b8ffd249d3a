"""An MLflow run in a temporary workspace: params, curves, PNG, datasets, a model to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.config import Workspace
from pipeline.errors import ViewcastError


@pytest.fixture
def trained(cli, home: Path, raw: Path) -> str:
    """`viewcast train` on The Coding Train's daily views; returns the run id."""
    assert cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--name", "ct").exit_code == 0
    assert cli("features", "--lags", "7,56").exit_code == 0
    model = ("--lags", 56, "--model", "relu", "--layers", 2, "--width", 16)
    optimiser = ("--epochs", 30, "--patience", 10, "--optimizer", "adam", "--lr", "3e-3")
    result = cli("train", *model, *optimiser)
    assert result.exit_code == 0, result.output
    for column in ("train MAE", "val MAE", "epochs run", "best epoch", "seconds", "device"):
        assert column in result.stdout
    run_ids = [w for w in result.stdout.split() if len(w) == 32 and w.isalnum()]
    assert len(run_ids) == 1, result.stdout
    return run_ids[0]


def test_training_run_holds_params_curves_png_datasets_and_model(trained: str, home: Path) -> None:
    ws = Workspace(home)
    assert ws.tracking_uri.startswith("sqlite:///") and (home / "mlruns" / "mlflow.db").exists()
    run = tracking.get_run(ws, trained)
    assert run.stage == tracking.Stage.TRAIN
    params = run.params
    assert params["model.model"] == "relu" and params["model.layers"] == "2"
    assert params["train.optimizer"] == "adam" and params["train.lr"] == "0.003"
    assert params["data.series"] == "ct" and params["data.lags"] == "56"
    assert params["model.target_transform"] == "none"
    epochs = int(run.metrics["epochs_run"])
    assert 10 < epochs <= 30
    for key in ("train_loss", "val_mae_epoch", "grad_norm", "lr"):
        history = tracking.metric_steps(ws, trained, key)
        assert sorted(history) == list(range(1, epochs + 1)), key
    assert {"train_mae", "val_mae", "best_epoch"} <= set(run.metrics)
    assert not [k for k in run.metrics if "test" in k], "a training run never logs test"
    assert {"learning_curve.png", "model"} <= tracking.artifacts(ws, trained)
    assert sorted(context for context, _ in run.inputs) == ["training", "validation"]
    assert len({digest for _, digest in run.inputs}) == 2


def test_logged_model_loads_back_and_predicts_the_same(trained: str, home: Path) -> None:
    from pipeline import features as feats

    ws = Workspace(home)
    model = tracking.load_model(ws, trained)
    windows = feats.build(ws, feats.FeatureSpec((56,)))[56]
    val = windows.rows("val")
    pred = model.predict(windows.x(val))
    logged_val_mae = tracking.get_run(ws, trained).metrics["val_mae"]
    assert np.abs(pred - windows.y(val)).mean() == pytest.approx(logged_val_mae, rel=1e-6)
    again = tracking.load_model(ws, trained).predict(windows.x(val))
    np.testing.assert_array_equal(pred, again)


def test_train_never_opens_the_sealed_test_rows(cli, raw: Path, request) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    cli("features", "--lags", "7")
    opened = request.getfixturevalue("parquet_opens")  # spy only from here on
    result = cli("train", "--lags", 7, "--model", "linear", "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert opened and all(p.endswith("dev.parquet") for p in opened), opened


def test_train_refuses_bad_options_in_one_line(cli, home: Path, raw: Path) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    assert cli("train").exit_code == 2  # no features yet
    cli("features")
    for args, words in (
        (("--optimizer", "lbfgs"), "'lbfgs' is not one of 'sgd', 'momentum'"),
        (("--layers", 9), "--layers must be 1 to 6"),
        (("--series", "nope"), "unknown series"),
    ):
        result = cli("train", "--epochs", 1, *args)
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert "Traceback" not in result.output


def test_mlflow_is_imported_by_the_tracking_module_alone() -> None:
    """serving.py is the pyfunc class MLflow itself loads; only tracking.py imports it."""
    package = Path(tracking.__file__).parent
    importers = sorted(
        p.name
        for p in package.glob("*.py")
        if "import mlflow" in p.read_text() or "from mlflow" in p.read_text()
    )
    assert importers == ["serving.py", "tracking.py"]
    users = sorted(p.name for p in package.glob("*.py") if "serving" in p.read_text())
    assert users == ["serving.py", "tracking.py"]


def test_queries_find_runs_by_stage_and_the_workspace_alone(trained: str, home: Path) -> None:
    ws = Workspace(home)
    assert [r.run_id for r in tracking.runs(ws, tracking.Stage.TRAIN)] == [trained]
    assert tracking.runs(ws, tracking.Stage.SWEEP) == []
    other = Workspace(home.parent / "other")
    assert tracking.all_runs(other) == [], "a second workspace has its own store"
    with pytest.raises(ViewcastError, match="no run 'nosuchrun'"):
        tracking.get_run(ws, "nosuchrun")
    mcfg, tcfg = tracking.run_config(tracking.get_run(ws, trained))
    assert (mcfg.model, mcfg.layers, mcfg.width, mcfg.lags) == ("relu", 2, 16, 56)
    assert (tcfg.optimizer, tcfg.lr, tcfg.epochs, tcfg.patience) == ("adam", 3e-3, 30, 10)


def test_bulk_curves_write_what_mlflows_log_batch_writes(home: Path, monkeypatch) -> None:
    """The SQLite fast path and MLflow's own log_batch leave the same records behind, as MLflow's
    client reads them (history per step, and the latest value per key)."""
    ws = Workspace(home)
    s = tracking.session(ws)
    curves = [("val_mae_epoch", e, 100.0 / e) for e in range(1, 40)]
    curves += [("lr", e, 1e-3) for e in range(1, 40)]
    readings = []
    for fast in (True, False):
        run_id = s.client.create_run(s.experiment).info.run_id
        if fast:
            assert tracking.bulk_curves(ws, run_id, curves, 1_000)
        else:
            monkeypatch.setattr(tracking, "METRIC_COLUMNS", ["not", "these"])
            assert not tracking.bulk_curves(ws, run_id, curves, 1_000), "unknown schema: no"
            from mlflow.entities import Metric

            tracking.writer(ws, run_id).batch([Metric(k, v, 1_000, e) for k, e, v in curves])
        run = tracking.get_run(ws, run_id)
        history = {k: tracking.metric_steps(ws, run_id, k) for k in ("val_mae_epoch", "lr")}
        readings.append((run.metrics, history))
    assert readings[0] == readings[1]
    assert readings[0][0]["val_mae_epoch"] == pytest.approx(100.0 / 39)


def test_a_new_store_is_renamed_into_place_whole(tmp_path: Path, monkeypatch) -> None:
    """Dying during MLflow's schema migrations (here: just before the rename) leaves no
    mlflow.db at all, and the next command builds it."""
    import os

    ws = Workspace(tmp_path / "ws")
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
