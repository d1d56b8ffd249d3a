"""Training rows on the device: every window gathered once (FullRows), or at Kaggle scale each
epoch's windows drawn from the series arrays (SampledRows)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.models.families import ViewsModel

if TYPE_CHECKING:
    from pipeline.models.train import TrainConfig


@dataclass
class Rows:
    """Rows on the device: lag windows (float32, views), targets, target days' weekdays."""

    x: torch.Tensor
    y: torch.Tensor
    weekday: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def mae(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, the lecture's L, in the units of y (a direct model's (rows, H):
    over the days it has, nan where a day is past the end)."""
    if y.dim() == 2:
        return (pred - y).abs().nanmean()
    return (pred - y).abs().mean()


def day_one(t: torch.Tensor) -> torch.Tensor:
    """A direct model's day 1 of (rows, H); a one-day model's (rows,) as they are."""
    return t[:, 0] if t.dim() == 2 else t


def split_tensors(windows: LagWindows, device: torch.device, days: int = 1) -> tuple[Rows, Rows]:
    """Training and validation rows as tensors on the device, moved once. With `days` > 1 (a
    direct model) the targets are days 1..H of each row (LagWindows.y_ahead): a training row
    needs all of them; a validation row keeps nan where its days run past the validation days."""

    def move(rows: np.ndarray) -> Rows:
        x = torch.from_numpy(np.ascontiguousarray(windows.x(rows), dtype=np.float32))
        y = windows.y(rows) if days == 1 else windows.y_ahead(rows, days)
        day = torch.from_numpy(windows.weekday(rows).astype(np.int64))
        return Rows(x.to(device), torch.from_numpy(y.astype(np.float32)).to(device), day.to(device))

    train_rows, val_rows = windows.rows("train"), windows.rows("val")
    if days > 1:
        whole = ~np.isnan(windows.y_ahead(train_rows, days)).any(axis=1)
        train_rows = train_rows[whole]
    require_training_rows(windows.n, len(train_rows))
    return move(train_rows), move(val_rows)


def require_training_rows(n: int, count: int) -> None:
    """Gradient descent needs at least two training windows."""
    if count < 2:
        raise ViewcastError(
            f"window {n} leaves {count} training rows: ingest longer series or use a smaller --lags"
        )


def gather_rows(values: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """(rows, n) lag windows gathered on the device from the series array: lag_j of the day at
    position t is values[t - j] (no window matrix is built on the host)."""
    offsets = torch.arange(1, n + 1, device=values.device)
    return values[target.unsqueeze(1) - offsets]


FULL_ROWS_LIMIT = 2**27  # lag values FullRows gathers at most (512 MB of float32)


def gathers_whole(windows: LagWindows) -> bool:
    """Whether every window fits in memory at once (else: SampledRows, batch by batch)."""
    return len(windows) * windows.n <= FULL_ROWS_LIMIT


def require_gatherable(windows: LagWindows, tcfg: TrainConfig) -> None:
    """Refuse a descent that would pass over every window at once when they do not fit."""
    if not tcfg.rows_per_epoch and not gathers_whole(windows):
        raise ViewcastError(
            f"{len(windows):,} windows of {windows.n} lags are too many to gather at once: "
            "train on sampled epochs (--rows-per-epoch N --batch-size B, or --grid panel)"
        )


class FullRows:
    """Every training and validation row gathered on the device once, in the net's scaled space
    (the normalisation fitted on all training rows); an epoch is one pass in a seeded order.
    Epochs keep no forecasts (their MAE is computed on the device); the end keeps `val_pred`."""

    epoch_pred = best_pred = val_pred = None

    def __init__(self, windows: LagWindows, model: ViewsModel, tcfg: TrainConfig, device) -> None:
        self.tr, self.va = split_tensors(windows, device, model.cfg.horizon)
        model.fit_normalisation(self.tr.x, self.tr.y)
        self.xs_tr, self.ys_tr, _ = model.encode(self.tr.x, self.tr.y, self.tr.weekday)
        self.xs_va, _, self.scale_va = model.encode(self.va.x, None, self.va.weekday)
        self.counts = {"train": len(self.tr), "val": len(self.va)}
        self.rows = len(self.tr)  # rows an epoch
        self.shuffle = torch.Generator(device=device).manual_seed(tcfg.seed)

    def batches(self, batch: int):
        n = self.rows
        if batch >= n:
            yield self.xs_tr, self.ys_tr
            return
        order = torch.randperm(n, device=self.xs_tr.device, generator=self.shuffle)
        for lo in range(0, n, batch):
            idx = order[lo : lo + batch]
            yield self.xs_tr[idx], self.ys_tr[idx]

    def encoded_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training rows in the net's space (what the closed form solves on)."""
        return self.xs_tr, self.ys_tr

    def validation_mae(self, model: ViewsModel) -> torch.Tensor:
        if not len(self.va):
            return torch.full((), math.nan, device=self.va.y.device)
        return mae(model.decode(model.net(self.xs_va), self.scale_va), self.va.y)

    def final_mae(self, model: ViewsModel, reuse=None) -> tuple[float, float]:
        """The train and validation MAE, keeping the validation forecasts (`val_pred`) for the
        run's other metrics and intervals (nothing scores them again)."""
        self.val_pred, val = validation_forecasts(model, self.va)
        pred = day_one(model(self.tr.x, self.tr.weekday))
        return mae(pred, day_one(self.tr.y)).item(), val


