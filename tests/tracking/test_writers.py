"""Run writers: params, curves, figures, datasets and the model of a training run."""

from __future__ import annotations

from pathlib import Path

from pipeline import jobs, tracking
from pipeline.data.workspace import Paths


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


def test_train_never_opens_the_sealed_test_rows(cli, raw: Path, request) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    cli("features", "--lags", "7")
    opened = request.getfixturevalue("parquet_opens")  # spy only from here on
    result = cli("train", "--lags", 7, "--model", "linear", "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert opened and all(p.endswith("dev.parquet") for p in opened), opened


def test_train_refuses_bad_options_in_one_line(cli, home: Path, raw: Path) -> None:
    cli("ingest", raw / "codingtrain-2021" / "Totals.csv")
    first = cli("train", "--epochs", 1)  # no features yet: train makes them (issue 29)
    assert first.exit_code == 0 and "features: none recorded yet, made them" in first.stdout
    for args, words in (
        (("--optimizer", "lbfgs"), "'lbfgs' is not one of 'sgd', 'momentum'"),
        (("--layers", 9), "--layers must be 1 to 6"),
        (("--series", "nope"), "unknown series"),
    ):
        result = cli("train", "--epochs", 1, *args)
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert "Traceback" not in result.output


def test_long_curves_go_through_log_batch_thinned_with_the_best_and_last_epoch(
    trained: str, home: Path
) -> None:
    """A 2,000-epoch curve is logged through MLflow's client as at most CURVE_POINTS points, the
    best and the last epoch among them, each with its own value, and kept whole in the model
    folder; nothing is written behind MLflow's API (no SQL in the package)."""
    from pipeline.models.outcome import CURVE_POINTS, Outcome, curve_points, full_curves

    ws = Paths(home)
    run = tracking.get_run(ws, trained)
    mcfg, tcfg = tracking.run_config(run)
    values = [1000.0 - e for e in range(2000)]
    values[1234] = 1.0  # the best epoch: 1,235
    history = {"train_loss": [2.0 + (e % 7) for e in range(2000)], "val_mae": values}
    history["grad_norm"] = [1.0 + (e % 5) for e in range(2000)]
    history["train_loss"][1500] = 0.5  # the lowest training loss: epoch 1,501
    outcome = Outcome({"val_mae": 1.0}, curve_points(history, best_epoch=1235))
    model = tracking.load_model(ws, trained)
    from pipeline.data import features as feats

    windows = feats.build(ws, feats.FeatureSpec((56,)))[56]
    data = feats.data_params(ws, windows)
    run_id = tracking.log_training(ws, windows, mcfg, tcfg, model, "cpu", outcome, data)
    steps = tracking.metric_steps(ws, run_id, "val_mae_epoch")
    assert len(steps) <= CURVE_POINTS and {1, 1235, 2000} <= set(steps)
    assert all(steps[e] == values[e - 1] for e in steps)
    assert tracking.get_run(ws, run_id).metrics["val_mae"] == 1.0
    curves = tracking.epoch_curves(ws, run_id)
    assert curves["train_loss"][0] == curves["grad_norm"][0] == sorted(steps), "shared epochs"
    assert 1501 in curves["train_loss"][0] and min(curves["train_loss"][1]) == 0.5
    png = jobs.plot(ws, run_id)  # drawn from the thinned curves, on their own epochs
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # with the curves file in its model folder (what training_outcome writes), a run's curves
    # are read back at every epoch, non-finite ones left out; MLflow still holds the thinned
    history["grad_norm"][7] = float("inf")  # a diverged step: not drawn, not logged
    outcome.model_files = [full_curves(history)]
    full = tracking.log_training(ws, windows, mcfg, tcfg, model, "cpu", outcome, data)
    assert tracking.metric_steps(ws, full, "val_mae_epoch") == steps
    every = tracking.epoch_curves(ws, full)
    assert every["val_mae_epoch"] == (list(range(1, 2001)), values)
    assert every["train_loss"] == (list(range(1, 2001)), history["train_loss"])
    assert every["grad_norm"][0] == [e for e in range(1, 2001) if e != 8]
    assert jobs.plot(ws, full).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sources = Path(tracking.__file__).parents[1].rglob("*.py")
    assert not [p for p in sources if "insert into" in p.read_text().lower()]
