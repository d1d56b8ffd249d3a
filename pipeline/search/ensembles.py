"""Greedy ensembles (Caruana et al., 2004): members chosen by forward selection with replacement
on out-of-fold validation forecasts, instead of the plain mean of the K best on one window.

Every sweep member keeps its validation forecasts of every fold (`oof.npz` in its model folder:
each forecast's target position in the dev days' series array, its fold, its value). The builder
takes the POOL best runs of the sweep, starts from the single best of them on the folds, then adds
(with replacement) the member that lowers the folds' error most, until no addition lowers it or
ROUNDS members are in; the weights are the counts over the members in. The error is the one
selection ranks by: the mean over folds of each fold's MAE. So an ensemble never scores worse on
the folds it was built on than its best member (a test holds it to that).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.metrics import validation_vs_naive
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models.device_rows import NORMALISATION_ROWS, sample_rows
from pipeline.models.families import EnsembleModel
from pipeline.models.horizons import validation_mae_ahead
from pipeline.models.outcome import kept_intervals
from pipeline.search import ensembles
from pipeline.tracking import RunRecord, Tag

OOF_FILE = "oof.npz"
OOF_LIMIT = 2**20  # forecasts (rows x folds) a run keeps at most: 8 MB; a Kaggle panel keeps none
POOL = 25  # runs the builder picks from: the sweep's best by the selection metric
ROUNDS = 25  # members (with repeats) at most


@dataclass(frozen=True)
class Forecasts:
    """A run's out-of-fold validation forecasts."""

    target: np.ndarray  # int64 position of each forecast day in the dev days' series array
    fold: np.ndarray  # int8 fold of each (1 = the standard validation window)
    pred: np.ndarray  # float64 forecast in views

    def keys(self) -> np.ndarray:
        """One int64 per (fold, day): the same forecast day of the same fold in every run."""
        return self.fold.astype(np.int64) << 48 | self.target

    def write(self, path: Path) -> None:
        np.savez(path, target=self.target, fold=self.fold, pred=self.pred)

    @classmethod
    def read(cls, path: Path) -> Forecasts | None:
        """The forecasts kept in `path`; None when the file is missing or damaged."""
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls(f["target"], f["fold"], f["pred"])
        except (OSError, KeyError, ValueError):
            return None


def fold_weights(fold: np.ndarray) -> np.ndarray:
    """Row weights whose weighted sum of absolute errors is the mean over folds of each fold's
    MAE (what a sweep with --folds reports as val_mae)."""
    labels, index, counts = np.unique(fold, return_inverse=True, return_counts=True)
    return 1.0 / (counts[index] * len(labels))


def greedy(preds: np.ndarray, y: np.ndarray, weight: np.ndarray, rounds: int = ROUNDS):
    """Forward selection with replacement: (candidates, rows) forecasts -> each candidate's
    count. Round one takes the best single candidate; each later round adds the candidate that
    lowers the weighted absolute error of the mean most, and the search stops when none does."""
    counts = np.zeros(len(preds), dtype=np.int64)
    total = np.zeros(preds.shape[1])
    best = np.inf
    for n in range(rounds):
        scores = (np.abs((total + preds) / (n + 1) - y) * weight).sum(axis=1)
        pick = int(np.argmin(scores))
        if not scores[pick] < best:
            break
        counts[pick] += 1
        total += preds[pick]
        best = scores[pick]
    return counts


