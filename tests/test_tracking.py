"""An MLflow run in a temporary workspace: params, curves, PNG, datasets, a model to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.config import Workspace


@pytest.fixture
def trained(cli, home: Path, raw: Path) -> str:
    """`viewcast train` on The Coding Train's daily views; returns the run id."""
    assert cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--series", "ct").exit_code == 0
    assert cli("features", "--lags", "7,56").exit_code == 0
    result = cli(
        "train", "--lags", 56, "--model", "relu", "--layers", 2, "--width", 16,
        "--epochs", 30, "--patience", 10, "--optimizer", "adam", "--lr", "3e-3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for column in ("train MAE", "val MAE", "epochs run", "best epoch", "seconds", "device"):
        assert column in result.stdout
    run_ids = [w for w in result.stdout.split() if len(w) == 32 and w.isalnum()]
    assert len(run_ids) == 1, result.stdout
    return run_ids[0]


def test_training_run_holds_params_curves_png_datasets_and_model(trained: str, home: Path) -> None:
    ws = Workspace(home)
    mlflow = tracking.connect(ws)
    assert ws.tracking_uri.startswith("sqlite:///") and (home / "mlruns" / "mlflow.db").exists()
    client = mlflow.tracking.MlflowClient()
    run = client.get_run(trained)
    params = run.data.params
    assert params["model.model"] == "relu" and params["model.layers"] == "2"
    assert params["train.optimizer"] == "adam" and params["train.lr"] == "0.003"
    assert params["data.series"] == "ct" and params["data.lags"] == "56"
    assert params["model.target_transform"] == "none"
    epochs = int(run.data.metrics["epochs_run"])
    assert 10 < epochs <= 30
    for key in ("train_loss", "val_mae_epoch", "grad_norm", "lr"):
        history = client.get_metric_history(trained, key)
        assert [m.step for m in history] == list(range(1, epochs + 1)), key
    assert {"train_mae", "val_mae", "best_epoch"} <= set(run.data.metrics)
    assert not [k for k in run.data.metrics if "test" in k], "a training run never logs test"
    artifacts = {a.path for a in client.list_artifacts(trained)}
    assert {"learning_curve.png", "model"} <= artifacts
    contexts = sorted(
        tag.value
        for inp in run.inputs.dataset_inputs
        for tag in inp.tags
        if tag.key.endswith("context")
    )
    assert contexts == ["training", "validation"]
    digests = {inp.dataset.digest for inp in run.inputs.dataset_inputs}
    assert len(digests) == 2


def test_logged_model_loads_back_and_predicts_the_same(trained: str, home: Path) -> None:
    from pipeline import features as feats

    ws = Workspace(home)
    model = tracking.load_model(ws, trained)
    windows = feats.build(ws, feats.FeatureSpec((56,)))[56]
    val = windows.rows("val")
    pred = model.predict(windows.x(val))
    mlflow = tracking.connect(ws)
    logged_val_mae = mlflow.tracking.MlflowClient().get_run(trained).data.metrics["val_mae"]
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
        (("--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'"),
        (("--layers", 9), "--layers must be 1 to 6"),
        (("--series", "nope"), "unknown series"),
    ):
        result = cli("train", "--epochs", 1, *args)
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert "Traceback" not in result.output
