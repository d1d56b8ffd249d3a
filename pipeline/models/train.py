"""The training loop: data on the device once, batches sliced there, one host sync per epoch."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.models.optim import OPTIMIZERS, SCHEDULES, get_lr, make_optimizer

LOSSES = ("mae", "mse", "huber")
TREE_LOSSES = {"mae": "absolute_error", "mse": "squared_error"}  # scikit-learn names
# huber: squared within one standard deviation of the training targets, linear beyond
HUBER_DELTA = 1.0
SOLVERS = ("gd", "lstsq")


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise: L4-L6's knobs. Logged whole to MLflow as train.* params."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    alpha: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    step_epochs: int = 100
    gamma: float = 0.5
    batch_size: int = 0  # 0 = the full batch
    rows_per_epoch: int = 0  # 0 = every training row; N = a seeded sample of N windows an epoch
    epochs: int = 500
    patience: int = 100  # epochs without a better validation MAE before stopping; 0 = never
    restore_best: bool = True  # end with the weights of the best validation epoch
    loss: str = "mae"
    clip: float = 0.0  # max gradient norm; 0 = no clipping
    solver: str = "gd"  # gd, or lstsq: the closed form for the linear model (MSE)
    seed: int = 0
    seeds: int = 1  # bagging: a sweep trains seeds seed..seed+seeds-1 and predicts their mean
    device: str = "auto"
    amp: bool = False  # bfloat16 autocast on CUDA

    def __post_init__(self) -> None:
        checks = {
            "optimizer": (self.optimizer, OPTIMIZERS),
            "schedule": (self.schedule, SCHEDULES),
            "loss": (self.loss, LOSSES),
            "solver": (self.solver, SOLVERS),
            "device": (self.device, ("auto", "cpu", "cuda")),
        }
        for option, (value, allowed) in checks.items():
            if value not in allowed:
                raise ViewcastError(
                    f"unknown {option} {value!r} (choose from {', '.join(allowed)})"
                )
        if self.seeds < 1:
            raise ViewcastError(f"--seeds must be at least 1, got {self.seeds}")
        if self.lr <= 0 or self.epochs < 0 or self.batch_size < 0 or self.rows_per_epoch < 0:
            raise ViewcastError(
                "--lr must be positive, --epochs, --batch-size and --rows-per-epoch not negative"
            )


@dataclass
class TrainResult:
    """A trained model with its learning curves and final MAE in views."""

    model: ViewsModel
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    train_mae: float = math.nan
    val_mae: float = math.nan
    rows: dict[str, int] = field(default_factory=dict)
    seed_epochs: list[int] = field(default_factory=list)  # a bagged result: each seed's best
    val_pred: np.ndarray | None = None  # the final model's validation forecasts, when at hand


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when one is there, else cpu; cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ViewcastError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


@dataclass
class Rows:
    """Rows on the device: lag windows (float32, views), targets, target days' weekdays."""

    x: torch.Tensor
    y: torch.Tensor
    weekday: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def split_tensors(windows: LagWindows, device: torch.device) -> tuple[Rows, Rows]:
    """Training and validation rows as tensors on the device, moved once."""

    def move(rows: np.ndarray) -> Rows:
        x = torch.from_numpy(np.ascontiguousarray(windows.x(rows), dtype=np.float32))
        y = torch.from_numpy(windows.y(rows).astype(np.float32))
        day = torch.from_numpy(windows.weekday(rows).astype(np.int64))
        return Rows(x.to(device), y.to(device), day.to(device))

    train_rows, val_rows = windows.rows("train"), windows.rows("val")
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


def loss_function(name: str) -> Callable[..., torch.Tensor]:
    """The training loss on the standardised targets (torch's signature, `reduction` too): mae
    (the lecture's L; with log1p a median in views), mse, or huber (HUBER_DELTA: quadratic for
    small errors like mse, linear for large ones like mae)."""
    if name == "huber":
        return functools.partial(torch.nn.functional.huber_loss, delta=HUBER_DELTA)
    return torch.nn.functional.l1_loss if name == "mae" else torch.nn.functional.mse_loss