def error(pred: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """The weighted absolute error (see fold_weights)."""
    return float((np.abs(pred - y) * weight).sum())


def aligned(forecasts: list[Forecasts]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (fold, day) keys every run forecast, and each run's forecasts of them: (keys,
    targets, folds) and a (runs, rows) array. Windows of more lags may lack a short series'
    first validation days; those days drop out for all."""
    common = forecasts[0].keys()
    for f in forecasts[1:]:
        common = np.intersect1d(common, f.keys(), assume_unique=True)
    rows = []
    for f in forecasts:
        keys = f.keys()
        order = np.argsort(keys, kind="stable")
        rows.append(f.pred[order[np.searchsorted(keys, common, sorter=order)]])
    target = common & ((1 << 48) - 1)
    fold = (common >> 48).astype(np.int8)
    return target, fold, np.array(rows)


# --- ensemble runs ---------------------------------------------------------------------------


def ensemble_run(
    ws: Paths,
    sweep_id: str,
    runs: list[RunRecord],
    children: list[RunRecord],
    k: int,
    metric: str = "val_mae",
) -> RunRecord | None:
    """The run of the mean of the k best trained configurations (logged once per member set),
    or None when fewer than two are there. Scored on the dev days only, like every run."""
    singles = [r for r in runs if not r.baseline]
    members = [r.run_id for r in sorted(singles, key=lambda r: r.metrics[metric])[:k]]
    if len(members) < 2:
        return None
    horizon = ahead(metric)
    name = f"ensemble-top{len(members)}" + ("" if horizon == 1 else f"-h{horizon}")
    return _ensemble_record(ws, sweep_id, children, members, None, name, horizon=horizon)


def ahead(metric: str) -> int:
    """H of a val_mae_h<H> metric (the days ahead a selection scores), else 1."""
    return int(metric.removeprefix("val_mae_h")) if metric.startswith("val_mae_h") else 1


def greedy_run(
    ws: Paths,
    sweep_id: str,
    runs: list[RunRecord],
    children: list[RunRecord],
    k: int = 0,
    metric: str = "val_mae",
) -> RunRecord | None:
    """The run of the greedy ensemble built on the folds' validation forecasts of the sweep's
    POOL best trained configurations (`k` only turns it on), or None when it is one member
    (nothing beat the best run alone) or fewer than two runs kept their forecasts."""
    singles = sorted((r for r in runs if not r.baseline), key=lambda r: r.metrics[metric])
    kept = []
    for run in singles[: ensembles.POOL]:
        path = tracking.model_folder(ws, run.run_id) / ensembles.OOF_FILE
        found = ensembles.Forecasts.read(path)
        if found is not None:
            kept.append((run.run_id, found))
    if len(kept) < 2:
        return None
    target, fold, preds = ensembles.aligned([f for _, f in kept])
    y = Store(ws).read_dev().views[target]
    weight = ensembles.fold_weights(fold)
    counts = ensembles.greedy(preds, y, weight)
    chosen = np.flatnonzero(counts)
    if len(chosen) < 2:
        return None
    members = [kept[i][0] for i in chosen]
    weights = [float(c) for c in counts[chosen] / counts.sum()]
    blend = weights @ preds[chosen]
    folds = {}
    if len(np.unique(fold)) > 1:  # the ensemble's val MAE as its members' (the folds' mean)
        folds = {
            f"val_mae_fold{f}": float(np.abs(blend - y)[fold == f].mean()) for f in np.unique(fold)
        }
        folds["val_mae"] = ensembles.error(blend, y, weight)
    name = f"ensemble-greedy{len(members)}"
    return _ensemble_record(ws, sweep_id, children, members, weights, name, folds)


def stepwise_run(
    ws: Paths,
    sweep_id: str,
    children: list[RunRecord],
    first: RunRecord,
    later: RunRecord,
    horizon: int,
) -> RunRecord | None:
    """The stepwise model of two runs (an ensemble run of its own, scored and logged like every
    one; `select` makes it the champion on val_mae_h<H>): `first`'s forecast on day 1 (the
    champion on val_mae, the one `select` picks without a horizon) and `later`'s on days 2..H
    (the champion on val_mae_h<H>), each member forecasting its own path. Its val_mae is
    `first`'s, its val_mae_h<H> differs from `later`'s by day 1. None when the two blend the
    same runs the same way."""
    parts = [_weighted_members(first), _weighted_members(later)]
    members = list(dict.fromkeys(parts[0][0] + parts[1][0]))

    def spread(ids: list[str], weights: list[float]) -> list[float]:
        out = [0.0] * len(members)
        for run_id, w in zip(ids, weights, strict=True):
            out[members.index(run_id)] += w
        return out

    later_weights, first_weights = spread(*parts[1]), spread(*parts[0])
    if first_weights == later_weights:
        return None  # the same members and weights (two ensembles of the same runs)
    name = f"stepwise-h{horizon} {first.name or first.run_id}, then {later.name or later.run_id}"
    return _ensemble_record(
        ws, sweep_id, children, members, later_weights, name, None, horizon, first_weights
    )


def _weighted_members(run: RunRecord) -> tuple[list[str], list[float]]:
    """A run's member runs and their weights (a single run: itself, weight 1)."""
    if run.params.get("model.model") != "ensemble":
        return [run.run_id], [1.0]
    members, blend = tracking.ensemble_parts(run)
    if blend.first is not None:
        raise ValueError(f"run {run.run_id} is stepwise already")
    return members, list(blend.weights or [1.0 / len(members)] * len(members))


