"""MAE, SMAPE, MASE and the ratio to the naive forecast, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.data import metrics


def test_smape_is_the_kaggle_definition_with_zero_over_zero_as_zero() -> None:
    forecast, actual = np.array([110.0, 0.0, 50.0]), np.array([100.0, 0.0, 0.0])
    # 200/3 * (10/210 + 0 + 50/50)
    assert metrics.smape(forecast, actual) == pytest.approx(200 / 3 * (10 / 210 + 1))
    assert math.isnan(metrics.smape(np.array([]), np.array([])))


def test_seasonal_scale_is_the_weekly_naive_mae_and_nan_when_flat_or_short() -> None:
    week = np.arange(14, dtype=float)  # y_t - y_{t-7} = 7 everywhere
    assert metrics.seasonal_scale(week) == 7.0
    assert math.isnan(metrics.seasonal_scale(np.ones(30)))
    assert math.isnan(metrics.seasonal_scale(np.arange(7.0)))


def test_errors_scale_each_row_and_compare_with_the_naive_forecast() -> None:
    actual = np.array([100.0, 200.0])
    found = metrics.errors(
        forecast=np.array([90.0, 220.0]),
        actual=actual,
        naive=np.array([80.0, 160.0]),
        scale=np.array([10.0, 40.0]),
    )
    assert found["mae"] == 15.0
    assert found["mase"] == pytest.approx((10 / 10 + 20 / 40) / 2)
    assert found["vs_naive"] == pytest.approx(15.0 / 30.0)
    assert set(found) == set(metrics.NAMES)
    assert all(math.isnan(v) for v in metrics.errors(*(np.array([]),) * 4).values())
