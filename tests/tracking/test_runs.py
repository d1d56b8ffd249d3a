"""An MLflow run in a temporary workspace: params, curves, PNG, datasets, a model to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths


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
    ws = Paths(home)
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
    from pipeline.data import features as feats

    ws = Paths(home)
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


def test_mlflow_is_imported_by_the_tracking_package_alone() -> None:
    """The MLflow door is pipeline.tracking: no module outside it imports mlflow."""
    package = Path(tracking.__file__).parents[1]
    importers = sorted(
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if "import mlflow" in p.read_text() or "from mlflow" in p.read_text()
    )
    assert importers and all(name.startswith("tracking/") for name in importers), importers


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


def test_long_curves_go_through_log_batch_thinned_with_the_best_and_last_epoch(
    trained: str, home: Path
) -> None:
    """A 2,000-epoch curve is logged through MLflow's client as at most CURVE_POINTS points, the
    best and the last epoch among them, each with its own value; nothing is written behind
    MLflow's API (no SQL in the package)."""
    from pipeline.models.outcome import CURVE_POINTS, Outcome, curve_points

    ws = Paths(home)
    run = tracking.get_run(ws, trained)
    mcfg, tcfg = tracking.run_config(run)
    values = [1000.0 - e for e in range(2000)]
    values[1234] = 1.0  # the best epoch: 1,235
    outcome = Outcome({"val_mae": 1.0}, curve_points({"val_mae": values}, best_epoch=1235))
    model = tracking.load_model(ws, trained)
    from pipeline.data import features as feats

    windows = feats.build(ws, feats.FeatureSpec((56,)))[56]
    data = feats.data_params(ws, windows)
    run_id = tracking.log_training(ws, windows, mcfg, tcfg, model, "cpu", outcome, data)
    steps = tracking.metric_steps(ws, run_id, "val_mae_epoch")
    assert len(steps) <= CURVE_POINTS and {1, 1235, 2000} <= set(steps)
    assert all(steps[e] == values[e - 1] for e in steps)
    assert tracking.get_run(ws, run_id).metrics["val_mae"] == 1.0
    sources = Path(tracking.__file__).parents[1].rglob("*.py")
    assert not [p for p in sources if "insert into" in p.read_text().lower()]


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
