"""Optimisers and learning-rate schedules of lectures 5-6.

Adagrad follows the lecture, not torch: sigma_t = sqrt(mean of g_0^2..g_t^2), the ROOT MEAN
SQUARE of the past gradients, and theta <- theta - lr / (sigma_t + eps) * g_t. (torch.optim.Adagrad
divides by the root of the SUM: the lecture's step with lr shrunk by sqrt(t+1).)
RMSProp is torch's: v_t = alpha v_{t-1} + (1 - alpha) g_t^2 from v_{-1} = 0, then
theta -= lr g / (sqrt(v) + eps).
Adam is torch's, with bias correction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from pipeline.data.errors import ViewcastError

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "linear", "cosine", "step")


class LectureAdagrad(torch.optim.Optimizer):
    """Adagrad with sigma = root mean square of all past gradients (ML2021 lecture 6)."""

    def __init__(
        self, params: Iterable, lr: float = 1e-2, eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                # L2 weight decay as torch's optimisers do it: g <- g + wd * theta
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["t"] = 0
                    state["sum_sq"] = torch.zeros_like(p)
                state["t"] += 1
                state["sum_sq"].addcmul_(g, g)
                sigma = (state["sum_sq"] / state["t"]).sqrt_().add_(group["eps"])
                p.addcdiv_(g, sigma, value=-group["lr"])
        return loss


def make_optimizer(
    name: str,
    params: Iterable,
    lr: float,
    momentum: float = 0.9,
    alpha: float = 0.99,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """One of OPTIMIZERS, by the lecture's names."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adagrad":
        return LectureAdagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ViewcastError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")


def get_lr(
    step: int,
    total_steps: int,
    base_lr: float,
    schedule: str = "constant",
    warmup_steps: int = 0,
    step_every: int = 1,
    gamma: float = 0.5,
) -> float:
    """Learning rate at optimisation step `step` (0-based): linear warm-up, then the schedule."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    after = step - warmup_steps
    span = max(total_steps - warmup_steps, 1)
    if schedule == "constant":
        return base_lr
    if schedule == "linear":
        return base_lr * max(0.0, 1.0 - after / span)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(after / span, 1.0)))
    if schedule == "step":
        return base_lr * gamma ** (after // max(step_every, 1))
    raise ViewcastError(f"unknown schedule {schedule!r} (choose from {', '.join(SCHEDULES)})")
