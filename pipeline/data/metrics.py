"""Forecast errors users of forecasting tools expect, beside the lecture's MAE (pure NumPy).

- MAE: mean |F - A| in views (the lecture's loss).
- SMAPE: 200/n sum |F - A| / (|A| + |F|), 0 to 200, with 0/0 counted as 0 (the Kaggle web-traffic
  competition's metric).
- MASE: mean |F - A| / s, s the series' in-sample seasonal naive MAE (mean |y_t - y_{t-7}| over
  its days before the test), averaged over rows: scale-free, so every series counts alike.
- vs naive: MAE / the naive forecast's MAE (tomorrow = today) on the same rows: below 1 beats it.
"""

from __future__ import annotations

import math

import numpy as np

SEASON = 7
NAMES = ("mae", "smape", "mase", "vs_naive")


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    num = np.abs(forecast - actual)
    den = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
    return float(200 * ratio.mean()) if len(num) else math.nan


def seasonal_scale(values: np.ndarray, season: int = SEASON) -> float:
    """Mean |y_t - y_{t-season}| of one series' in-sample days (nan when too short or flat)."""
    if len(values) <= season:
        return math.nan
    scale = float(np.abs(values[season:] - values[:-season]).mean())
    return scale if scale > 0 else math.nan


def errors(
    forecast: np.ndarray, actual: np.ndarray, naive: np.ndarray, scale: np.ndarray
) -> dict[str, float]:
    """MAE, SMAPE, MASE (rows scaled by their series' `scale`) and MAE over the naive MAE."""
    if not len(actual):
        return dict.fromkeys(NAMES, math.nan)
    err = np.abs(forecast - actual)
    mae = float(err.mean())
    naive_mae = float(np.abs(naive - actual).mean())
    scaled = err / scale
    return {
        "mae": mae,
        "smape": smape(forecast, actual),
        "mase": float(np.nanmean(scaled)) if np.isfinite(scaled).any() else math.nan,
        "vs_naive": mae / naive_mae if naive_mae > 0 else math.nan,
    }


def grouped_errors(
    forecast: np.ndarray,
    actual: np.ndarray,
    naive: np.ndarray,
    scale: np.ndarray,
    code: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`errors` for every group (series) of `code` at once, with bincounts (145k series in one
    pass): the groups present, and each metric's array over them."""
    groups, idx = np.unique(code, return_inverse=True)
    count = np.bincount(idx).astype(np.float64)
    err = np.abs(forecast - actual)
    den = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(err, den, out=np.zeros_like(err, dtype=np.float64), where=den > 0)
    scaled = err / scale
    finite = np.isfinite(scaled)
    mase_n = np.bincount(idx, weights=finite.astype(np.float64))
    mase_sum = np.bincount(idx, weights=np.where(finite, scaled, 0.0))
    mae = np.bincount(idx, weights=err) / count
    naive_mae = np.bincount(idx, weights=np.abs(naive - actual)) / count
    with np.errstate(divide="ignore", invalid="ignore"):
        found = {
            "mae": mae,
            "smape": 200 * np.bincount(idx, weights=ratio) / count,
            "mase": np.where(mase_n > 0, mase_sum / np.maximum(mase_n, 1), np.nan),
            "vs_naive": np.where(naive_mae > 0, mae / naive_mae, np.nan),
        }
    return groups, found


def mean_ratio_to_naive(
    forecast: np.ndarray, actual: np.ndarray, naive: np.ndarray, code: np.ndarray
) -> float:
    """The mean over series of (its MAE / its naive forecast's MAE) on the same rows: a
    scale-free selection metric in which every series counts alike (series whose naive MAE is 0
    are left out)."""
    if not len(actual):
        return math.nan
    _, idx = np.unique(code, return_inverse=True)
    err = np.bincount(idx, weights=np.abs(forecast - actual))
    base = np.bincount(idx, weights=np.abs(naive - actual))
    keep = base > 0
    return float(np.mean(err[keep] / base[keep])) if keep.any() else math.nan


def validation_vs_naive(model, windows, pred: np.ndarray | None = None) -> float:
    """mean_ratio_to_naive of a model on the windows' validation rows (naive: x_1); `pred`:
    its validation forecasts when already computed."""
    rows = windows.rows("val")
    if not len(rows):
        return math.nan
    pred = windows.predict(model, rows) if pred is None else pred
    naive = windows.lag1(rows)
    return mean_ratio_to_naive(pred, windows.y(rows), naive, windows.code[rows])
