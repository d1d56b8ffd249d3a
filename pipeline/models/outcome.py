"""What a training run records, computed before the MLflow door writes it.

The door (pipeline.tracking) computes nothing: this module turns a TrainResult into the final
metrics (with the scale-free ratio to the naive forecast), the learning curves as (key, epoch,
value) points (thinned to at most CURVE_POINTS epochs, the best and the last always kept), the
files kept in the model folder (every epoch of the curves, validation intervals, out-of-fold
forecasts) and the figures logged beside it (the learning curve).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import plots
from pipeline.data.features import LagWindows
from pipeline.data.metrics import validation_vs_naive
from pipeline.models import intervals
from pipeline.models.safe import CURVES_FILE
from pipeline.models.train import TrainResult

CURVE_NAMES = {"val_mae": "val_mae_epoch"}  # the final `val_mae` is the restored model's
CURVE_POINTS = 25  # epochs a curve keeps in MLflow at most (its every epoch: CURVES_FILE in the
# model folder). MLflow writes about 0.08 ms a metric point into SQLite: a run's four curves at
# 200 points took a sweep member's log_batch to about 38 ms, at 50 to 22 ms, at 25 to 16 ms

Writer = Callable[[Path], None]  # writes one file at the path (or into the folder) it is given


@dataclass
class Outcome:
    """A run's record, ready to write: final metrics, curves, model-folder files, figures."""

    metrics: dict[str, float]
    curves: list[tuple[str, int, float]] = field(default_factory=list)  # (key, epoch, value)
    model_files: list[Writer] = field(default_factory=list)  # each writes into the model folder
    figures: dict[str, Writer] = field(default_factory=dict)  # artifact name -> draws it


def thin_epochs(epochs: int, keep: Iterable[int] = (), most: int = CURVE_POINTS) -> list[int]:
    """The epochs (1-based) a curve of `epochs` points keeps: all of them up to `most`, else every
    k-th from the first, plus `keep` (the best epoch, the lowest value) and the last: `most` at
    most."""
    if epochs <= most:
        return list(range(1, epochs + 1))
    keep = {e for e in keep if 1 <= e <= epochs}
    stride = math.ceil(epochs / (most - 1 - len(keep)))
    return sorted(set(range(1, epochs + 1, stride)) | {epochs} | keep)


def curve_points(
    history: dict[str, list[float]], best_epoch: int, most: int = CURVE_POINTS
) -> list[tuple[str, int, float]]:
    """(key, epoch, value) points of every finite curve value on the kept epochs, the same
    epochs for every curve of the run: evenly spaced, with the best epoch, the last, and each
    curve's lowest value (so its minimum stays exact)."""
    keep = {best_epoch}
    for values in history.values():
        if len(values):
            keep.add(int(np.argmin(np.where(np.isfinite(values), values, np.inf))) + 1)
    longest = max((len(v) for v in history.values()), default=0)
    epochs = thin_epochs(longest, keep, most)
    points = []
    for key, values in history.items():
        for epoch in epochs:
            if epoch <= len(values) and math.isfinite(values[epoch - 1]):
                points.append((CURVE_NAMES.get(key, key), epoch, float(values[epoch - 1])))
    return points


def full_curves(history: dict[str, list[float]]) -> Writer:
    """What writes every epoch of the curves into the model folder (CURVES_FILE: one float64
    array per curve, named as the run's metrics are)."""
    arrays = {CURVE_NAMES.get(k, k): np.asarray(v, np.float64) for k, v in history.items()}
    return lambda folder: np.savez(folder / CURVES_FILE, **arrays)


def kept_intervals(
    windows: LagWindows, rows: np.ndarray, pred: np.ndarray | None, data: dict
) -> Writer | None:
    """What writes the model's validation intervals into its folder (`intervals.npz`, with the
    dev days' key): a forecast with this model as champion then scores nothing (8M validation
    windows at Kaggle scale). None without validation forecasts or dev file."""
    source = Path(data.get("source") or "")
    if pred is None or not len(pred) or not source.is_file():
        return None
    found = intervals.intervals_from(windows, rows, pred)
    key = intervals.cached_dev_key(source)
    return lambda folder: intervals.write_intervals(folder / intervals.INTERVALS_FILE, found, key)


def training_outcome(
    windows: LagWindows,
    result: TrainResult,
    data: dict,
    metrics: dict[str, float] | None = None,
    keep_intervals: bool = True,
    curve_png: bool = True,
    files: Iterable[Writer] = (),
) -> Outcome:
    """A training run's record: its final numbers, curves, validation intervals (unless
    `keep_intervals` is off: windows of some series only), `files` for the model folder and
    (unless `curve_png` is off: a sweep draws only its best) the learning-curve PNG."""
    finals = {
        "train_mae": result.train_mae,
        "val_mae": result.val_mae,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.seconds,
    }
    finals |= {f"rows_{k}": v for k, v in result.rows.items()} | (metrics or {})
    val_rows = windows.rows("val")
    pred = result.val_pred
    if pred is None and len(val_rows):
        pred = windows.predict(result.model, val_rows)
    if "val_mae_vs_naive" not in finals:  # the scale-free selection metric (select --metric)
        finals["val_mae_vs_naive"] = validation_vs_naive(result.model, windows, pred)
    kept = kept_intervals(windows, val_rows, pred, data) if keep_intervals else None
    outcome = Outcome(finals, curve_points(result.history, result.best_epoch))
    every = full_curves(result.history) if result.history else None
    outcome.model_files = [w for w in (every, kept, *files) if w is not None]
    if result.history and curve_png:
        history = result.history
        outcome.figures["learning_curve.png"] = lambda path: plots.learning_curve(history, path)
    return outcome
