"""Training: loss goes down on real data, GD reaches least squares, seeds repeat, BN evals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import read_views
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models import device_rows
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.models.train import TrainConfig, fit


@pytest.fixture(scope="module")
def coding_train(tmp_path_factory, raw_dir=Path(__file__).resolve().parents[2] / "data" / "raw"):
    """Lag windows 7 and 56 of The Coding Train's 2021 daily views (real data)."""
    ws = Paths(tmp_path_factory.mktemp("ws"))
    Store(ws).ingest([read_views(raw_dir / "codingtrain-2021" / "Totals.csv", "ct")])
    return feats.build(ws, feats.FeatureSpec((7, 56)))


def test_loss_goes_down_on_real_data(coding_train) -> None:
    result = fit(
        coding_train[56],
        ModelConfig(56, "relu", 2, 32),
        TrainConfig(epochs=60, lr=3e-3, patience=0, seed=1, restore_best=False),
    )
    losses = result.history["train_loss"]
    assert len(losses) == 60
    assert losses[-1] < 0.5 * losses[0]
    rows = coding_train[56].rows("train")
    naive = np.abs(coding_train[56].y(rows) - coding_train[56].x(rows)[:, 0]).mean()
    assert result.train_mae < naive, "60 epochs must fit better than the one-day shift"
    assert all(g > 0 for g in result.history["grad_norm"])


def test_linear_gradient_descent_converges_to_least_squares(coding_train) -> None:
    windows = coding_train[7]
    cfg = ModelConfig(7, "linear")
    exact = fit(windows, cfg, TrainConfig(solver="lstsq"))
    gd = fit(
        windows,
        cfg,
        TrainConfig(
            optimizer="adam", lr=0.02, loss="mse", epochs=3000, patience=0, restore_best=False
        ),
    )
    x = windows.x(windows.rows("train"))
    y = windows.y(windows.rows("train"))
    mse_exact = np.mean((exact.model.predict(x) - y) ** 2)
    mse_gd = np.mean((gd.model.predict(x) - y) ** 2)
    assert mse_gd == pytest.approx(mse_exact, rel=0.01)
    w_exact, w_gd = exact.model.net.weight.detach(), gd.model.net.weight.detach()
    assert torch.linalg.vector_norm(w_gd - w_exact) < 0.01 * torch.linalg.vector_norm(w_exact)


def test_huber_lies_between_mae_and_mse_on_the_training_days(coding_train) -> None:
    """A linear model fitted (to convergence: cosine decay) with each loss: mae gives the lowest
    training MAE, mse the lowest training MSE, and huber, quadratic near 0 and linear beyond,
    lands between them on both."""
    windows = coding_train[7]
    x, y = windows.x(windows.rows("train")), windows.y(windows.rows("train"))
    errors = {}
    for loss in ("mae", "huber", "mse"):
        tcfg = TrainConfig(
            lr=0.03, schedule="cosine", loss=loss, epochs=700, patience=0, restore_best=False
        )
        result = fit(windows, ModelConfig(7, "linear"), tcfg)
        errors[loss] = result.model.predict(x) - y
    mae = {k: np.abs(e).mean() for k, e in errors.items()}
    mse = {k: (e**2).mean() for k, e in errors.items()}
    assert mae["mae"] < mae["huber"] < mae["mse"]
    assert mse["mse"] < mse["huber"] < mse["mae"]
    with pytest.raises(ViewcastError, match="hgb family's loss is mae or mse"):
        fit(windows, ModelConfig(7, "hgb"), TrainConfig(loss="huber", epochs=5))


def test_same_config_and_seed_give_the_same_result(coding_train) -> None:
    cfg = ModelConfig(56, "relu", 2, 16, dropout=0.1)
    tcfg = TrainConfig(epochs=15, batch_size=32, seed=7, patience=0)
    a, b = fit(coding_train[56], cfg, tcfg), fit(coding_train[56], cfg, tcfg)
    assert a.history == b.history
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)
    c = fit(coding_train[56], cfg, TrainConfig(epochs=15, batch_size=32, seed=8, patience=0))
    assert c.history != a.history


def test_early_stopping_restores_the_best_validation_weights(coding_train) -> None:
    result = fit(
        coding_train[56],
        ModelConfig(56, "relu", 3, 100),
        TrainConfig(epochs=400, lr=1e-2, patience=20),
    )
    assert result.epochs_run < 400, "a 3x100 net on 245 rows must overfit and stop early"
    assert result.epochs_run == result.best_epoch + 20
    best = result.history["val_mae"][result.best_epoch - 1]
    assert result.val_mae == pytest.approx(best, rel=1e-5)
    assert min(result.history["val_mae"]) == best


