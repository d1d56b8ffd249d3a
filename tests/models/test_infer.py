"""NumPy inference: a saved model's forward pass without torch, checked against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.models.config import ModelConfig


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(lags=7, model="linear", target_transform="log1p", scaling="window-mean"),
        ModelConfig(lags=7, model="sigmoid", width=5),
        ModelConfig(
            lags=14,
            model="relu",
            layers=2,
            width=8,
            batchnorm=True,
            dropout=0.2,
            target_transform="log1p",
            scaling="window-mean",
        ),
        ModelConfig(lags=7, model="relu", layers=3, width=4, dropout=0.1),
        ModelConfig(lags=7, model="naive"),
        # robust scalings; an even window: the median is the lower middle value in both
        ModelConfig(lags=14, model="relu", layers=1, width=6, scaling="window-median"),
        ModelConfig(lags=7, model="linear", target_transform="log1p", scaling="window-median"),
        ModelConfig(lags=28, model="relu", layers=1, width=6, scaling="last-week-mean"),
        ModelConfig(lags=1, model="linear", scaling="last-week-mean"),  # fewer than 7 days
        # the weekday calendar: 7 indicators after the standardised lags
        ModelConfig(lags=7, model="linear", scaling="window-mean", calendar="weekday"),
        ModelConfig(lags=14, model="relu", layers=2, width=6, batchnorm=True, calendar="weekday"),
        ModelConfig(lags=7, model="linear", scaling="window-mean", horizon=5),  # direct
        ModelConfig(lags=14, model="relu", layers=2, width=6, calendar="weekday", horizon=3),
        ModelConfig(lags=7, model="sigmoid", width=5, target_transform="log1p", horizon=4),
        ModelConfig(lags=367, recent=7, model="linear", scaling="window-mean"),  # a year back
        ModelConfig(lags=367, recent=14, model="relu", layers=1, width=4, scaling="window-median"),
        ModelConfig(
            lags=367, recent=28, model="relu", width=4, scaling="last-week-mean", horizon=2
        ),
    ],
)
def test_numpy_inference_matches_torch(cfg: ModelConfig, tmp_path: Path):
    import torch

    from pipeline.models import infer
    from pipeline.models.families import ViewsModel, save

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.lognormal(6, 1, (64, cfg.lags))
    model = ViewsModel(cfg)
    model.fit_normalisation(torch.tensor(x, dtype=torch.float32), torch.tensor(x[:, 0] * 1.1))
    for module in model.modules():  # moving averages away from their initial 0 and 1
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    save(model, tmp_path)
    weekday = rng.integers(0, 7, len(x))  # ignored by a model without the calendar
    loaded = infer.load(tmp_path)
    np.testing.assert_allclose(
        loaded.predict(x, weekday), model.predict(x, weekday), rtol=1e-4, atol=1e-3
    )
    if cfg.direct:  # every day of a direct model, day 1 being what predict gives
        days = loaded.predict_days(x, weekday)
        assert days.shape == (len(x), cfg.horizon) and loaded.reach == cfg.horizon
        np.testing.assert_allclose(days, model.predict_days(x, weekday), rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(days[:, 0], loaded.predict(x, weekday))


def test_robust_scales_are_the_windows_median_and_last_week():
    """A spike moves the window mean, not its median; last-week-mean reads lag_1..lag_7."""
    import torch

    from pipeline.models.families import ViewsModel

    x = torch.tensor([[10.0] * 13 + [1000.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] + [100.0] * 7])
    scale = {
        s: ViewsModel(ModelConfig(lags=14, scaling=s)).scale_of(x)[:, 0].tolist()
        for s in ("window-mean", "window-median", "last-week-mean")
    }
    assert scale["window-mean"] == pytest.approx([(130 + 1000) / 14 + 1, (28 + 700) / 14 + 1])
    assert scale["window-median"] == pytest.approx([11.0, 8.0])  # lower middle of 14, + 1
    assert scale["last-week-mean"] == pytest.approx([11.0, 5.0])


def test_an_ensemble_is_the_mean_of_its_members(tmp_path: Path):
    import torch

    from pipeline.models import infer
    from pipeline.models.families import EnsembleModel, ViewsModel, save

    torch.manual_seed(1)
    x = np.random.default_rng(1).lognormal(5, 1, (32, 14))
    members = [ViewsModel(ModelConfig(lags=n, model="linear")) for n in (7, 14)]
    save(EnsembleModel(members), tmp_path)
    loaded = infer.load(tmp_path)
    assert isinstance(loaded, infer.NumpyEnsemble) and loaded.cfg.lags == 14
    by_hand = (members[0].predict(x[:, :7]) + members[1].predict(x)) / 2
    np.testing.assert_allclose(loaded.predict(x), by_hand, rtol=1e-5)


def test_a_stepwise_ensemble_keeps_its_day_1_weights_through_save_and_load(tmp_path: Path):
    import torch

    from pipeline.models import infer
    from pipeline.models.families import EnsembleModel, ViewsModel, load, save

    torch.manual_seed(2)
    x = np.random.default_rng(2).lognormal(5, 1, (16, 14))
    members = [ViewsModel(ModelConfig(lags=n, model="linear")) for n in (7, 14)]
    save(EnsembleModel(members, [0.0, 1.0], [0.75, 0.25]), tmp_path)
    for loaded in (infer.load(tmp_path), load(tmp_path)):
        assert loaded.first == (0.75, 0.25) and loaded.weights == (0.0, 1.0)
        assert loaded.cfg.first == (0.75, 0.25)
        day_one = 0.75 * members[0].predict(x[:, :7]) + 0.25 * members[1].predict(x)
        np.testing.assert_allclose(loaded.predict(x), day_one, rtol=1e-5)
    with torch.no_grad():
        forward = load(tmp_path)(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(forward, day_one, rtol=1e-5)
