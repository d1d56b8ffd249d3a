"""Units of work: a sweep's configurations grouped into stacks (one batched model per shape),
each trained and bagged over its seeds. What an engine runs, here or on a Ray worker."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.data.store import Splits
from pipeline.data.table import ViewsTable
from pipeline.models import batched, train
from pipeline.models.batched import stack_key, stackable
from pipeline.models.config import ModelConfig
from pipeline.models.families import EnsembleModel
from pipeline.models.train import TrainConfig, TrainResult
from pipeline.search.grids import Candidate


@dataclass(frozen=True)
class SweepData:
    """What every configuration of a sweep trains on: the dev days, their splits, the series."""

    dev: ViewsTable
    splits: Splits
    series: list[str] | None
    folds: int
    horizon: int = 1  # days ahead the runs are also scored on (val_mae_h<H>) when above 1
    windows: dict[int, LagWindows] = field(default_factory=dict)
    counted: dict[int, int] = field(default_factory=dict)  # window N -> its training rows

    def lags(self, n: int) -> LagWindows:
        """Window-N rows of the chosen series (built once per N)."""
        if n not in self.windows:
            self.windows[n] = feats.select_series(
                feats.lag_windows(self.dev, self.splits, n), self.series
            )
        return self.windows[n]

    def train_rows(self, unit: list) -> int:
        """The training rows of a unit's window (what its work is counted in), counted once per
        window (a panel's windows hold tens of millions of rows)."""
        n = unit[0][1].model.lags
        if n not in self.counted:
            self.counted[n] = self.lags(n).count("train")
        return self.counted[n]


def with_seeds(cand: Candidate, seeds: int) -> Candidate:
    """The configuration bagged over `seeds` seeds (unchanged for one)."""
    if seeds == 1:
        return cand
    return replace(cand, train=replace(cand.train, seeds=seeds))


def plan_units(todo: list[tuple[int, Candidate]], stack: bool) -> list[list[tuple[int, Candidate]]]:
    """What trains together, in the grid's order: one stack per shape, or one configuration at a
    time (and always for the baselines that do not descend)."""
    units: list[list[tuple[int, Candidate]]] = []
    by_key: dict[tuple, list[tuple[int, Candidate]]] = {}
    for i, cand in todo:
        if not stack or not stackable(cand.model, cand.train):
            units.append([(i, cand)])
            continue
        shape = stack_key(cand.model, cand.train)
        if shape not in by_key:
            by_key[shape] = []
            units.append(by_key[shape])
        by_key[shape].append((i, cand))
    return units


def _members(cand: Candidate) -> list[tuple[ModelConfig, TrainConfig]]:
    """The trainings of a configuration: one per seed."""
    seeds = range(cand.train.seed, cand.train.seed + cand.train.seeds)
    return [(cand.model, replace(cand.train, seed=s, seeds=1)) for s in seeds]


def train_unit(
    data: SweepData, unit: list[Candidate], stacked: bool
) -> dict[str, list | Exception]:
    """Each configuration's results, one per fold (the mean of its seeds when bagged), or the
    ViewcastError it failed with."""
    out: dict[str, list | Exception] = {c.key: [] for c in unit}
    for k in range(1, data.folds + 1):
        windows = feats.fold(data.lags(unit[0].model.lags), data.splits, k)
        members = [(c.key, m) for c in unit for m in _members(c)]
        if stacked and batched.stackable(*members[0][1]):
            results = batched.fit_stack(windows, [m for _, m in members])
        else:
            results = [_fit_or_error(train.fit, windows, *m) for _, m in members]
        for cand in unit:
            mine = [r for (key, _), r in zip(members, results, strict=True) if key == cand.key]
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if failed is not None or isinstance(out[cand.key], Exception):
                out[cand.key] = out[cand.key] if isinstance(out[cand.key], Exception) else failed
                continue
            out[cand.key].append(mine[0] if len(mine) == 1 else bag(mine, windows))
    return out


def _fit_or_error(fit, windows, mcfg, tcfg):
    try:
        return fit(windows, mcfg, tcfg)
    except ViewcastError as err:
        return err


def bag(results: list, windows: LagWindows):
    """Seeds of one configuration as one result: the mean of their forecasts (bagging), its MAE,
    the mean curves, and each seed's best epoch."""
    model = EnsembleModel([r.model for r in results]).eval()
    scores, val_pred = {}, None
    for split in ("train", "val"):
        rows = windows.rows(split)
        pred = windows.predict(model, rows)
        scores[split] = float(np.abs(pred - windows.y(rows)).mean()) if len(rows) else math.nan
        val_pred = pred if split == "val" else val_pred
    longest = max(r.epochs_run for r in results)
    history = {}
    for name in results[0].history:
        curves = np.full((len(results), longest), np.nan)
        for i, r in enumerate(results):
            curves[i, : len(r.history[name])] = r.history[name]
        history[name] = [float(v) for v in np.nanmean(curves, axis=0)]
    epochs = [r.best_epoch for r in results]
    return TrainResult(
        model,
        history,
        round(statistics.fmean(epochs)),
        longest,
        sum(r.seconds for r in results),
        results[0].device,
        scores["train"],
        scores["val"],
        results[0].rows,
        epochs,
        val_pred,
    )