@pytest.mark.parametrize("transform", ["none", "log1p"])
@pytest.mark.parametrize("scaling", ["none", "window-mean"])
def test_transforms_and_scaling_train_and_round_trip(coding_train, transform, scaling) -> None:
    cfg = ModelConfig(7, "linear", target_transform=transform, scaling=scaling)
    result = fit(coding_train[7], cfg, TrainConfig(solver="lstsq"))
    # a linear model on this channel is within 20% of the level, whatever the scale it is fitted on
    assert result.val_mae < 0.2 * coding_train[7].y().mean()


def test_bad_configs_are_refused(coding_train) -> None:
    with pytest.raises(ViewcastError, match="--layers must be 1 to 6"):
        ModelConfig(56, "relu", 7)
    with pytest.raises(ViewcastError, match="unknown optimizer 'lbfgs'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ViewcastError, match="lstsq is for --model linear"):
        fit(coding_train[56], ModelConfig(56, "relu"), TrainConfig(solver="lstsq"))
    for field, value, line in [
        ("momentum", 1.0, "--momentum must be in [0, 1), got 1"),
        ("alpha", -0.1, "--alpha must be in [0, 1), got -0.1"),
        ("weight_decay", -1.0, "--weight-decay must be 0 or more, got -1"),
        ("weight_decay", float("nan"), "--weight-decay must be 0 or more, got nan"),
        ("patience", -1, "--patience must be 0 (never stop early) or more, got -1"),
        ("clip", -0.5, "--clip must be 0 (no clipping) or more, got -0.5"),
        ("warmup_epochs", -2.0, "--warmup-epochs must be 0 or more, got -2"),
        ("step_epochs", 0, "--step-epochs must be at least 1, got 0"),
        ("gamma", 0.0, "--gamma must be in (0, 1], got 0"),
    ]:
        with pytest.raises(ViewcastError) as err:
            TrainConfig(**{field: value})
        assert str(err.value) == line
    TrainConfig(momentum=0.0, alpha=0.0, patience=0, gamma=1.0)  # the edges that are allowed
    if not torch.cuda.is_available():
        with pytest.raises(ViewcastError, match="no CUDA device"):
            TrainConfig(device="cuda") and fit(
                coding_train[7], ModelConfig(7, "linear"), TrainConfig(device="cuda")
            )


def test_gradient_clipping_bounds_the_step(coding_train) -> None:
    cfg = ModelConfig(7, "linear")
    initial = fit(coding_train[7], cfg, TrainConfig(epochs=0)).model  # same seed: same start
    start = torch.cat([p.detach().flatten() for p in initial.net.parameters()])
    result = fit(
        coding_train[7],
        cfg,
        TrainConfig(optimizer="sgd", lr=1.0, clip=0.01, epochs=1, patience=0, restore_best=False),
    )
    end = torch.cat([p.detach().flatten() for p in result.model.net.parameters()])
    assert result.history["grad_norm"][0] > 0.01, "the unclipped norm is what gets recorded"
    assert torch.linalg.vector_norm(end - start) <= 0.01 + 1e-6


def test_fit_follows_the_warmup_schedule_step_by_step(coding_train) -> None:
    from pipeline.models.optim import get_lr

    tcfg = TrainConfig(
        epochs=12, batch_size=0, lr=0.01, schedule="cosine", warmup_epochs=4, patience=0
    )
    result = fit(coding_train[7], ModelConfig(7, "linear"), tcfg)
    expected = [get_lr(s, 12, 0.01, "cosine", warmup_steps=4) for s in range(12)]
    assert result.history["lr"] == pytest.approx(expected)
    assert result.history["lr"][:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])


def test_normalisation_uses_training_rows_only(coding_train) -> None:
    windows = coding_train[7]
    result = fit(windows, ModelConfig(7, "linear"), TrainConfig(solver="lstsq"))
    train_x = windows.x(windows.rows("train"))
    everything = windows.x()
    np.testing.assert_allclose(result.model.x_mean.numpy(), train_x.mean(0), rtol=1e-5)
    assert not np.allclose(result.model.x_mean.numpy(), everything.mean(0), rtol=1e-3)
    np.testing.assert_allclose(
        result.model.y_mean.numpy(), windows.y(windows.rows("train")).mean(), rtol=1e-5
    )


