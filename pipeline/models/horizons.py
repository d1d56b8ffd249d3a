"""Forecasts H days ahead from one origin, and their errors: the part of every horizon's
evaluation that is pure NumPy (validation intervals per horizon, rolling-origin backtests).

An origin is a row position p of a complete daily table: the forecast of day[p] + k (k = 0..H-1)
reads the views of the N days before day[p] only (the paths themselves, recursive or direct, are
models.infer.paths: a served pyfunc model draws them too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.data.table import ViewsTable
from pipeline.models.infer import paths

PATH_CHUNK = 2**16  # origins forecast at a time


@dataclass(frozen=True)
class Paths:
    """Forecasts from a set of origins with what happened after them."""

    code: np.ndarray  # (origins,) series of each origin
    day: np.ndarray  # (origins,) first forecast day
    pred: np.ndarray  # (origins, H)
    actual: np.ndarray  # (origins, H), nan where the day is past the end or was imputed

    @property
    def errors(self) -> np.ndarray:
        """|actual - pred|, nan where there is nothing to compare."""
        return np.abs(self.actual - self.pred)


def origins_between(table: ViewsTable, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Row positions of every day in [lo[s], hi[s]] of each series s that has N days before it."""
    starts, ends = table.bounds()
    first = table.day[np.minimum(starts, max(len(table) - 1, 0))].astype(np.int64)
    lo_pos = np.maximum(starts + (lo - first), starts + n)
    hi_pos = np.minimum(starts + (hi - first), ends - 1)
    counts = np.maximum(hi_pos - lo_pos + 1, 0)
    counts[ends == starts] = 0
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return (np.repeat(lo_pos, counts) + offsets).astype(np.int64)


def forecast_paths(
    model, table: ViewsTable, origins: np.ndarray, horizon: int, last_day: np.ndarray
) -> Paths:
    """Forecasts of H days from each origin position, with the observed views of those days up to
    `last_day[s]` of each series (later days, imputed days and days past its end are nan: never
    read as targets)."""
    n = model.cfg.lags
    ends = table.bounds()[1]
    code = table.code[origins]
    windows = sliding_window_view(table.views, n)[:, ::-1]
    pred = np.empty((len(origins), horizon))
    for lo in range(0, len(origins), PATH_CHUNK):
        part = origins[lo : lo + PATH_CHUNK]
        pred[lo : lo + PATH_CHUNK] = paths(
            model, windows[part - n], table.day[part].astype(np.int64), horizon
        )
    at = origins[:, None] + np.arange(horizon)
    inside = at < ends[code][:, None]
    safe = np.where(inside, at, 0)
    day = table.day[origins].astype(np.int64)[:, None] + np.arange(horizon)
    seen = inside & ~table.imputed[safe] & (day <= np.asarray(last_day)[code][:, None])
    actual = np.where(seen, table.views[safe], np.nan)
    return Paths(code, table.day[origins].astype(np.int64), pred, actual)


def validation_bounds(table: ViewsTable, splits) -> tuple[np.ndarray, np.ndarray]:
    """Each series' first and last validation day (an unsplit series: an empty range)."""
    none = (np.iinfo(np.int32).max, np.iinfo(np.int32).min)
    bounds = [
        (s.val_start, s.test_start - 1) if (s := splits.series.get(str(n))) else none
        for n in table.names
    ]
    arr = np.array(bounds, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def validation_mae_ahead(
    model, dev: ViewsTable, splits, horizon: int, series: list[str] | None = None
) -> float:
    """The mean absolute error over days 1..H of the forecasts from every validation day whose
    H days are all validation days (of the named series, or all): what a run is selected on when
    the user forecasts H days (`sweep --horizon H`: the metric val_mae_h<H>), the same origins
    and days for a recursive and a direct model."""
    lo, hi = validation_bounds(dev, splits)
    if series:
        lo = np.where(np.isin(dev.names.astype(str), series), lo, np.iinfo(np.int32).max)
    origins = origins_between(dev, lo, hi - horizon + 1, model.cfg.lags)
    if not len(origins):
        return float("nan")
    return float(np.nanmean(forecast_paths(model, dev, origins, horizon, hi).errors))
