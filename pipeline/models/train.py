"""Training one views model: data on the device once, batches sliced there, the one loop
(models.loop) with one host sync per epoch; least squares and trees where they serve."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.models.config import DEVICES, LOSSES, SOLVERS
from pipeline.models.device_rows import (
    FullRows,
    SampledRows,
    gathers_whole,
    require_gatherable,
)
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.models.loop import descend
from pipeline.models.optim import OPTIMIZERS, SCHEDULES

TREE_LOSSES = {"mae": "absolute_error", "mse": "squared_error"}  # scikit-learn names
# huber: squared within one standard deviation of the training targets, linear beyond
HUBER_DELTA = 1.0


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
            "device": (self.device, DEVICES),
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
        bad = {
            "--momentum": not 0 <= self.momentum < 1,
            "--alpha": not 0 <= self.alpha < 1,
            "--weight-decay": not self.weight_decay >= 0,
            "--patience": self.patience < 0,
            "--clip": not self.clip >= 0,
            "--warmup-epochs": not self.warmup_epochs >= 0,
            "--step-epochs": self.step_epochs < 1,
            "--gamma": not 0 < self.gamma <= 1,
        }
        if any(bad.values()):
            option = next(k for k, v in bad.items() if v)
            value = getattr(self, option[2:].replace("-", "_"))
            raise ViewcastError(f"{option} must be {_RANGES[option]}, got {value:g}")


_RANGES = {
    "--momentum": "in [0, 1)",
    "--alpha": "in [0, 1)",
    "--weight-decay": "0 or more",
    "--patience": "0 (never stop early) or more",
    "--clip": "0 (no clipping) or more",
    "--warmup-epochs": "0 or more",
    "--step-epochs": "at least 1",
    "--gamma": "in (0, 1]",
}


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


def loss_function(name: str) -> Callable[..., torch.Tensor]:
    """The training loss on the standardised targets (torch's signature, `reduction` too): mae
    (the lecture's L; with log1p a median in views), mse, or huber (HUBER_DELTA: quadratic for
    small errors like mse, linear for large ones like mae)."""
    if name == "huber":
        return functools.partial(torch.nn.functional.huber_loss, delta=HUBER_DELTA)
    return torch.nn.functional.l1_loss if name == "mae" else torch.nn.functional.mse_loss


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
    if mcfg.direct and (tcfg.rows_per_epoch or not gathers_whole(windows)):
        raise ViewcastError(
            "a direct multi-day model trains on gathered windows: no --rows-per-epoch, and "
            f"{len(windows):,} windows of {windows.n} lags must fit at once"
        )
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
    # lazy: scikit-learn takes 1.7 s to import; only the hgb family needs it
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


def solve_least_squares(model: ViewsModel, xs: torch.Tensor, ys: torch.Tensor) -> None:
    """The linear model's closed form (minimum MSE): the reference for gradient descent."""
    if model.cfg.model != "linear":
        raise ViewcastError("--solver lstsq is for --model linear only")
    design = torch.cat([xs, torch.ones_like(xs[:, :1])], dim=1).double()
    coef = torch.linalg.lstsq(design.cpu(), ys.double().cpu()).solution  # (inputs + 1, H)
    with torch.no_grad():
        model.net.weight.copy_(coef[:-1].T.float())
        model.net.bias.copy_(coef[-1].float())


def _descend(
    model: ViewsModel,
    source: FullRows | SampledRows,
    tcfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> TrainResult:
    """The loop on the model's rows: validation MAE in views each epoch, early stopping on it
    (the best epoch's validation forecasts kept with its weights)."""
    n = source.rows
    batch = n if tcfg.batch_size == 0 else min(tcfg.batch_size, n)

    def keep_best() -> None:
        source.best_pred = source.epoch_pred

    done = descend(
        model.net,
        lambda: source.batches(batch),
        n,
        math.ceil(n / batch),
        loss_function(tcfg.loss),
        tcfg,
        lambda: {"val_mae": source.validation_mae(model)},
        holder=model,
        monitor="val_mae",
        device=device,
        on_epoch=on_epoch,
        on_best=keep_best,
    )
    return TrainResult(model, done.history, done.best_epoch, done.epochs_run, device=str(device))
