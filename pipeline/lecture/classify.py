"""L7: classification on the same windows. Will tomorrow's views go down, stay about the same, or
go up? Softmax and cross-entropy are written out here as the lecture writes them.

- softmax: y'_i = exp(y_i) / sum_j exp(y_j) (computed with the maximum subtracted: the same value)
- cross-entropy: e = -sum_i yhat_i ln y'_i, yhat the one-hot label
- the three classes come from the change ln(1 + y) - ln(1 + x_1) of tomorrow over today, cut at
  the tertiles of the training days' changes, so each class holds a third of the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pipeline.models.loop import descend
from pipeline.models.train import TrainConfig

CLASSES = ("down", "same", "up")
# the curves a direction run keeps, one value an epoch (grad_norm: L6's, in the same loop)
HISTORY = ("train_loss", "grad_norm", "train_accuracy", "val_accuracy")


def softmax(z: torch.Tensor) -> torch.Tensor:
    """exp(z_i) / sum_j exp(z_j) over the last axis."""
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_i yhat_i ln softmax(logits)_i (yhat one-hot at the label)."""
    log_p = logits - logits.max(dim=-1, keepdim=True).values
    log_p = log_p - torch.log(torch.exp(log_p).sum(dim=-1, keepdim=True))
    return -log_p.gather(1, labels[:, None]).mean()


def probability_mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between softmax probabilities and the one-hot label (the lecture's
    comparison: harder to optimise where the probabilities saturate)."""
    onehot = torch.nn.functional.one_hot(labels, len(CLASSES)).to(logits.dtype)
    return ((softmax(logits) - onehot) ** 2).sum(dim=-1).mean()


def changes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ln(1 + tomorrow) - ln(1 + today) for windows x (x[:, 0] is today) and targets y."""
    return np.log1p(np.maximum(y, 0)) - np.log1p(np.maximum(x[:, 0], 0))


def thresholds(train_changes: np.ndarray) -> tuple[float, float]:
    """The tertiles of the training days' changes."""
    lo, hi = np.quantile(train_changes, [1 / 3, 2 / 3])
    return float(lo), float(hi)


def labels(change: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    """0 down (below the lower cut), 1 about the same, 2 up (above the upper cut)."""
    return np.digitize(change, cuts).astype(np.int64)


@dataclass
class DirectionResult:
    """A direction classifier's learning curves and accuracies against two baselines."""

    loss: str
    history: dict[str, list[float]] = field(default_factory=dict)
    train_accuracy: float = 0.0
    val_accuracy: float = 0.0
    majority_accuracy: float = 0.0  # always the training days' most common class
    persistence_accuracy: float = 0.0  # tomorrow's class = today's change's class
    cuts: tuple[float, float] = (0.0, 0.0)


def direction_data(windows):
    """Scaled inputs (log1p, over each window's mean, standardised on the training rows) and
    labels of the training and validation rows, the cuts and the baselines' labels."""
    x_tr, y_tr = windows.x(windows.rows("train")), windows.y(windows.rows("train"))
    x_va, y_va = windows.x(windows.rows("val")), windows.y(windows.rows("val"))
    cuts = thresholds(changes(x_tr, y_tr))

    def scaled(x):
        t = np.log1p(np.maximum(x, 0))
        return t - t.mean(axis=1, keepdims=True)

    s_tr, s_va = scaled(x_tr), scaled(x_va)
    mean, std = s_tr.mean(axis=0), s_tr.std(axis=0) + 1e-6
    tensors = [torch.as_tensor((s - mean) / std, dtype=torch.float32) for s in (s_tr, s_va)]
    lab = [torch.as_tensor(labels(changes(x, y), cuts)) for x, y in ((x_tr, y_tr), (x_va, y_va))]
    # today's change (x_1 over x_2) in the same classes: "tomorrow moves as today did"
    today = labels(changes(x_va[:, 1:], x_va[:, 0]), cuts) if x_va.shape[1] > 1 else None
    return tensors, lab, cuts, today


def direction_net(lags: int, width: int = 64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(lags, width), nn.ReLU(), nn.Linear(width, len(CLASSES)))


def train_direction(
    windows, loss: str = "ce", epochs: int = 200, lr: float = 1e-2, seed: int = 0, width: int = 64
) -> DirectionResult:
    """A softmax classifier of tomorrow's direction, full batch with Adam, from the same start
    for a given seed whatever the loss (ce: cross-entropy; mse: MSE on the probabilities)."""
    (x_tr, x_va), (l_tr, l_va), cuts, today = direction_data(windows)
    net = direction_net(x_tr.shape[1], width, seed)
    objective = cross_entropy if loss == "ce" else probability_mse
    # the views models' loop: one full batch an epoch, no early stopping, the last weights
    rule = TrainConfig(optimizer="adam", lr=lr, epochs=epochs, patience=0, restore_best=False)
    done = descend(
        net,
        lambda: [(x_tr, l_tr)],
        len(x_tr),
        1,
        objective,
        rule,
        lambda: {
            "train_accuracy": _accuracy(net(x_tr), l_tr),
            "val_accuracy": _accuracy(net(x_va), l_va),
        },
    )
    out = DirectionResult(loss, {k: done.history.get(k, []) for k in HISTORY})
    out.train_accuracy = out.history["train_accuracy"][-1] if epochs else 0.0
    out.val_accuracy = out.history["val_accuracy"][-1] if epochs else 0.0
    majority = int(np.bincount(l_tr.numpy(), minlength=len(CLASSES)).argmax())
    out.majority_accuracy = float((l_va.numpy() == majority).mean())
    if today is not None:
        out.persistence_accuracy = float((l_va.numpy() == today).mean())
    out.cuts = cuts
    return out


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=-1) == labels).float().mean()
