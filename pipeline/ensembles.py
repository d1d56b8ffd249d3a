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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
            with np.load(path) as f:
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
