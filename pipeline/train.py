"""The training loop: data on the device once, batches sliced there, one host sync per epoch."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.errors import ViewcastError
from pipeline.features import LagWindows
from pipeline.models import ModelConfig, ViewsModel
from pipeline.optim import OPTIMIZERS, SCHEDULES, get_lr, make_optimizer

LOSSES = ("mae", "mse")
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
        if self.lr <= 0 or self.epochs < 0 or self.batch_size < 0:
            raise ViewcastError("--lr must be positive, --epochs and --batch-size not negative")


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


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when one is there, else cpu; cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ViewcastError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def split_tensors(
    windows: LagWindows, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and validation rows as float32 tensors on the device, moved once."""

    def move(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(windows.x(rows), dtype=np.float32))
        y = torch.from_numpy(windows.y(rows).astype(np.float32))
        return x.to(device), y.to(device)

    train_rows, val_rows = windows.rows("train"), windows.rows("val")
    if len(train_rows) < 2:
        raise ViewcastError(
            f"window {windows.n} leaves {len(train_rows)} training rows: ingest longer series "
            "or use a smaller --lags"
        )
    return (*move(train_rows), *move(val_rows))


def mae(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, the lecture's L, in the units of y."""
    return (pred - y).abs().mean()


def fit(
    windows: LagWindows,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train one model on the windows' training rows, early-stopping on validation MAE (views)."""
    if mcfg.lags != windows.n:
        raise ViewcastError(f"model expects {mcfg.lags} lags, windows have {windows.n}")
    torch.manual_seed(tcfg.seed)
    device = resolve_device(tcfg.device)
    x_tr, y_tr, x_va, y_va = split_tensors(windows, device)

    # the model, its normalisation (training rows only), and the data in the net's scaled space
    model = ViewsModel(mcfg).to(device)
    model.fit_normalisation(x_tr, y_tr)
    xs_tr, ys_tr, _ = model.encode(x_tr, y_tr)
    xs_va, _, scale_va = model.encode(x_va)
    rows = {"train": len(y_tr), "val": len(y_va)}
    start = time.perf_counter()

    if tcfg.solver == "lstsq" or not model.trainable:
        if model.trainable:
            solve_least_squares(model, xs_tr, ys_tr)
        result = TrainResult(model, {}, 0, 0, device=str(device), rows=rows)
    else:
        result = _descend(model, xs_tr, ys_tr, xs_va, scale_va, y_va, tcfg, device, on_epoch)
        result.rows = rows
    result.seconds = time.perf_counter() - start

    # final numbers, in views, with the restored best weights in evaluation mode
    model.eval()
    with torch.no_grad():
        result.train_mae = mae(model(x_tr), y_tr).item()
        result.val_mae = mae(model(x_va), y_va).item() if len(y_va) else math.nan
    return result


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
    xs_tr: torch.Tensor,
    ys_tr: torch.Tensor,
    xs_va: torch.Tensor,
    scale_va: torch.Tensor,
    y_va: torch.Tensor,
    tcfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> TrainResult:
    n = len(ys_tr)
    batch = n if tcfg.batch_size == 0 else min(tcfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = tcfg.epochs * steps_per_epoch
    warmup_steps = round(tcfg.warmup_epochs * steps_per_epoch)
    params = list(model.net.parameters())
    opt = make_optimizer(
        tcfg.optimizer, params, tcfg.lr, tcfg.momentum, tcfg.alpha, weight_decay=tcfg.weight_decay
    )
    loss_fn = torch.nn.functional.l1_loss if tcfg.loss == "mae" else torch.nn.functional.mse_loss
    shuffle = torch.Generator(device=device).manual_seed(tcfg.seed)
    use_amp = tcfg.amp and device.type == "cuda"
    max_norm = tcfg.clip if tcfg.clip > 0 else math.inf
    history: dict[str, list[float]] = {"train_loss": [], "val_mae": [], "grad_norm": [], "lr": []}
    best_val, best_epoch, best_state = math.inf, 0, None
    step = epoch = 0

    for epoch in range(1, tcfg.epochs + 1):
        # one pass over the training rows, sliced on the device; losses stay on the device
        model.train()
        order = torch.randperm(n, device=device, generator=shuffle) if batch < n else None
        loss_sum = torch.zeros((), device=device)
        norm_sum = torch.zeros((), device=device)
        for lo in range(0, n, batch):
            idx = order[lo : lo + batch] if order is not None else slice(lo, lo + batch)
            xb, yb = xs_tr[idx], ys_tr[idx]
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
            pred_va = model.decode(model.net(xs_va), scale_va)
            val_mae = mae(pred_va, y_va) if len(y_va) else torch.full((), math.nan, device=device)
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
        elif tcfg.patience and epoch - best_epoch >= tcfg.patience:
            break

    if tcfg.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(model, history, best_epoch, epoch, device=str(device))
