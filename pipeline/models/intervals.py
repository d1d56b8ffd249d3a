"""Prediction intervals: split-conformal half-widths from a model's out-of-sample errors.

One module for intervals: training runs keep them with their model (intervals.npz), forecasts read
them (or score the validation days when none are kept). Pure NumPy.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.atomic import atomic_write
from pipeline.models.horizons import forecast_paths, origins_between, validation_bounds

LEVELS = (80, 95)
# forecast entries (dev rows x windows x steps) scored for intervals at most: 2^25 float64
# forecasts and as many actuals take 0.5 GB; a Kaggle-scale panel (80M dev rows) gets fewer steps
SCORE_BUDGET = 2**25


def conformal_quantile(errors: np.ndarray, level: int) -> float:
    """The split-conformal quantile: the ceil((m+1) * level%)-th smallest error (inf if m is
    too small for the level)."""
    m = len(errors)
    k = math.ceil((m + 1) * level / 100)
    if m == 0 or k > m:
        return math.inf
    return float(np.sort(errors)[k - 1])


@dataclass(frozen=True)
class Intervals:
    """Per-series half-widths for each forecast step h = 1..H at each level, and the pooled
    relative fallback per step."""

    names: np.ndarray
    width: dict[int, np.ndarray]  # level -> (H, series) absolute half-width, nan/inf = relative
    relative: dict[int, np.ndarray]  # level -> (H,) pooled quantile of |error| / max(forecast, 1)

    @property
    def horizons(self) -> int:
        """How many steps ahead the half-widths reach."""
        return int(self.width[LEVELS[0]].shape[0])

    def half_width(self, level: int, series: np.ndarray, steps: np.ndarray, pred: np.ndarray):
        """The half-width of each forecast row (its series name, its step from 1, its forecast):
        the series' own, or the pooled relative one times the forecast where the series has too
        few errors at that step (or none)."""
        if len(steps) and int(np.max(steps)) > self.horizons:
            raise ValueError(f"intervals reach {self.horizons} days, asked {int(np.max(steps))}")
        position = {name: i for i, name in enumerate(self.names)}
        col = np.array([position.get(str(n), -1) for n in series], dtype=np.int64)
        step = np.asarray(steps, dtype=np.int64) - 1
        own = np.where(col >= 0, self.width[level][step, np.maximum(col, 0)], np.nan)
        fallback = self.relative[level][step] * np.asarray(pred)
        return np.where(np.isfinite(own), own, fallback)


def validation_intervals(model, dev, splits, horizon: int = 1) -> Intervals:
    """Half-widths from a model's out-of-sample errors h = 1..H days ahead: forecasts from every
    validation day of `dev` as origin (the days before it as inputs, predictions fed back), each
    scored on the validation days it reaches. Step h has val_days - h + 1 errors a series."""
    val_start, val_end = validation_bounds(dev, splits)
    origins = origins_between(dev, val_start, val_end, model.cfg.lags)
    found = forecast_paths(model, dev, origins, horizon, val_end)
    return intervals_of(dev.names, found.code, found.pred, found.actual)


def intervals_of(names: np.ndarray, code: np.ndarray, pred: np.ndarray, actual: np.ndarray):
    """Half-widths at each step from (origins, H) forecasts and what happened (nan: not seen)."""
    pred, actual = np.atleast_2d(pred.T).T, np.atleast_2d(actual.T).T  # 1-D: one step
    horizon = pred.shape[1]
    width = {lv: np.full((horizon, len(names)), np.nan) for lv in LEVELS}
    relative = {lv: np.full(horizon, np.inf) for lv in LEVELS}
    for h in range(horizon):
        seen = ~np.isnan(actual[:, h])
        err = np.abs(actual[seen, h] - pred[seen, h])
        per_series = grouped_conformal_quantiles(err, code[seen], len(names), LEVELS)
        for lv in LEVELS:
            width[lv][h] = per_series[lv]
            relative[lv][h] = conformal_quantile(err / np.maximum(pred[seen, h], 1.0), lv)
    return Intervals(names.astype(str), width, relative)


def intervals_from(windows, rows: np.ndarray, pred: np.ndarray) -> Intervals:
    """One-day-ahead half-widths from forecasts `pred` of the windows' validation `rows` (never
    negative, as a forecast is)."""
    pred = np.maximum(pred, 0.0)
    return intervals_of(windows.names, windows.code[rows], pred, windows.y(rows))


def spliced(first: Intervals, rest: Intervals) -> Intervals:
    """`first`'s half-widths for the steps it reaches, `rest`'s after them (same series)."""
    k = min(first.horizons, rest.horizons)
    width = {lv: np.concatenate([first.width[lv][:k], rest.width[lv][k:]]) for lv in LEVELS}
    relative = {
        lv: np.concatenate([first.relative[lv][:k], rest.relative[lv][k:]]) for lv in LEVELS
    }
    return Intervals(rest.names, width, relative)


def sqrt_widths(one_day: Intervals, horizon: int) -> Intervals:
    """The old heuristic, kept to be measured against: step h's half-width is step 1's times
    sqrt(h) (calibrated for h = 1 only)."""
    grow = np.sqrt(np.arange(1, horizon + 1))
    return Intervals(
        one_day.names,
        {lv: grow[:, None] * one_day.width[lv][:1] for lv in LEVELS},
        {lv: grow * one_day.relative[lv][0] for lv in LEVELS},
    )


INTERVALS_FILE = "intervals.npz"
# the champion's, from several validation windows (search.calibration), read first by `forecast`
CALIBRATED_FILE = "intervals-calibrated.npz"


def dev_key(dev_file: Path) -> str:
    """A hash of the dev days' file: kept intervals hold for these dev days only."""
    with dev_file.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def write_intervals(path: Path, found: Intervals, key: str) -> None:
    """Half-widths (H, series) in series order (the dev days' own: no names), with the dev
    days' key."""

    def write(tmp: str) -> None:
        arrays = {f"width_{lv}": found.width[lv] for lv in LEVELS}
        arrays |= {f"relative_{lv}": np.asarray(found.relative[lv]) for lv in LEVELS}
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), **arrays)

    atomic_write(path, write)


