"""The lecture's claims beyond the grid, measured on the workspace's data (L4-L8).

- escape (L4): at a saddle, a step along the lowest-curvature eigenvector lowers the loss.
- sharpness (L5): small batches end at flatter minima (a smaller top Hessian eigenvalue) that
  generalise better; several seeds per batch size.
- landscape (L6): the loss around the trained weights along filter-normalised random directions
  (Li et al. 2018), for a shallow and a deep ReLU network, with and without batch norm.
- direction (L7): softmax classification of tomorrow's direction; cross-entropy against MSE on the
  probabilities from the same start.
- batchnorm (L8): a deep sigmoid network without and with batch norm, and with batch norm at 5x
  the learning rate; the top Hessian eigenvalue with and without.

Each study returns numbers; pipeline.lecture.report.study_markdown turns them into sentences
computed from the numbers (never written in advance), so a study may well say the data does not
show the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from pipeline.lecture import diagnostics as diag
from pipeline.lecture.classify import train_direction
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.models.loop import descend
from pipeline.models.train import TrainConfig, fit

STUDY_NET = dict(lags=56, model="relu", layers=1, width=100)
SHARPNESS_BATCHES = (0, 256, 32)  # 0: the full batch
LANDSCAPE_NETS = {  # label -> (layers, batch norm)
    "shallow (1x100)": (1, False),
    "deep (4x100)": (4, False),
    "shallow + BN": (1, True),
    "deep + BN": (4, True),
}
SIGMOID_LAYERS, SIGMOID_WIDTH = 5, 50


@dataclass
class StudyResult:
    """One study's numbers (rows or curves) and its figures (file names)."""

    name: str
    numbers: dict = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


def scaled_rows(windows):
    """Training rows in the networks' space (log1p, over each window's mean, standardised):
    (model used as the scaler, x, y) on the last 3,000 training rows."""
    x, y = (torch.as_tensor(a, dtype=torch.float32) for a in diag.last_train_rows(windows))
    cfg = ModelConfig(lags=windows.n, model="linear", target_transform="log1p")
    scaler = ViewsModel(replace(cfg, scaling="window-mean"))
    scaler.fit_normalisation(x, y)
    xs, ys, _ = scaler.encode(x, y)
    return xs, ys


def _fit(windows, epochs: int, seed: int = 0, **fields):
    model = {k: fields.pop(k) for k in ("layers", "width", "batchnorm") if k in fields}
    mcfg = ModelConfig(**{**STUDY_NET, **model}, target_transform="log1p", scaling="window-mean")
    return fit(windows, mcfg, TrainConfig(epochs=epochs, patience=0, seed=seed, **fields))


def _sharpness(model, windows, steps: int = 40) -> float:
    """The top eigenvalue of the training loss's Hessian at the model's weights (Lanczos)."""
    f, theta = diag.views_loss(model, *diag.last_train_rows(windows))
    values = diag.lanczos(diag.hvp_function(f, theta), theta.numel(), steps)
    return float(values[-1])


# --- L4 ------------------------------------------------------------------------------------------


def escape_study(windows, epochs: int, steps: int = 100, lr: float = 1e-2) -> StudyResult:
    """The study network trained with Adam, then the loss along its most negative curvature
    direction against a random one, and gradient descent from both points."""
    result = _fit(windows, epochs)
    f, theta = diag.views_loss(result.model, *diag.last_train_rows(windows))
    out = diag.escape(f, theta)
    _, u, _ = diag.extreme_eigenpair(f, theta)
    stay = diag.descend(f, theta, steps, lr)
    leave = diag.descend(f, theta.double() + out.best_eta * u, steps, lr)
    numbers = {"escape": out.__dict__, "stay": stay, "leave": leave}
    return StudyResult("escape", numbers)


# --- L5 ------------------------------------------------------------------------------------------


def sharpness_study(windows, epochs: int, seeds: int = 3) -> StudyResult:
    """Each batch size with `seeds` seeds: the top Hessian eigenvalue at the end, and MAE."""
    rows = []
    for batch in SHARPNESS_BATCHES:
        for seed in range(seeds):
            result = _fit(windows, epochs, seed=seed, batch_size=batch)
            rows.append(
                {
                    "batch": batch or "full",
                    "seed": seed,
                    "sharpness": _sharpness(result.model, windows),
                    "train_mae": result.train_mae,
                    "val_mae": result.val_mae,
                }
            )
    return StudyResult("sharpness", {"rows": rows})


# --- L6 ------------------------------------------------------------------------------------------


def filter_normalised(net: nn.Module, gen: torch.Generator) -> torch.Tensor:
    """A random direction in parameter space, flat in `named_parameters` order: each weight
    matrix's rows (one per neuron, a "filter") scaled to the norm of the trained row; biases and
    batch-norm parameters left at zero (Li et al., "Visualizing the loss landscape")."""
    parts = []
    for _, p in net.named_parameters():
        d = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        if p.dim() >= 2:
            w = p.detach().double()
            d = d * (w.norm(dim=1, keepdim=True) / d.norm(dim=1, keepdim=True).clamp_min(1e-12))
        else:
            d = torch.zeros_like(d)
        parts.append(d.reshape(-1))
    return torch.cat(parts)