def _ensemble_record(
    ws: Paths,
    sweep_id: str,
    children: list[RunRecord],
    members: list[str],
    weights: list[float] | None,
    name: str,
    metrics: dict[str, float] | None = None,
    horizon: int = 1,
    first: list[float] | None = None,
) -> RunRecord:
    """The ensemble's run under the sweep (logged once per member set and weights): scored on
    the dev days only, like every run; `metrics` replace what it scores itself. `horizon` H > 1:
    also scored on val_mae_h<H>, its members' paths combined (a run of its own). `first`: day
    1's weights (a stepwise model)."""
    identity = ",".join(members) + ("" if weights is None else f":{weights}")
    identity += "" if horizon == 1 else f"@h{horizon}"
    identity += "" if first is None else f"|first:{first}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    for run in children:
        if run.tags.get(Tag.ENSEMBLE_KEY) == key:
            return run  # logged by an earlier select
    model = EnsembleModel([tracking.load_model(ws, r) for r in members], weights, first).eval()
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    parent = tracking.get_run(ws, sweep_id)
    chosen = parent.params.get("series", "all")
    windows = feats.select_series(windows, None if chosen == "all" else chosen.split(","))
    # the train MAE of a sample past 2^20 training windows, as the sampled path reports it
    train_rows = sample_rows(windows.rows("train"), NORMALISATION_ROWS)
    val_rows = windows.rows("val")
    pred = windows.predict(model, val_rows)
    scores = {
        "train_mae": float(abs(windows.predict(model, train_rows) - windows.y(train_rows)).mean()),
        "val_mae": float(abs(pred - windows.y(val_rows)).mean()),
        "val_mae_vs_naive": validation_vs_naive(model, windows, pred),
    } | (metrics or {})
    if horizon > 1:
        series = None if chosen == "all" else chosen.split(",")
        scores[f"val_mae_h{horizon}"] = validation_mae_ahead(
            model, store.read_dev(), store.read_splits(), horizon, series
        )
    tags = {Tag.BASELINE: "False", Tag.ENSEMBLE_KEY: key, Tag.CONFIG_KEY: key}
    tags[Tag.SWEEP_KEY] = parent.tags.get(Tag.SWEEP_KEY, "")
    data = feats.data_params(ws, windows)
    kept = kept_intervals(windows, val_rows, pred, data) if chosen == "all" else None
    run_id = tracking.log_ensemble(
        ws,
        windows,
        model,
        members,
        scores,
        data,
        run_name=name,
        tags=tags,
        parent_run_id=sweep_id,
        model_files=[kept] if kept else [],
    )
    for member in members:  # whoever loads the ensemble may load its members
        tracking.materialise(ws, member)
    return tracking.get_run(ws, run_id)