def read_intervals(path: Path, names: np.ndarray, key: str, horizon: int = 1) -> Intervals | None:
    """Intervals kept for these dev days (`key`, series `names`) reaching `horizon` days, or
    None: not there, made for other dev days or fewer days, or damaged. (A file of one step
    written before horizons holds (series,) widths.)"""
    try:
        with np.load(path, allow_pickle=False) as saved:
            width = {lv: np.atleast_2d(saved[f"width_{lv}"]) for lv in LEVELS}
            relative = {lv: np.atleast_1d(saved[f"relative_{lv}"]) for lv in LEVELS}
            key_ok = str(saved["key"]) == key
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if not key_ok or any(w.shape[1] != len(names) for w in width.values()):
        return None
    if any(w.shape[0] < horizon or len(relative[lv]) < horizon for lv, w in width.items()):
        return None
    return Intervals(names.astype(str), width, relative)


def grouped_conformal_quantile(
    errors: np.ndarray, group: np.ndarray, groups: int, level: int
) -> np.ndarray:
    """`conformal_quantile` of each group's errors at once (nan for a group without errors)."""
    return grouped_conformal_quantiles(errors, group, groups, (level,))[level]


def grouped_conformal_quantiles(
    errors: np.ndarray, group: np.ndarray, groups: int, levels: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """grouped_conformal_quantile at several levels with one sort. Each group's errors are a
    row of a (groups, largest group) table padded with inf and sorted along its rows: 145k
    short sorts of a validation period beat one lexsort of 8M errors (3.8 s) by far."""
    counts = np.bincount(group, minlength=groups)
    widest = int(counts.max(initial=0))
    if groups * widest > 4 * len(errors) + 4096:  # very uneven groups: one sort of them all
        ordered = errors[np.lexsort((errors, group))]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return {lv: _group_quantile(ordered, starts, counts, lv) for lv in levels}
    if len(group) and np.any(group[1:] < group[:-1]):
        order = np.argsort(group, kind="stable")
        group, errors = group[order], errors[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    table = np.full((groups, widest), np.inf)
    table[group, np.arange(len(group)) - starts[group]] = errors
    table.sort(axis=1)
    flat, starts = table.reshape(-1), np.arange(groups) * widest
    return {lv: _group_quantile(flat, starts, counts, lv) for lv in levels}


def _group_quantile(
    ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray, level: int
) -> np.ndarray:
    """Each group's conformal quantile, its errors sorted in `ordered` from `starts`."""
    k = np.ceil((counts + 1) * level / 100).astype(np.int64)
    out = np.full(len(counts), np.inf)
    ok = k <= counts
    out[ok] = ordered[starts[ok] + k[ok] - 1]
    out[counts == 0] = np.nan
    return out


def cached_dev_key(path: Path) -> str:
    """`dev_key`, hashed once per file version in this process (a sweep logs many runs)."""
    stat = path.stat()
    return _dev_key(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _dev_key(path: Path, size: int, mtime_ns: int) -> str:
    return dev_key(path)