def validation_forecasts(model, va: Rows) -> tuple:
    """A model's forecasts of gathered validation rows (float64 on the host) and their MAE,
    one day ahead (a direct model's day 1: every run's val_mae means the same)."""
    if not len(va):
        return None, math.nan
    pred = day_one(model(va.x, va.weekday))
    return pred.cpu().numpy().astype(np.float64), mae(pred, day_one(va.y)).item()


NORMALISATION_ROWS = 2**20  # training windows the sampled path fits its normalisation on


VALIDATION_ROWS = 2**20  # validation windows an epoch scores (early stopping); the end: all


SCORE_CHUNK = 2**17  # windows the sampled path scores at a time (activations stay small)


def sample_rows(rows: np.ndarray, most: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of `most` rows in their order (all of them when there are fewer): the
    rows SampledRows takes for its normalisation and train MAE on the CPU with that seed."""
    if len(rows) <= most:
        return rows
    pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:most]
    return rows[np.sort(pick.numpy())]


@dataclass
class SeriesArrays:
    """The series array (float32) and each split's target positions on the device, and the
    validation targets in views: what a sampled training reads (a stack's members share it)."""

    values: torch.Tensor
    train_t: torch.Tensor
    val_t: torch.Tensor
    y_val: np.ndarray
    weekday: torch.Tensor | None = None  # int8 per position of `values` (rows' days only)

    @classmethod
    def of(cls, windows: LagWindows, device, calendar: bool = False) -> SeriesArrays:
        """`calendar`: also each target position's weekday (1 byte per day of the series)."""
        train_t = windows.target[windows.split == 0]  # target positions, no row-index arrays
        val_t = windows.target[windows.split == 1]
        require_training_rows(windows.n, len(train_t))
        values = torch.from_numpy(windows.values.astype(np.float32)).to(device)
        train, val = (torch.from_numpy(t).to(device) for t in (train_t, val_t))
        weekday = None
        if calendar:
            days = np.zeros(len(windows.values), np.int8)
            days[windows.target] = windows.weekday()
            weekday = torch.from_numpy(days).to(device)
        return cls(values, train, val, windows.values[val_t], weekday)


class SampledRows:
    """Kaggle-scale rows: the series array (float32) and each split's target positions on the
    device; a batch's windows are gathered there by index when it is drawn (no (rows, N) matrix:
    145k series x 803 days is 464 MB of views, where the windows of 56 lags would be 26 GB).

    An epoch is `rows_per_epoch` training windows drawn with replacement (seeded); the
    normalisation is fitted on a seeded sample of 2^20 training windows (the closed form solves
    on it too); each epoch's validation MAE, for early stopping, is that of a seeded sample of
    2^20 validation windows (all of them when there are fewer), the final one of every window,
    SCORE_CHUNK at a time; the final train MAE is that of the normalisation sample."""

    def __init__(
        self,
        windows: LagWindows,
        model: ViewsModel,
        tcfg: TrainConfig,
        device,
        shared: SeriesArrays | None = None,
    ) -> None:
        calendar = model.cfg.calendar != "none"
        arrays = shared or SeriesArrays.of(windows, device, calendar)
        self.model, self.n, self.rows = model, windows.n, tcfg.rows_per_epoch
        self.values, self.train_t, self.val_t = arrays.values, arrays.train_t, arrays.val_t
        self.weekday = arrays.weekday
        self.y_val = arrays.y_val
        self.epoch_pred = self.best_pred = self.val_pred = None
        self.counts = {"train": len(self.train_t), "val": len(self.val_t)}
        self.draw = torch.Generator(device=device).manual_seed(tcfg.seed)
        size = min(NORMALISATION_ROWS, len(self.train_t))
        pick = torch.randperm(len(self.train_t), device=device, generator=self.draw)[:size]
        self.sample_t = self.train_t[pick.sort().values]
        self.val_sample = torch.arange(len(self.val_t), device=device)
        if len(self.val_t) > VALIDATION_ROWS:
            pick = torch.randperm(len(self.val_t), device=device, generator=self.draw)
            self.val_sample = pick[:VALIDATION_ROWS].sort().values
        x, y, _ = self.gather(self.sample_t)
        model.fit_normalisation(x, y)

    def gather(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The windows, targets and (with a calendar) weekdays of target positions."""
        weekday = None if self.weekday is None else self.weekday[target]
        return gather_rows(self.values, target, self.n), self.values[target], weekday

    def encoded_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalisation sample in the net's space (what the closed form solves on)."""
        xs, ys, _ = self.model.encode(*self.gather(self.sample_t))
        return xs, ys

    def batches(self, batch: int):
        device = self.values.device
        drawn = torch.randint(len(self.train_t), (self.rows,), device=device, generator=self.draw)
        for lo in range(0, self.rows, batch):
            xs, ys, _ = self.model.encode(*self.gather(self.train_t[drawn[lo : lo + batch]]))
            yield xs, ys

    def _forecasts(self, model: ViewsModel, target: torch.Tensor) -> np.ndarray:
        """The model's forecasts of the given target positions, in views (float64), chunked."""
        pieces = []
        for lo in range(0, len(target), SCORE_CHUNK):
            x, _, weekday = self.gather(target[lo : lo + SCORE_CHUNK])
            pieces.append(model(x, weekday).cpu().numpy().astype(np.float64))
        return np.concatenate(pieces) if pieces else np.zeros(0)

    def validation_mae(self, model: ViewsModel) -> torch.Tensor:
        """The epoch's validation MAE (on the validation sample). When the sample is every
        window, its forecasts are kept (`epoch_pred`, and `best_pred` once the loop takes them
        as the best), so the end needs no second pass."""
        if not len(self.val_t):
            return torch.full((), math.nan, device=self.values.device)
        pred = self._forecasts(model, self.val_t[self.val_sample])
        whole = len(self.val_sample) == len(self.val_t)
        self.epoch_pred = pred if whole else None
        return torch.tensor(self.sample_error(pred), device=self.values.device)

    def sample_error(self, pred: np.ndarray) -> float:
        """The MAE of forecasts of the validation sample (in its order), in views."""
        return float(np.abs(pred - self.y_val[self.val_sample.cpu().numpy()]).mean())

    def final_mae(self, model: ViewsModel, reuse: np.ndarray | None) -> tuple[float, float]:
        """The sample's train MAE and the validation MAE, keeping the validation forecasts
        (`val_pred`, in the windows' validation row order) for the run's other metrics; `reuse`:
        those forecasts when an epoch already made them with the final weights."""
        self.val_pred = self._forecasts(model, self.val_t) if reuse is None else reuse
        val = float(np.abs(self.val_pred - self.y_val).mean()) if len(self.y_val) else math.nan
        sample_y = self.values[self.sample_t].cpu().numpy()
        return float(np.abs(self._forecasts(model, self.sample_t) - sample_y).mean()), val