def mae(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, the lecture's L, in the units of y."""
    return (pred - y).abs().mean()


def fit(
    windows: LagWindows,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train one model on the windows' training rows, early-stopping on validation MAE (views).
    With `rows_per_epoch`, windows are gathered batch by batch from the series array (memory
    bounded by the series, not the windows: see SampledRows); else every row is on the device."""
    if mcfg.lags != windows.n:
        raise ViewcastError(f"model expects {mcfg.lags} lags, windows have {windows.n}")
    if mcfg.model == "hgb":
        return fit_trees(windows, mcfg, tcfg)
    torch.manual_seed(tcfg.seed)
    device = resolve_device(tcfg.device)
    model = ViewsModel(mcfg).to(device)
    descends = model.trainable and tcfg.solver == "gd"
    if descends:
        require_gatherable(windows, tcfg)
    if (descends and tcfg.rows_per_epoch) or not gathers_whole(windows):
        source: FullRows | SampledRows = SampledRows(windows, model, tcfg, device)
    else:
        source = FullRows(windows, model, tcfg, device)
    start = time.perf_counter()
    if tcfg.solver == "lstsq" or not model.trainable:
        if model.trainable:
            solve_least_squares(model, *source.encoded_train())
        result = TrainResult(model, {}, 0, 0, device=str(device))
    else:
        result = _descend(model, source, tcfg, device, on_epoch)
    result.rows = source.counts
    result.seconds = time.perf_counter() - start
    # final numbers, in views, with the restored best weights in evaluation mode
    model.eval()
    restored = tcfg.restore_best and result.best_epoch > 0
    reuse = source.best_pred if restored else source.epoch_pred  # None before any epoch
    with torch.no_grad():
        result.train_mae, result.val_mae = source.final_mae(model, reuse)
    result.val_pred = source.val_pred
    return result


TREE_CURVE_ROWS = 2**17  # validation windows past which a tree model logs no per-iteration MAE


def fit_trees(windows: LagWindows, mcfg: ModelConfig, tcfg: TrainConfig) -> TrainResult:
    """The hgb family: scikit-learn's HistGradientBoostingRegressor on the inputs the nets see
    (the same transform, per-row scale, standardisation and calendar), on the CPU. TrainConfig
    reads as boosting: lr is the shrinkage, epochs the most trees, patience the rounds without a
    better validation loss before stopping (on the validation windows, as the nets), loss
    mae/mse, weight_decay the L2 penalty on leaf values, seed the random state."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not gathers_whole(windows):
        raise ViewcastError(
            f"{len(windows):,} windows of {windows.n} lags are too many for the hgb family "
            "(it trains on every window at once): use the panel grid's networks"
        )
    start = time.perf_counter()
    model = ViewsModel(mcfg)
    source = FullRows(windows, model, tcfg, torch.device("cpu"))
    x_tr, y_tr = source.xs_tr.double().numpy(), source.ys_tr[:, 0].double().numpy()
    va = source.va
    stops = bool(len(va)) and tcfg.patience > 0
    if tcfg.loss not in TREE_LOSSES:
        raise ViewcastError(f"the hgb family's loss is mae or mse, not {tcfg.loss}")
    trees = HistGradientBoostingRegressor(
        loss=TREE_LOSSES[tcfg.loss],
        learning_rate=tcfg.lr,
        max_iter=max(tcfg.epochs, 1),
        max_leaf_nodes=mcfg.leaves,
        l2_regularization=tcfg.weight_decay,
        early_stopping=stops,
        n_iter_no_change=max(tcfg.patience, 1),
        random_state=tcfg.seed,
    )
    validation = {}
    if stops:
        _, ys_va, _ = model.encode(va.x, va.y, va.weekday)
        validation = {"X_val": source.xs_va.double().numpy(), "y_val": ys_va[:, 0].double().numpy()}
    trees.fit(x_tr, y_tr, **validation)
    model.trees = trees
    history = {"train_loss": [float(-v) for v in trees.train_score_[1:]]}
    if stops and len(va) <= TREE_CURVE_ROWS:  # each tree's validation MAE in views
        y_va = va.y.double().numpy()
        history["val_mae"] = [
            float(
                np.abs(
                    model.decode(torch.as_tensor(p[:, None]), source.scale_va.double()).numpy()
                    - y_va
                ).mean()
            )
            for p in trees.staged_predict(validation["X_val"])
        ]
    model.eval()
    with torch.no_grad():
        train_mae, val_mae = source.final_mae(model)
    result = TrainResult(model, history, trees.n_iter_, trees.n_iter_, device="cpu")
    result.train_mae, result.val_mae, result.val_pred = train_mae, val_mae, source.val_pred
    result.rows, result.seconds = source.counts, time.perf_counter() - start
    return result


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
        self.tr, self.va = split_tensors(windows, device)
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
        return mae(model(self.tr.x, self.tr.weekday), self.tr.y).item(), val


def validation_forecasts(model, va: Rows) -> tuple:
    """A model's forecasts of gathered validation rows (float64 on the host) and their MAE."""
    if not len(va):
        return None, math.nan
    pred = model(va.x, va.weekday)
    return pred.cpu().numpy().astype(np.float64), mae(pred, va.y).item()


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


def solve_least_squares(model: ViewsModel, xs: torch.Tensor, ys: torch.Tensor) -> None:
    """The linear model's closed form (minimum MSE): the reference for gradient descent."""
    if model.cfg.model != "linear":
        raise ViewcastError("--solver lstsq is for --model linear only")
    design = torch.cat([xs, torch.ones_like(xs[:, :1])], dim=1).double()
    coef = torch.linalg.lstsq(design.cpu(), ys.double().cpu()).solution.squeeze(1)
    with torch.no_grad():
        model.net.weight.copy_(coef[:-1].unsqueeze(0).float())
        model.net.bias.copy_(coef[-1:].float())


def _descend(
    model: ViewsModel,
    source: FullRows | SampledRows,
    tcfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> TrainResult:
    n = source.rows
    batch = n if tcfg.batch_size == 0 else min(tcfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = tcfg.epochs * steps_per_epoch
    warmup_steps = round(tcfg.warmup_epochs * steps_per_epoch)
    params = list(model.net.parameters())
    opt = make_optimizer(
        tcfg.optimizer, params, tcfg.lr, tcfg.momentum, tcfg.alpha, weight_decay=tcfg.weight_decay
    )
    loss_fn = loss_function(tcfg.loss)
    use_amp = tcfg.amp and device.type == "cuda"
    max_norm = tcfg.clip if tcfg.clip > 0 else math.inf
    history: dict[str, list[float]] = {"train_loss": [], "val_mae": [], "grad_norm": [], "lr": []}
    best_val, best_epoch, best_state = math.inf, 0, None
    step = epoch = 0

    for epoch in range(1, tcfg.epochs + 1):
        # one pass over the epoch's rows, batches on the device; losses stay on the device
        model.train()
        loss_sum = torch.zeros((), device=device)
        norm_sum = torch.zeros((), device=device)
        for xb, yb in source.batches(batch):
            lr = get_lr(
                step,
                total_steps,
                tcfg.lr,
                tcfg.schedule,
                warmup_steps,
                tcfg.step_epochs * steps_per_epoch,
                tcfg.gamma,
            )
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(model.net(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # the gradient norm is recorded every step (L6: stuck is not always a small gradient)
            norm_sum += torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
            opt.step()
            loss_sum += loss.detach() * len(yb)
            step += 1

        # validation MAE in views: the one host sync of the epoch
        model.eval()
        with torch.no_grad():
            val_mae = source.validation_mae(model)
            train_loss, grad_norm, val = torch.stack(
                [loss_sum / n, norm_sum / steps_per_epoch, val_mae]
            ).tolist()
        record = {"train_loss": train_loss, "grad_norm": grad_norm, "lr": lr, "val_mae": val}
        for key, value in record.items():
            history[key].append(value)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if not math.isfinite(record["train_loss"]):
            raise ViewcastError(f"training diverged at epoch {epoch} (loss {record['train_loss']})")

        # early stopping on validation MAE, keeping the best weights
        if record["val_mae"] < best_val:
            best_val, best_epoch = record["val_mae"], epoch
            best_state = copy.deepcopy(model.state_dict())
            source.best_pred = source.epoch_pred
        elif tcfg.patience and epoch - best_epoch >= tcfg.patience:
            break

    if tcfg.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(model, history, best_epoch, epoch, device=str(device))
