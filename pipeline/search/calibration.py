"""Intervals calibrated on several validation windows: per-step split-conformal half-widths from
the out-of-sample errors of K windows instead of one.

Window 1 is the validation days; window k is the `val_days` days before window k - 1 (a sweep's
fold k). Each window is forecast, from every one of its days as origin, by the configuration
trained on the days before it (early stopping on the window, as the sweep does; the members of an
ensemble, each seed of a bagged one, one shape's members batched), and scored on every day its
forecasts reach up to the last validation day (an earlier window's forecasts run on into the
later windows, which its model never saw; window 1 stops where the test days begin). Pooling the
windows' errors at each step h gives about K times the errors, from K stretches of the series
instead of one: bench/bench_intervals.py measured one window under-covering 28 days ahead (80%:
68-69), three close to nominal (78.5), and three whose forecasts run on past their window closer
(80.1; chosen on the "choose" origins), all reported on rolling origins before the sets' test
days.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Splits, Store
from pipeline.data.table import ViewsTable
from pipeline.data.workspace import Paths
from pipeline.models.config import Blend
from pipeline.models.families import EnsembleModel
from pipeline.models.horizons import Paths as Forecasts
from pipeline.models.horizons import forecast_paths, origins_between, validation_bounds
from pipeline.models.intervals import (
    CALIBRATED_FILE,
    SCORE_BUDGET,
    Intervals,
    dev_key,
    intervals_of,
    write_intervals,
)
from pipeline.models.train import TrainResult
from pipeline.search.grids import Candidate
from pipeline.search.units import SweepData, plan_units, train_unit

CALIBRATION_WINDOWS = 3  # validation windows whose errors set the half-widths (at most)
CALIBRATED_DAYS = 28  # steps the champion's calibrated half-widths reach (at least) ...
LONG_CALIBRATED_DAYS = 60  # ... and up to this many as SELECT_BUDGET allows (Kaggle's horizon)
MIN_TRAIN_DAYS = 28  # training days (beyond the lag window) the oldest window needs
# forecast entries (dev rows x windows x steps) `select` calibrates at most; a Kaggle-scale panel
# (80M dev rows) is left to one window
SELECT_BUDGET = SCORE_BUDGET


@dataclass(frozen=True)
class Calibration:
    intervals: Intervals
    windows: int  # how many validation windows the errors came from
    results: list[TrainResult]  # window 1's training of each member (its best epochs)
    model: object  # window 1's model (an ensemble's members combined)


def configurations(ws: Paths, run) -> tuple[list[Candidate], Blend]:
    """A run's configurations: itself, or an ensemble's members, and how the ensemble blends
    them. A run that logged no model (a sweep's parent, a submission) is one line."""
    if "model.model" not in run.params:
        raise ViewcastError(
            f"run {run.run_id} has no model to refit (its stage is {run.stage}): give a "
            "training run, or --champion"
        )
    if run.params.get("model.model") != "ensemble":
        mcfg, tcfg = tracking.run_config(run)
        return [Candidate(run.name or run.run_id, mcfg, tcfg)], Blend()
    found = []
    members, blend = tracking.ensemble_parts(run)
    for member in members:
        member_run = tracking.get_run(ws, member)
        mcfg, tcfg = tracking.run_config(member_run)
        found.append(Candidate(member_run.name or member, mcfg, tcfg))
    return found, blend


def windows_for(table: ViewsTable, splits: Splits, lags: int, most: int = CALIBRATION_WINDOWS):
    """How many validation windows every split series of the table holds (1 to `most`): window
    k needs lags + MIN_TRAIN_DAYS days before it."""
    lo, _ = validation_bounds(table, splits)
    starts, ends = table.bounds()
    split = (lo < np.iinfo(np.int32).max) & (ends > starts)
    if not split.any():
        return 1
    first = table.day[starts[split]].astype(np.int64)
    room = (lo[split] - first - lags - MIN_TRAIN_DAYS) // splits.val_days + 1
    return int(np.clip(room.min(), 1, most))


def combined(models: list, blend: Blend):
    """One model, or the ensemble of several blended as `blend` says."""
    models = [m.eval() for m in models]
    if len(models) == 1:
        return models[0]
    return EnsembleModel(models, blend.weights, blend.first).eval()


def calibrate(
    table: ViewsTable,
    splits: Splits,
    members: list[Candidate],
    blend: Blend,
    horizon: int,
    most: int = CALIBRATION_WINDOWS,
) -> Calibration:
    """Train the members on each window's days before it; half-widths for steps 1..horizon from
    the errors of every window pooled."""
    lags = max(c.model.lags for c in members)
    k = windows_for(table, splits, lags, most)
    data = SweepData(table, splits, None, k)
    trained: dict[int, list[TrainResult]] = {}
    for unit in plan_units(list(enumerate(members)), stack=True):
        results = train_unit(data, [c for _, c in unit], stacked=True)
        for i, cand in unit:
            found = results[cand.key]
            if isinstance(found, Exception):
                raise found
            trained[i] = found
    lo, hi = validation_bounds(table, splits)
    runs = [trained[i] for i in range(len(members))]  # per member, one result a window
    models = [combined([r[w].model for r in runs], blend) for w in range(k)]
    paths: list[Forecasts] = []
    for window, model in enumerate(models):
        shift = window * splits.val_days
        origins = origins_between(table, lo - shift, hi - shift, model.cfg.lags)
        # scored on every day up to the last validation day: past an earlier window's end the
        # days are still out of its model's sample (its training ended before its window)
        paths.append(forecast_paths(model, table, origins, horizon, hi))
    pooled = (np.concatenate([getattr(p, f) for p in paths]) for f in ("code", "pred", "actual"))
    return Calibration(intervals_of(table.names, *pooled), k, [r[0] for r in runs], models[0])


def calibrate_champion(
    ws: Paths, run_id: str, horizon: int = 1, most: int = CALIBRATION_WINDOWS
) -> int:
    """The champion's half-widths for steps 1..max(horizon, CALIBRATED_DAYS) (further, up to
    LONG_CALIBRATED_DAYS, as far as SELECT_BUDGET allows) from every window its series hold,
    logged beside its model (CALIBRATED_FILE, keyed to the dev days), where `forecast` reads
    them. How many windows; 1 when the series hold one window only, or the store is too large
    for SELECT_BUDGET (nothing is logged: `forecast` scores the validation days itself, as
    before)."""
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    members, blend = configurations(ws, tracking.get_run(ws, run_id))
    windows = windows_for(dev, splits, max(c.model.lags for c in members), most)
    steps = max(horizon, CALIBRATED_DAYS)
    if windows < 2 or len(dev) * windows * steps > SELECT_BUDGET:
        return 1
    steps = max(steps, min(LONG_CALIBRATED_DAYS, SELECT_BUDGET // (len(dev) * windows)))
    found = calibrate(dev, splits, members, blend, steps, most)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CALIBRATED_FILE
        write_intervals(path, found.intervals, dev_key(store.require() / "dev.parquet"))
        tracking.writer(ws, run_id).artifact(path, tracking.MODEL_ARTIFACT)
    return found.windows
