"""Optimisers and learning-rate schedules of lectures 5-6.

Adagrad follows the lecture, not torch: sigma_t = sqrt(mean of g_0^2..g_t^2), the ROOT MEAN
SQUARE of the past gradients, and theta <- theta - lr / (sigma_t + eps) * g_t. (torch.optim.Adagrad
divides by the root of the SUM: the lecture's step with lr shrunk by sqrt(t+1).)
RMSProp is torch's: v_t = alpha v_{t-1} + (1 - alpha) g_t^2 from v_{-1} = 0, then
theta -= lr g / (sqrt(v) + eps).
Adam is torch's, with bias correction.
The rules are written once (`direction`, on a stack of members): the single trainer's
LectureOptimizer steps one model as a stack of one, the batched trainer's StackedOptimizer many.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from pipeline.data.errors import ViewcastError
from pipeline.models.config import OPTIMIZERS, SCHEDULES

if TYPE_CHECKING:
    from pipeline.models.train import TrainConfig


def direction(kind: str, g: torch.Tensor, state: dict, hyper: dict, t: int) -> torch.Tensor:
    """The step direction of one optimiser at step t (from 1): theta <- theta - lr * direction.
    The one place the rules are written: `g` is (members, P), one row per model trained (one
    for the single trainer), `hyper` holds per-member (members,) momentum and alpha, `state` the
    optimiser's moments, updated in place."""
    if kind == "sgd":
        return g
    if kind == "momentum":  # torch.optim.SGD(momentum=...): buf = mu buf + g, from buf = g
        if "buf" not in state:
            state["buf"] = g.clone()
        else:
            state["buf"].mul_(_along(hyper["momentum"], g)).add_(g)
        return state["buf"]
    if kind == "adagrad":  # the lecture's: sigma = root MEAN square of past gradients
        total = state.setdefault("sum_sq", torch.zeros_like(g)).addcmul_(g, g)
        return g / (total / t).sqrt_().add_(1e-8)
    if kind == "rmsprop":  # torch's: v = alpha v + (1 - alpha) g^2 from v = 0
        alpha = _along(hyper["alpha"], g)
        v = state.setdefault("v", torch.zeros_like(g)).mul_(alpha).add_((1 - alpha) * g * g)
        return g / (v.sqrt() + 1e-8)
    if kind == "adam":  # torch's: bias-corrected first and second moments
        b1, b2 = 0.9, 0.999
        m = state.setdefault("m", torch.zeros_like(g)).lerp_(g, 1 - b1)
        v = state.setdefault("v", torch.zeros_like(g)).mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(1e-8)
        return (m / (1 - b1**t)).div_(denom)
    raise ViewcastError(f"unknown optimizer {kind!r} (choose from {', '.join(OPTIMIZERS)})")


def _along(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-member vector shaped to broadcast over one member's slice of `like`."""
    return vector.view(-1, *([1] * (like.dim() - 1)))


class LectureOptimizer(torch.optim.Optimizer):
    """One model's optimiser (torch's interface, so schedules set param_groups' lr): each
    parameter a stack of one member for `direction`, the rules the batched trainer uses too.
    L2 weight decay as torch's optimisers add it: g <- g + wd * theta."""

    def __init__(
        self,
        params: Iterable,
        kind: str,
        lr: float,
        momentum: float = 0.9,
        alpha: float = 0.99,
        weight_decay: float = 0.0,
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ViewcastError(f"unknown optimizer {kind!r} (choose from {', '.join(OPTIMIZERS)})")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        self.kind = kind

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr = None  # one float32 tensor a group and step, as the stack's learning rates
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["t"], state["moments"] = 0, {}
                    state["hyper"] = {
                        k: torch.tensor([group[k]], device=p.device) for k in ("momentum", "alpha")
                    }
                state["t"] += 1
                g = g.reshape(1, -1)
                step = direction(self.kind, g, state["moments"], state["hyper"], state["t"])
                if lr is None:
                    lr = torch.tensor([group["lr"]], device=p.device)
                p.sub_((_along(lr, step) * step).view_as(p))
        return loss


def make_optimizer(
    name: str,
    params: Iterable,
    lr: float,
    momentum: float = 0.9,
    alpha: float = 0.99,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """One of OPTIMIZERS, by the lecture's names (Adam's betas are torch's: 0.9, 0.999)."""
    return LectureOptimizer(params, name, lr, momentum, alpha, weight_decay)


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


# --- the same rules for a batch of models trained as one (pipeline.models.batched) -----------


class StackedOptimizer:
    """The lecture's optimisers on stacked parameters, each member with its own hyper-parameters
    and learning rate; members may use different optimisers (each type updates its members)."""

    def __init__(self, params: dict[str, torch.Tensor], configs: list[TrainConfig]) -> None:
        self.params = params
        self.state: dict[str, dict[str, torch.Tensor]] = {}  # optimiser -> (members, P) moments
        self.t = 0
        self._group(configs)

    def _group(self, configs: list[TrainConfig]) -> None:
        """Members by optimiser, with their constant hyper-parameters as device vectors."""
        device = next(iter(self.params.values())).device
        self.configs = configs
        self.groups: dict[str, list[int]] = {}
        self.hyper: dict[str, dict[str, torch.Tensor]] = {}
        self.decays: dict[str, bool] = {}
        for kind in sorted({c.optimizer for c in configs}):
            members = [m for m, c in enumerate(configs) if c.optimizer == kind]
            self.groups[kind] = members
            mine = [configs[m] for m in members]
            self.hyper[kind] = {
                name: torch.tensor([getattr(c, name) for c in mine], device=device)
                for name in ("weight_decay", "momentum", "alpha")
            }
            self.hyper[kind]["index"] = torch.tensor(members, device=device)
            self.decays[kind] = any(c.weight_decay for c in mine)

    def keep(self, positions: list[int], configs: list[TrainConfig]) -> None:
        """Only the members at `positions` stay (their optimiser state with them)."""
        rows = {
            kind: [members.index(p) for p in positions if p in members]
            for kind, members in self.groups.items()
        }
        self.state = {
            kind: {k: v[rows[kind]] for k, v in st.items()}
            for kind, st in self.state.items()
            if rows[kind]  # an optimiser whose members all left leaves with them
        }
        self._group(configs)

    def step(self, lrs: list[float], grad: torch.Tensor) -> None:
        """One update of every member with its own learning rate (0 freezes a member). `grad` is
        (members, all parameters): the clipped gradients flattened in the parameters' order, so
        each optimiser's arithmetic is a few kernels whatever the depth of the net."""
        self.t += 1
        params = list(self.params.values())
        with torch.no_grad():
            theta = None
            for kind, members in self.groups.items():
                hyper = self.hyper[kind]
                idx = hyper["index"]
                whole = len(members) == len(self.configs)  # one optimiser: no gather needed
                g = grad if whole else grad.index_select(0, idx)
                if self.decays[kind]:  # L2, as torch's optimisers add it
                    if theta is None:
                        theta = torch.cat([p.flatten(1) for p in params], 1)
                    sub = theta if whole else theta.index_select(0, idx)
                    g = g + _along(hyper["weight_decay"], g) * sub
                lr = torch.tensor([lrs[m] for m in members], device=idx.device)
                state = self.state.setdefault(kind, {})
                update = _along(lr, g) * direction(kind, g, state, hyper, self.t)
                lo = 0
                for p in params:
                    width = p[0].numel()
                    part = update[:, lo : lo + width].view(-1, *p.shape[1:])
                    if whole:
                        p.sub_(part)
                    else:
                        p.index_add_(0, idx, part, alpha=-1)
                    lo += width