def landscape_study(windows, epochs: int, span: float = 1.0, points: int = 21) -> StudyResult:
    """Each network of LANDSCAPE_NETS trained (Adam, full batch), then its training loss along
    one filter-normalised direction (1-D) and on a plane of two (2-D)."""
    alphas = np.linspace(-span, span, points)
    nets = {}
    x, y = diag.last_train_rows(windows)
    for label, (layers, bn) in LANDSCAPE_NETS.items():
        result = _fit(windows, epochs, layers=layers, batchnorm=bn)
        f, theta = diag.views_loss(result.model, x, y)
        gen = torch.Generator().manual_seed(0)
        net = result.model.net  # the same parameters, in the same order, as theta
        d1, d2 = filter_normalised(net, gen), filter_normalised(net, gen)
        with torch.no_grad():
            base = f(theta).item()
            line = [f(theta + a * d1).item() for a in alphas]
            plane = [[f(theta + a * d1 + b * d2).item() for a in alphas] for b in alphas]
        nets[label] = {"loss": base, "line": line, "plane": plane, "val_mae": result.val_mae}
    return StudyResult("landscape", {"alphas": alphas.tolist(), "nets": nets})


# --- L7 ------------------------------------------------------------------------------------------


def direction_study(windows, epochs: int, lr: float = 1e-2) -> StudyResult:
    """The direction classifier with cross-entropy and with MSE on the probabilities, both from
    the same initial weights."""
    runs = {loss: train_direction(windows, loss, epochs, lr, seed=0) for loss in ("ce", "mse")}
    return StudyResult("direction", {k: v.__dict__ for k, v in runs.items()})


# --- L8 ------------------------------------------------------------------------------------------


def sigmoid_net(lags: int, batchnorm: bool, seed: int = 0) -> nn.Sequential:
    """SIGMOID_LAYERS sigmoid layers of SIGMOID_WIDTH (batch norm before each activation when
    asked), then one linear output; the same Linear weights for a given seed either way."""
    torch.manual_seed(seed)
    linears = [
        nn.Linear(lags if i == 0 else SIGMOID_WIDTH, SIGMOID_WIDTH) for i in range(SIGMOID_LAYERS)
    ]
    out = nn.Linear(SIGMOID_WIDTH, 1)
    layers: list[nn.Module] = []
    for linear in linears:
        layers += [linear, *([nn.BatchNorm1d(SIGMOID_WIDTH)] if batchnorm else []), nn.Sigmoid()]
    return nn.Sequential(*layers, out)


def train_sigmoid(
    xs, ys, batchnorm: bool, lr: float, epochs: int, batch: int = 128, seed: int = 0
) -> tuple[nn.Module, list[float]]:
    """SGD with momentum 0.9 on the MAE, mini-batches of `batch` in a seeded order; the training
    loss (full batch, evaluation mode) after each epoch."""
    net = sigmoid_net(xs.shape[1], batchnorm, seed)
    gen = torch.Generator().manual_seed(seed)

    def batches():  # a seeded order; batch norm needs two rows a batch
        order = torch.randperm(len(xs), generator=gen).split(batch)
        return ((xs[idx], ys[idx]) for idx in order if len(idx) >= 2)

    rule = TrainConfig(
        optimizer="momentum", lr=lr, momentum=0.9, epochs=epochs, patience=0, restore_best=False
    )
    done = descend(
        net,
        batches,
        len(xs),
        math.ceil(len(xs) / batch),
        torch.nn.functional.l1_loss,
        rule,
        lambda: {"full_batch": (net(xs) - ys).abs().mean()},
    )
    return net, done.history.get("full_batch", [])


def batchnorm_study(windows, epochs: int, lr: float = 0.01) -> StudyResult:
    """The deep sigmoid network without batch norm (lr), with it (lr) and with it at 5 lr; the
    top Hessian eigenvalue of the training loss at the end of the first two."""
    xs, ys = scaled_rows(windows)
    runs = {
        "no batch norm": (False, lr),
        "batch norm": (True, lr),
        "batch norm, 5x lr": (True, 5 * lr),
    }
    out = {}
    for label, (bn, rate) in runs.items():
        net, curve = train_sigmoid(xs, ys, bn, rate, epochs)
        f, theta = diag.model_loss(net, xs, ys, "mae")
        top = diag.lanczos(diag.hvp_function(f, theta), theta.numel(), 40)[-1]
        out[label] = {"lr": rate, "curve": curve, "final": curve[-1], "sharpness": float(top)}
    return StudyResult("batchnorm", {"runs": out})


RUNNERS = {
    "escape": escape_study,
    "sharpness": sharpness_study,
    "landscape": landscape_study,
    "direction": direction_study,
    "batchnorm": batchnorm_study,
}
