"""The one gradient-descent loop (lectures 2-8): the views models (train.fit), the lecture's
direction classifier (L7) and its batch-norm study (L8) all train here, with options.

Each epoch: the batches in training mode, the learning rate of each step from the schedule
(warm-up, decay), the gradient norm recorded at every step (L6: a stuck training is not always a
small gradient) and clipped if asked; then `evaluate` in evaluation mode, and one host sync for the
epoch's numbers. With `monitor`, early stopping on that number (lower is better) keeps the best
weights. The batched trainer (models.batched) trains many configurations at once with the same
update rules (optim.direction) and schedules (optim.get_lr).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from pipeline.data.errors import ViewcastError
from pipeline.models.optim import get_lr, make_optimizer

if TYPE_CHECKING:
    from pipeline.models.train import TrainConfig

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Descent:
    """What the loop did: the curves (train_loss, grad_norm, lr, then what `evaluate` returned),
    the best epoch by `monitor` (0 without one) and the epochs run."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0


def descend(
    net: torch.nn.Module,
    batches: Callable[[], Iterable[Batch]],
    rows: int,
    steps_per_epoch: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tcfg: TrainConfig,
    evaluate: Callable[[], dict[str, torch.Tensor | float]],
    *,
    holder: torch.nn.Module | None = None,
    monitor: str | None = None,
    device: torch.device = torch.device("cpu"),
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    on_best: Callable[[], None] | None = None,
) -> Descent:
    """Train `net` for tcfg.epochs on `batches()` (each epoch's (x, y) pairs, `rows` rows in
    `steps_per_epoch` batches) with tcfg's optimiser, schedule, clipping and bfloat16 autocast
    (CUDA). `holder` (default `net`) is the module put in training or evaluation mode and whose
    state the best epoch keeps; `on_best` runs when `monitor` improves. With tcfg.patience, stop
    that many epochs after the best; with tcfg.restore_best, end on the best weights."""
    holder = net if holder is None else holder
    total_steps = tcfg.epochs * steps_per_epoch
    warmup_steps = round(tcfg.warmup_epochs * steps_per_epoch)
    params = list(net.parameters())
    opt = make_optimizer(
        tcfg.optimizer, params, tcfg.lr, tcfg.momentum, tcfg.alpha, weight_decay=tcfg.weight_decay
    )
    use_amp = tcfg.amp and device.type == "cuda"
    max_norm = tcfg.clip if tcfg.clip > 0 else math.inf
    out = Descent({"train_loss": [], "grad_norm": [], "lr": []})
    best, best_state = math.inf, None
    step = 0
    lr = tcfg.lr
    for epoch in range(1, tcfg.epochs + 1):
        holder.train()
        loss_sum = torch.zeros((), device=device)
        norm_sum = torch.zeros((), device=device)
        for xb, yb in batches():
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
                loss = loss_fn(net(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm_sum += torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
            opt.step()
            loss_sum += loss.detach() * len(yb)
            step += 1

        holder.eval()
        with torch.no_grad():
            found = evaluate()
            names = ["train_loss", "grad_norm", *found]
            values = [loss_sum / rows, norm_sum / steps_per_epoch]
            values += [torch.as_tensor(v, device=device) for v in found.values()]
            synced = torch.stack([v.reshape(()).float() for v in values]).tolist()  # one sync
        record = dict(zip(names, synced, strict=True)) | {"lr": lr}
        for key, value in record.items():
            out.history.setdefault(key, []).append(value)
        out.epochs_run = epoch
        if on_epoch is not None:
            on_epoch(epoch, record)
        if not math.isfinite(record["train_loss"]):
            raise ViewcastError(f"training diverged at epoch {epoch} (loss {record['train_loss']})")
        if monitor is None:
            continue
        if record[monitor] < best:
            best, out.best_epoch = record[monitor], epoch
            best_state = copy.deepcopy(holder.state_dict())
            if on_best is not None:
                on_best()
        elif tcfg.patience and epoch - out.best_epoch >= tcfg.patience:
            break

    if tcfg.restore_best and best_state is not None:
        holder.load_state_dict(best_state)
    return out
