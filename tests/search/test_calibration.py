"""Intervals calibrated on several validation windows: the windows, the pooled errors, the
champion's file and the forecast that reads it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models import intervals as iv
from pipeline.models.config import Blend
from pipeline.models.families import ModelConfig
from pipeline.models.horizons import forecast_paths, origins_between, validation_bounds
from pipeline.models.train import TrainConfig, fit
from pipeline.search import calibration
from pipeline.search.grids import Candidate

LINEAR = Candidate(
    "linear-7", ModelConfig(lags=7, model="linear"), TrainConfig(solver="lstsq", loss="mse")
)


def test_the_windows_are_those_every_series_holds(swept: Path):
    """Each series: 180 days before its 60 validation days. Window k needs lags + 28 training
    days before it: (180 - lags - 28) // 60 + 1 windows, at most three, at least one."""
    store = Store(Paths(swept))
    dev, splits = store.read_dev(), store.read_splits()
    assert splits.val_days == 60
    assert calibration.windows_for(dev, splits, 7) == 3  # 145 // 60 + 1
    assert calibration.windows_for(dev, splits, 56) == 2  # 96 // 60 + 1
    assert calibration.windows_for(dev, splits, 150) == 1  # 2 // 60 + 1
    assert calibration.windows_for(dev, splits, 7, most=2) == 2
    longer = replace(splits, val_days=100)  # no room for a window: still the one
    assert calibration.windows_for(dev, longer, 160) == 1


def test_the_half_widths_pool_each_windows_errors(swept: Path):
    """The linear model solved on the days before each of the three windows (a sweep's folds),
    each forecasting from every day of its window, scored on every day up to the last
    validation day (an earlier window's forecasts run on into the later windows, never into the
    test days): the conformal quantiles of all their errors, step by step; wider or narrower
    than the last window's alone."""
    store = Store(Paths(swept))
    dev, splits = store.read_dev(), store.read_splits()
    found = calibration.calibrate(dev, splits, [LINEAR], Blend(), horizon=5)
    assert found.windows == 3
    lo, hi = validation_bounds(dev, splits)
    code, pred, actual = [], [], []
    for k in range(3):
        windows = feats.fold(feats.lag_windows(dev, splits, 7), splits, k + 1)
        model = fit(windows, LINEAR.model, LINEAR.train).model.eval()
        shift = k * splits.val_days
        origins = origins_between(dev, lo - shift, hi - shift, 7)
        assert len(origins) == 2 * 60
        paths = forecast_paths(model, dev, origins, 5, hi)
        # 5 days ahead: the last window scores 56 of its 60 origins a series, earlier ones all 60
        assert np.isfinite(paths.actual[:, 4]).sum() == 2 * (56 if k == 0 else 60)
        code.append(paths.code), pred.append(paths.pred), actual.append(paths.actual)
    by_hand = iv.intervals_of(
        dev.names, np.concatenate(code), np.concatenate(pred), np.concatenate(actual)
    )
    one = iv.validation_intervals(found.model, dev, splits, 5)
    for level in iv.LEVELS:
        np.testing.assert_allclose(found.intervals.width[level], by_hand.width[level], rtol=1e-6)
        assert not np.allclose(found.intervals.width[level], one.width[level])
    assert found.intervals.horizons == 5


def test_select_logs_the_champions_half_widths_and_forecast_uses_them(production: Path, cli):
    """`select` logged the champion's calibrated half-widths beside its model, 60 days deep (a
    small store), keyed to the dev days; `forecast --horizon 3` draws its bands with them, step by
    step."""
    ws = Paths(production)
    champion, _ = tracking.alias_run(ws, "champion")
    store = Store(ws)
    dev = store.read_dev()
    key = iv.dev_key(store.require() / "dev.parquet")
    path = tracking.model_folder(ws, champion) / iv.CALIBRATED_FILE
    deep = calibration.LONG_CALIBRATED_DAYS
    kept = iv.read_intervals(path, dev.names, key, deep)
    assert kept is not None and kept.horizons == deep and np.isfinite(kept.width[95]).all()
    assert iv.read_intervals(path, dev.names, key, deep + 1) is None
    done = cli("forecast", "--force", "--horizon", "3")
    assert done.exit_code == 0, done.output
    (csv,) = (production / "data" / "forecasts").glob("*.csv")
    frame = pd.read_csv(csv)
    dates = pd.to_datetime(frame["date"])
    steps = ((dates - dates.groupby(frame["series_id"]).transform("min")).dt.days + 1).to_numpy()
    assert sorted(set(steps)) == [1, 2, 3]
    for level in iv.LEVELS:
        width = kept.half_width(
            level, frame["series_id"].to_numpy(), steps, frame["forecast"].to_numpy()
        )
        upper = frame[f"upper_{level}"] - frame["forecast"]
        np.testing.assert_allclose(upper, width, rtol=1e-3, atol=2e-3)
    assert np.all(kept.width[95] >= kept.width[80])


@pytest.mark.slow  # a sweep, end to end
def test_one_window_or_a_store_over_the_budget_logs_nothing(
    two_series: Path, tiny_grid: Path, cli, monkeypatch
):
    """One window (series too short for a second, here `most=1`), or a store over SELECT_BUDGET
    (a Kaggle-scale panel would train the champion once per window and forecast every dev row 28
    days ahead three times): `calibrate_champion` logs no file, so `forecast` scores the
    validation days as before."""
    assert cli("sweep", "--grid", tiny_grid).exit_code == 0
    ws = Paths(two_series)
    champion = tracking.runs(ws, tracking.Stage.TRAIN)[0].run_id
    assert calibration.calibrate_champion(ws, champion, most=1) == 1
    budget = len(Store(ws).read_dev()) * 3 * calibration.CALIBRATED_DAYS
    monkeypatch.setattr(calibration, "SELECT_BUDGET", budget - 1)
    assert calibration.calibrate_champion(ws, champion) == 1
    assert f"model/{iv.CALIBRATED_FILE}" not in tracking.artifacts(ws, champion, "model")
    monkeypatch.setattr(calibration, "SELECT_BUDGET", budget)
    assert calibration.calibrate_champion(ws, champion) == 3
    assert f"model/{iv.CALIBRATED_FILE}" in tracking.artifacts(ws, champion, "model")
    path = tracking.model_folder(ws, champion) / iv.CALIBRATED_FILE
    store = Store(ws)
    key = iv.dev_key(store.require() / "dev.parquet")
    kept = iv.read_intervals(path, store.read_dev().names, key)
    assert kept.horizons == calibration.CALIBRATED_DAYS, "the budget holds 28 steps, not 60"
