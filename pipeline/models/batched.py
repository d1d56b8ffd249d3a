"""Batched training: many configurations of one shape trained as ONE model on one device.

(Not Kaggle's model stacking: the `--stack` option and the `stack_*` names here mean a batch of
configurations trained together.) A batch's parameters carry a leading member dimension (M, ...):
every layer is a batched matrix product (`torch.baddbmm`), so one forward/backward/step trains all
members at the price of one small model's Python overhead.

Members share the shape (lags, family, layers, width, batch norm, dropout, calendar, loss, batch
size, rows per epoch, epochs) and the rows (one window size and fold): every window gathered once
(FullStack), or at Kaggle scale the series array alone (SampledStack, see
device_rows.SampledRows). They
may differ in everything else: target transform and scaling, optimiser and its hyper-parameters
(per-member tensors, see optim.StackedOptimizer), seed and patience. A member trained here is the
configuration trained alone: the same initial weights, batch order and update formulas; its own
early stopping (a stopped member is frozen), divergence, curves and gradient norm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.models import device_rows
from pipeline.models.device_rows import (
    Rows,
    SampledRows,
    SeriesArrays,
    gather_rows,
    mae,
    require_gatherable,
    require_training_rows,
    validation_forecasts,
)
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.models.optim import StackedOptimizer, get_lr
from pipeline.models.train import TrainConfig, TrainResult, loss_function, resolve_device

SHAPE_MODEL = ("lags", "recent", "model", "layers", "width", "batchnorm", "dropout", "calendar")
SHAPE_TRAIN = ("loss", "batch_size", "rows_per_epoch", "epochs", "device", "amp")
BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # torch.nn.BatchNorm1d's defaults


def stackable(mcfg: ModelConfig, tcfg: TrainConfig) -> bool:
    """Gradient-descent trainings of one-day models stack; the closed form, naive baselines,
    trees and direct multi-day models train alone."""
    return mcfg.model not in ("naive", "hgb") and tcfg.solver == "gd" and not mcfg.direct


def stack_key(mcfg: ModelConfig, tcfg: TrainConfig) -> tuple:
    """Configurations with the same key have parameters of the same shapes and the same steps."""
    return tuple(getattr(mcfg, k) for k in SHAPE_MODEL) + tuple(
        getattr(tcfg, k) for k in SHAPE_TRAIN
    )


# --- the rows, gathered on the device ----------------------------------------------------------


@dataclass
class StackData:
    """The rows every member trains on, in views, on the device."""

    tr: Rows
    va: Rows


def stack_data(windows: LagWindows, device: torch.device) -> StackData:
    """Training and validation rows: the series array moves to the device once, the windows are
    gathered there by index."""
    train_rows, val_rows = windows.rows("train"), windows.rows("val")
    require_training_rows(windows.n, len(train_rows))
    values = torch.from_numpy(windows.values.astype(np.float32)).to(device)
    target = torch.from_numpy(windows.target).to(device)
    weekday = torch.from_numpy(windows.weekday().astype(np.int64)).to(device)

    def rows(index: np.ndarray) -> Rows:
        at = torch.from_numpy(index).to(device)
        return Rows(gather_rows(values, target[at], windows.n), values[target[at]], weekday[at])

    return StackData(rows(train_rows), rows(val_rows))


# --- the stacked network -----------------------------------------------------------------------


class StackedNet:
    """The members' nets as stacked tensors: name -> (M, *shape), walked in the template's order."""

    def __init__(self, nets: list[nn.Module]) -> None:
        template = nets[0]
        self.layers = list(template) if isinstance(template, nn.Sequential) else [template]
        self.prefix = isinstance(template, nn.Sequential)
        self.params = {
            name: torch.stack([dict(net.named_parameters())[name].detach() for net in nets])
            .clone()
            .requires_grad_(True)
            for name, _ in template.named_parameters()
        }
        self.buffers = {
            name: torch.stack([dict(net.named_buffers())[name] for net in nets]).clone()
            for name, b in template.named_buffers()
            if b.is_floating_point()
        }

    def _name(self, i: int, leaf: str) -> str:
        return f"{i}.{leaf}" if self.prefix else leaf

    def forward(self, h: torch.Tensor, training: bool) -> torch.Tensor:
        """(M, B, N) encoded inputs -> (M, B, 1) outputs; batch norm updates its moving
        averages in training mode, as torch's does."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear):
                w, b = self.params[self._name(i, "weight")], self.params[self._name(i, "bias")]
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif isinstance(layer, nn.BatchNorm1d):
                h = self._batchnorm(i, h, training)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif isinstance(layer, nn.Sigmoid):
                h = torch.sigmoid(h)
            elif isinstance(layer, nn.Dropout):
                h = F.dropout(h, layer.p, training)
        return h

    def _batchnorm(self, i: int, h: torch.Tensor, training: bool) -> torch.Tensor:
        """torch's own batch norm kernel over (rows, members x units): each member's units are
        channels of their own, with their own statistics and moving averages."""
        members, rows, units = h.shape
        flat = h.transpose(0, 1).reshape(rows, members * units)
        out = F.batch_norm(
            flat,
            self.buffers[self._name(i, "running_mean")].view(-1),
            self.buffers[self._name(i, "running_var")].view(-1),
            self.params[self._name(i, "weight")].reshape(-1),
            self.params[self._name(i, "bias")].reshape(-1),
            training,
            BN_MOMENTUM,
            BN_EPS,
        )
        return out.reshape(rows, members, units).transpose(0, 1)

    def keep(self, index: torch.Tensor) -> None:
        """Only the members at `index` stay in the stack."""
        self.params = {
            k: v.detach().index_select(0, index).requires_grad_(True)
            for k, v in self.params.items()
        }
        self.buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}

    def snapshot(self) -> dict[str, torch.Tensor]:
        """Every parameter and moving average, detached (for the best-epoch weights)."""
        return {k: v.detach().clone() for k, v in (self.params | self.buffers).items()}

    def member_state(self, state: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
        return {k: v[m] for k, v in state.items()}


# --- the stacked optimisers ---------------------------------------------------------------------


# --- training ------------------------------------------------------------------------------------


@dataclass
class Member:
    """One configuration of a stack, with its own model (normalisation inside) and encoded rows."""

    mcfg: ModelConfig
    tcfg: TrainConfig
    model: ViewsModel


def _encode(members: list[Member], data: StackData):
    """Each member's scaled training and validation rows, stacked: (M, rows, N)."""
    xs_tr, ys_tr, xs_va, scales = [], [], [], []
    tr, va = data.tr, data.va
    for m in members:
        m.model.fit_normalisation(tr.x, tr.y)
        xs, ys, _ = m.model.encode(tr.x, tr.y, tr.weekday)
        xv, _, scale = m.model.encode(va.x, None, va.weekday)
        xs_tr.append(xs), ys_tr.append(ys), xs_va.append(xv), scales.append(scale)
    return torch.stack(xs_tr), torch.stack(ys_tr), torch.stack(xs_va), torch.stack(scales)


def _decode(members: list[Member], out: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(M, V, 1) net outputs -> (M, V) views, each member with its own statistics."""
    y_mean = torch.stack([m.model.y_mean for m in members]).unsqueeze(1)
    y_std = torch.stack([m.model.y_std for m in members]).unsqueeze(1)
    v = ((out * y_std + y_mean) * scale).squeeze(2)
    log = torch.tensor([m.mcfg.target_transform == "log1p" for m in members], device=v.device)
    return torch.where(log.unsqueeze(1), torch.expm1(v), v)


def fit_stack(
    windows: LagWindows,
    configs: list[tuple[ModelConfig, TrainConfig]],
    on_epoch: Callable[[int, int], None] | None = None,
) -> list[TrainResult | ViewcastError]:
    """Train every (ModelConfig, TrainConfig) of one stack key together; each member's result,
    or the ViewcastError it failed with (the others go on). With `rows_per_epoch` each member
    draws its epochs' windows as it would alone (device_rows.SampledRows)."""
    keys = {stack_key(m, t) for m, t in configs}
    if len(keys) != 1 or not all(stackable(m, t) for m, t in configs):
        raise ViewcastError("a stack takes gradient-descent configurations of one shape")
    mcfg0, tcfg0 = configs[0]
    if mcfg0.lags != windows.n:
        raise ViewcastError(f"model expects {mcfg0.lags} lags, windows have {windows.n}")
    try:
        require_gatherable(windows, tcfg0)
    except ViewcastError as err:  # every member fails alike, each as its own run
        return [err] * len(configs)
    device = resolve_device(tcfg0.device)
    members = []
    for mcfg, tcfg in configs:
        torch.manual_seed(tcfg.seed)  # the same initial weights as a training alone
        members.append(Member(mcfg, tcfg, ViewsModel(mcfg).to(device)))
    start = time.perf_counter()
    if tcfg0.rows_per_epoch:
        source: FullStack | SampledStack = SampledStack(windows, members, device)
    else:
        source = FullStack(stack_data(windows, device), members, device)
    net = StackedNet([m.model.net for m in members])
    loop = _Loop(members, net, device, source)
    loop.run(on_epoch)
    seconds = time.perf_counter() - start
    return [loop.result(m, seconds) for m in range(len(members))]


class FullStack:
    """Every training and validation row, encoded by each member its own way: (M, rows, N) on
    the device; an epoch is one pass over them in each member's own seeded order."""

    def __init__(self, data: StackData, members: list[Member], device) -> None:
        self.data = data
        self.xs_tr, self.ys_tr, self.xs_va, self.scale_va = _encode(members, data)
        self.rows = self.ys_tr.shape[1]  # rows an epoch
        self.shuffles = [torch.Generator(device=device).manual_seed(m.tcfg.seed) for m in members]

    def batches(self, slots: list[int], batch: int):
        """(S, B, N) inputs and (S, B, 1) targets of the members in `slots`, step by step."""
        n = self.rows
        if batch >= n:
            yield self.xs_tr, self.ys_tr
            return
        device = self.xs_tr.device
        rank = torch.arange(len(slots), device=device).unsqueeze(1)
        orders = torch.stack(
            [torch.randperm(n, device=device, generator=self.shuffles[m]) for m in slots]
        )
        for lo in range(0, n, batch):
            idx = orders[:, lo : lo + batch]
            yield self.xs_tr[rank, idx], self.ys_tr[rank, idx]

    @torch.no_grad()
    def validation(self, here: list[Member], net: StackedNet, slots: list[int]) -> torch.Tensor:
        """Each member's MAE in views on the validation rows (nan without any)."""
        if not len(self.data.va):
            return torch.full((len(slots),), math.nan, device=self.xs_va.device)
        pred = _decode(here, net.forward(self.xs_va, training=False), self.scale_va)
        return (pred - self.data.va.y).abs().mean(dim=1)

    def keep(self, index: torch.Tensor) -> None:
        """Only these stack positions from now on (the others stopped)."""
        self.xs_tr, self.ys_tr, self.xs_va, self.scale_va = (
            t.index_select(0, index) for t in (self.xs_tr, self.ys_tr, self.xs_va, self.scale_va)
        )

    def final(self, m: int, model: ViewsModel) -> tuple[float, float, dict, np.ndarray | None]:
        """Member m's train and validation MAE in views with its final weights, its rows, its
        validation forecasts."""
        tr, va = self.data.tr, self.data.va
        train_mae = mae(model(tr.x, tr.weekday), tr.y).item()
        val_pred, val_mae = validation_forecasts(model, va)
        return train_mae, val_mae, {"train": len(tr), "val": len(va)}, val_pred


class SampledStack:
    """Kaggle-scale rows for a stack: the series array and target positions on the device once
    (device_rows.SeriesArrays); each member draws its windows with its own generator, fits its
    normalisation on its own sample and encodes them its own way, exactly as alone
    (device_rows.SampledRows), and its validation sample is scored through the stacked net."""

    def __init__(self, windows: LagWindows, members: list[Member], device) -> None:
        shared = SeriesArrays.of(windows, device, members[0].mcfg.calendar != "none")
        self.sources = [SampledRows(windows, m.model, m.tcfg, device, shared) for m in members]
        self.rows = members[0].tcfg.rows_per_epoch

    def batches(self, slots: list[int], batch: int):
        """(S, B, N) inputs and (S, B, 1) targets: each member's own draw, stacked."""
        for pairs in zip(*(self.sources[m].batches(batch) for m in slots), strict=True):
            yield torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    @torch.no_grad()
    def validation(self, here: list[Member], net: StackedNet, slots: list[int]) -> torch.Tensor:
        """Each member's MAE in views on its validation sample, SCORE_CHUNK windows at a time."""
        sources = [self.sources[m] for m in slots]
        device = sources[0].values.device
        if not len(sources[0].val_t):
            return torch.full((len(slots),), math.nan, device=device)
        targets = [s.val_t[s.val_sample] for s in sources]
        pieces = []
        chunk = device_rows.SCORE_CHUNK
        for lo in range(0, len(targets[0]), chunk):
            encoded = []
            for s, t in zip(sources, targets, strict=True):
                x, _, weekday = s.gather(t[lo : lo + chunk])
                encoded.append(s.model.encode(x, None, weekday))
            xs, scale = torch.stack([e[0] for e in encoded]), torch.stack([e[2] for e in encoded])
            pieces.append(_decode(here, net.forward(xs, training=False), scale).cpu())
        pred = torch.cat(pieces, dim=1).numpy().astype(np.float64)
        errors = [s.sample_error(p) for s, p in zip(sources, pred, strict=True)]
        return torch.tensor(errors, device=device)

    def keep(self, index: torch.Tensor) -> None:
        """Nothing to drop: each member's draws are its own."""

    def final(self, m: int, model: ViewsModel) -> tuple[float, float, dict, np.ndarray]:
        """Member m's sample train MAE, its MAE on every validation window, rows, forecasts."""
        source = self.sources[m]
        train_mae, val_mae = source.final_mae(model, None)
        return train_mae, val_mae, source.counts, source.val_pred


class _Loop:
    """The stacked loop with its per-member bookkeeping (read `run` top to bottom).

    `slots` are the members still in the stack: when a quarter of them have stopped (or failed)
    the stack is compacted to the others, so finished members cost no more arithmetic. Per-member
    records (curves, best epoch, best weights) are indexed by the member's original position."""

    def __init__(
        self, members: list[Member], net: StackedNet, device: torch.device, source
    ) -> None:
        self.members, self.net, self.device, self.source = members, net, device, source
        self.count = len(members)
        self.tcfgs = [m.tcfg for m in members]
        self.opt = StackedOptimizer(net.params, self.tcfgs)
        self.history = [
            {"train_loss": [], "val_mae": [], "grad_norm": [], "lr": []} for _ in members
        ]
        self.best_val = [math.inf] * self.count
        self.best_epoch = [0] * self.count
        self.epochs_run = [0] * self.count
        self.active = [True] * self.count
        self.failed: dict[int, ViewcastError] = {}
        self.slots = list(range(self.count))
        self.best = {k: list(v.unbind(0)) for k, v in net.snapshot().items()}
        self.last: dict[int, dict[str, torch.Tensor]] = {}  # weights of members compacted away

    def run(self, on_epoch) -> None:
        tcfg = self.tcfgs[0]
        n = self.source.rows
        batch = n if tcfg.batch_size == 0 else min(tcfg.batch_size, n)
        steps = math.ceil(n / batch)
        total = tcfg.epochs * steps
        loss_fn = loss_function(tcfg.loss)
        use_amp = tcfg.amp and self.device.type == "cuda"
        step = 0
        for epoch in range(1, tcfg.epochs + 1):
            size = len(self.slots)
            # one pass over the epoch's rows, each member in its own batch order
            loss_sum = torch.zeros(size, device=self.device)
            norm_sum = torch.zeros(size, device=self.device)
            for xb, yb in self.source.batches(self.slots, batch):
                lrs = self._learning_rates(step, total, steps)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = self.net.forward(xb, training=True).float()
                losses = loss_fn(out, yb, reduction="none").mean(dim=(1, 2))
                for p in self.net.params.values():
                    p.grad = None
                losses.sum().backward()
                grad, norms = self._clipped_gradient()
                norm_sum += norms
                self.opt.step(lrs, grad)
                loss_sum += losses.detach() * yb.shape[1]
                step += 1

            # validation MAE in views for every member: the one host sync of the epoch
            here = [self.members[m] for m in self.slots]
            val = self.source.validation(here, self.net, self.slots)
            train_loss, grad_norm, val_mae = torch.stack(
                [loss_sum / n, norm_sum / steps, val]
            ).tolist()
            self._book(epoch, train_loss, grad_norm, val_mae, lrs)
            if on_epoch is not None:
                on_epoch(epoch, sum(self.active))
            if not any(self.active):
                break
            self._compact_if_worth_it()

    def _learning_rates(self, step: int, total: int, steps: int) -> list[float]:
        """This step's learning rate of each member in the stack (0 for a stopped one)."""
        lrs = []
        for m in self.slots:
            c = self.tcfgs[m]
            warmup = round(c.warmup_epochs * steps)
            lr = get_lr(step, total, c.lr, c.schedule, warmup, c.step_epochs * steps, c.gamma)
            lrs.append(lr if self.active[m] else 0.0)
        return lrs

    def _clipped_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's gradient as one (members, parameters) row, clipped to its max norm,
        and the norms before clipping (as torch's clip_grad_norm_ reports them)."""
        grad = torch.cat([p.grad.flatten(1) for p in self.net.params.values()], 1)
        norms = grad.pow(2).sum(1).sqrt()
        clips = [self.tcfgs[m].clip for m in self.slots]
        if any(clips):
            max_norm = torch.tensor([c if c > 0 else math.inf for c in clips], device=grad.device)
            grad.mul_(torch.clamp(max_norm / (norms + 1e-6), max=1.0).unsqueeze(1))
        return grad, norms

    def _book(self, epoch: int, train_loss, grad_norm, val_mae, lrs) -> None:
        """Curves, divergence, early stopping and the best weights, member by member."""
        improved = []
        for j, m in enumerate(self.slots):
            if not self.active[m]:
                continue
            record = {
                "train_loss": train_loss[j],
                "grad_norm": grad_norm[j],
                "lr": lrs[j],
                "val_mae": val_mae[j],
            }
            for key, value in record.items():
                self.history[m][key].append(value)
            self.epochs_run[m] = epoch
            if not math.isfinite(train_loss[j]):
                self.failed[m] = ViewcastError(
                    f"training diverged at epoch {epoch} (loss {train_loss[j]})"
                )
                self.active[m] = False
                continue
            patience = self.tcfgs[m].patience
            if val_mae[j] < self.best_val[m]:
                self.best_val[m], self.best_epoch[m] = val_mae[j], epoch
                improved.append(j)
            elif patience and epoch - self.best_epoch[m] >= patience:
                self.active[m] = False
        if improved:
            for k, v in self.net.snapshot().items():
                for j in improved:
                    self.best[k][self.slots[j]] = v[j]

    def _compact_if_worth_it(self) -> None:
        """Drop stopped and failed members from the stack once they are a quarter of it."""
        keep = [j for j, m in enumerate(self.slots) if self.active[m]]
        if len(keep) > 0.75 * len(self.slots):
            return
        now = self.net.snapshot()
        for j, m in enumerate(self.slots):
            if not self.active[m]:
                self.last[m] = {k: v[j] for k, v in now.items()}
        index = torch.tensor(keep, device=self.device)
        self.net.keep(index)
        self.opt.params = self.net.params
        self.opt.keep(keep, [self.tcfgs[self.slots[j]] for j in keep])
        self.source.keep(index)
        self.slots = [self.slots[j] for j in keep]

    def result(self, m: int, seconds: float) -> TrainResult | ViewcastError:
        """Member m as a ViewsModel with its best (or last) weights and final MAE in views."""
        if m in self.failed:
            return self.failed[m]
        member = self.members[m]
        if member.tcfg.restore_best and self.best_epoch[m] > 0:
            state = {k: v[m] for k, v in self.best.items()}
        elif m in self.last:
            state = self.last[m]
        else:
            state = {k: v[self.slots.index(m)] for k, v in self.net.snapshot().items()}
        member.model.net.load_state_dict(state, strict=False)
        model = member.model.eval()
        with torch.no_grad():
            train_mae, val_mae, rows, val_pred = self.source.final(m, model)
        return TrainResult(
            model,
            self.history[m],
            self.best_epoch[m],
            self.epochs_run[m],
            seconds / self.count,
            str(self.device),
            train_mae,
            val_mae,
            rows,
            val_pred=val_pred,
        )