@pytest.fixture(scope="module")
def kaggle10(tmp_path_factory, raw_dir=Path(__file__).resolve().parents[2] / "data" / "raw"):
    """Lag window 14 of the 10 Wikipedia pages (real data): one global model over 10 series."""
    ws = Paths(tmp_path_factory.mktemp("k10"))
    Store(ws).ingest([read_views(raw_dir / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv")])
    return feats.build(ws, feats.FeatureSpec((14,)))[14]


def test_sampled_epochs_gather_windows_batch_by_batch(kaggle10, monkeypatch) -> None:
    """--rows-per-epoch: no (rows, N) window matrix is built (x() is never called), each epoch
    is the seeded number of drawn windows, validation is scored in chunks over every
    validation window and equals the model's MAE scored the ordinary way, and a seed repeats."""

    windows = kaggle10
    cfg = ModelConfig(14, "relu", 2, 16, target_transform="log1p")
    tcfg = TrainConfig(epochs=6, lr=3e-3, batch_size=128, rows_per_epoch=1000, patience=0, seed=4)
    monkeypatch.setattr(device_rows, "SCORE_CHUNK", 37)
    monkeypatch.setattr(device_rows, "NORMALISATION_ROWS", 500)
    with monkeypatch.context() as m:
        m.setattr(feats.LagWindows, "x", lambda *a: pytest.fail("a window matrix was built"))
        result = fit(windows, cfg, tcfg)
        again = fit(windows, cfg, tcfg)
    for a, b in zip(
        result.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert result.rows == {"train": len(windows.rows("train")), "val": len(windows.rows("val"))}
    assert len(result.history["train_loss"]) == 6
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    val = windows.rows("val")
    np.testing.assert_allclose(result.val_pred, windows.predict(result.model, val), rtol=1e-5)
    expected = np.abs(windows.predict(result.model, val) - windows.y(val)).mean()
    assert result.val_mae == pytest.approx(expected, rel=1e-5)
    assert result.val_mae == pytest.approx(min(result.history["val_mae"]), rel=1e-5)
    naive = np.abs(windows.lag1(val) - windows.y(val)).mean()
    assert result.val_mae < 1.5 * naive


def test_chunked_prediction_is_the_whole_matrix_prediction(kaggle10) -> None:
    model = ViewsModel(ModelConfig(14, "relu", 1, 8)).eval()
    rows = kaggle10.rows("val")
    whole = model.predict(kaggle10.x(rows))
    # GEMM blocking reorders float32 sums: the error scales with the largest output, not each one
    scale = float(np.abs(whole).max())
    np.testing.assert_allclose(
        kaggle10.predict(model, rows, chunk=33), whole, rtol=1e-5, atol=1e-6 * scale
    )
    np.testing.assert_array_equal(kaggle10.lag1(rows), kaggle10.x(rows)[:, 0])


def test_each_epoch_validates_on_a_sample_and_the_end_on_every_window(kaggle10, monkeypatch):
    """Past VALIDATION_ROWS validation windows, an epoch's val MAE (early stopping) is that of
    a seeded sample of them, and the run's val MAE and forecasts are those of every window."""

    windows = kaggle10
    val = windows.rows("val")
    monkeypatch.setattr(device_rows, "VALIDATION_ROWS", len(val) // 3)
    cfg = ModelConfig(14, "relu", 1, 8, target_transform="log1p")
    tcfg = TrainConfig(epochs=3, lr=3e-3, batch_size=128, rows_per_epoch=600, patience=0)
    result = fit(windows, cfg, tcfg)
    whole = np.abs(windows.predict(result.model, val) - windows.y(val)).mean()
    assert result.val_mae == pytest.approx(whole, rel=1e-5)
    np.testing.assert_allclose(result.val_pred, windows.predict(result.model, val), rtol=1e-5)
    assert result.history["val_mae"][-1] != pytest.approx(whole, rel=1e-3), "a sample, not all"
    assert abs(result.history["val_mae"][-1] / whole - 1) < 0.25, "the sample is representative"


def test_windows_too_many_to_gather_train_only_on_sampled_epochs(kaggle10, monkeypatch):
    """Past FULL_ROWS_LIMIT lag values nothing gathers every window: a full-pass descent is
    refused with the way out, while the baselines (naive, closed form) score and solve on the
    series array: the naive's val MAE is the ordinary one, and the closed form solved on a
    sample that is every training window equals the closed form on the window matrix."""

    windows = kaggle10
    lstsq = TrainConfig(solver="lstsq", loss="mse")
    linear = ModelConfig(14, "linear", scaling="window-mean")
    gathered = fit(windows, linear, lstsq)
    monkeypatch.setattr(device_rows, "FULL_ROWS_LIMIT", 1000)
    with pytest.raises(ViewcastError, match="too many to gather at once: train on sampled"):
        fit(windows, ModelConfig(14, "relu", 1, 8), TrainConfig(epochs=2))
    with monkeypatch.context() as m:
        m.setattr(feats.LagWindows, "x", lambda *a: pytest.fail("a window matrix was built"))
        naive = fit(windows, ModelConfig(14, "naive"), TrainConfig())
        sampled = fit(windows, linear, lstsq)
    val = windows.rows("val")
    x_14 = windows.x(val)[:, -1]  # a naive on 14 lags forecasts x_14 (7: the seasonal naive)
    assert naive.val_mae == pytest.approx(np.abs(x_14 - windows.y(val)).mean())
    assert len(windows.rows("train")) <= device_rows.NORMALISATION_ROWS  # the sample is every row
    state = sampled.model.state_dict()
    for name, value in gathered.model.state_dict().items():
        torch.testing.assert_close(state[name], value, rtol=1e-3, atol=1e-4)
    assert sampled.val_mae == pytest.approx(gathered.val_mae, rel=1e-4)
