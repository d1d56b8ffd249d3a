"""L4-L6 diagnostics: where a training ended (Hessian eigenvalues) and why it got stuck.

- L4: at a critical point the Hessian H of the loss tells what it is: all eigenvalues positive, a
  local minimum; all negative, a local maximum; both signs, a saddle point. The lecture's
  "minimum ratio" is (positive eigenvalues) / (all eigenvalues). Small models get the exact
  Hessian (torch.func.hessian); larger ones the extreme eigenvalues by Lanczos iteration on
  Hessian-vector products, which never forms H.
- L6: the gradient norm next to the loss over epochs ("a stuck training is not always a small
  gradient"); the curves come from the run's per-epoch metrics.

Everything here works on a function f(theta) of a flat parameter vector, so the tests can check it
on functions whose Hessian is known.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad, hessian, jvp

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.lecture import report as lecture_report
from pipeline.models.config import LOSSES
from pipeline.models.train import HUBER_DELTA

EXACT_LIMIT = 2_000  # parameters up to which the full Hessian is formed
Flat = torch.Tensor


# --- the loss as a function of one flat parameter vector ---------------------------------------


def pointwise_loss(err: torch.Tensor, loss: str) -> torch.Tensor:
    """Each error's loss (train.LOSSES), written out: torch's huber_loss has no forward-mode
    derivative of its backward, which Hessian-vector products need."""
    if loss == "mae":
        return err.abs()
    if loss == "huber":
        a = err.abs()
        return torch.where(a < HUBER_DELTA, 0.5 * err**2, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    return err**2


def model_loss(net: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor, loss: str = "mae"):
    """(f, theta): the training loss of `net` on scaled rows as a function of its flattened
    parameters (float64, evaluation mode: batch norm uses its moving averages), and the current
    parameters."""
    net = net.eval().double()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    buffers = {n: b for n, b in net.named_buffers()}
    xs, ys = xs.double(), ys.double()
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def f(flat: Flat) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        params = {n: part.reshape(s) for n, part, s in zip(names, parts, shapes, strict=True)}
        out = functional_call(net, (params, buffers), (xs,))
        return pointwise_loss(out - ys, loss).mean()

    return f, theta


# --- eigenvalues -------------------------------------------------------------------------------


def hessian_eigenvalues(f: Callable[[Flat], torch.Tensor], theta: Flat) -> np.ndarray:
    """All eigenvalues of the Hessian of f at theta, ascending (forms the full matrix)."""
    h = hessian(f)(theta.double())
    h = (h + h.T) / 2  # symmetric up to rounding
    return torch.linalg.eigvalsh(h).numpy()


def hvp_function(f: Callable[[Flat], torch.Tensor], theta: Flat) -> Callable[[Flat], Flat]:
    """v -> H v at theta, by forward-over-reverse differentiation (H is never formed)."""
    g = grad(f)
    theta = theta.double()
    return lambda v: jvp(g, (theta,), (v,))[1]


def lanczos(hvp: Callable[[Flat], Flat], dim: int, steps: int = 80, seed: int = 0) -> np.ndarray:
    """Ritz values of the Hessian after `steps` Lanczos iterations (full reorthogonalisation):
    the extreme ones converge first, so [0] and [-1] estimate the smallest and largest
    eigenvalues."""
    return lanczos_pairs(hvp, dim, steps, seed)[0]


def lanczos_pairs(
    hvp: Callable[[Flat], Flat], dim: int, steps: int = 80, seed: int = 0
) -> tuple[np.ndarray, torch.Tensor]:
    """Ritz values (ascending) and their Ritz vectors (columns, unit length) after `steps`
    Lanczos iterations."""
    steps = min(steps, dim)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=torch.float64)
    basis = [q / q.norm()]
    alphas, betas = [], []
    for j in range(steps):
        w = hvp(basis[j])
        alpha = torch.dot(w, basis[j])
        w = w - alpha * basis[j] - (betas[-1] * basis[j - 1] if j else 0)
        stacked = torch.stack(basis)
        w = w - stacked.T @ (stacked @ w)  # full reorthogonalisation, twice is enough
        w = w - stacked.T @ (stacked @ w)
        alphas.append(alpha.item())
        beta = w.norm().item()
        if j == steps - 1 or beta < 1e-12:
            break
        betas.append(beta)
        basis.append(w / beta)
    off = betas[: len(alphas) - 1]
    t = np.diag(alphas) + np.diag(off, 1) + np.diag(off, -1)
    values, vectors = np.linalg.eigh(t)
    ritz = torch.stack(basis[: len(alphas)]).T @ torch.as_tensor(vectors)
    return values, ritz / ritz.norm(dim=0, keepdim=True)


def extreme_eigenpair(
    f: Callable[[Flat], torch.Tensor],
    theta: Flat,
    lowest: bool = True,
    exact_limit: int = EXACT_LIMIT,
    steps: int = 80,
) -> tuple[float, Flat, str]:
    """The lowest (or highest) eigenvalue of the Hessian of f at theta, its unit eigenvector
    and how it was found: exact (the full Hessian) up to `exact_limit` parameters, else the
    Lanczos Ritz pair."""
    theta = theta.double()
    if theta.numel() <= exact_limit:
        h = hessian(f)(theta)
        values, vectors = torch.linalg.eigh((h + h.T) / 2)
        k = 0 if lowest else -1
        return float(values[k]), vectors[:, k], "exact"
    values, vectors = lanczos_pairs(hvp_function(f, theta), theta.numel(), steps)
    k = 0 if lowest else -1
    return float(values[k]), vectors[:, k], "lanczos"


# --- L4: escape a saddle along a negative-curvature direction ---------------------------------


@dataclass(frozen=True)
class Escape:
    """The loss along the lowest-curvature eigenvector u and along a random direction of the
    same length, around theta: L(theta + eta d) - L(theta) for each eta."""

    eigenvalue: float
    method: str
    etas: list[float]
    along: list[float]  # along u
    random: list[float]  # along a random unit direction
    best_eta: float
    drop: float  # L(theta) - min over eta of L(theta + eta u): > 0 when moving along u helps
    random_drop: float
    grad_norm: float  # at theta: near zero at a critical point


def escape(
    f: Callable[[Flat], torch.Tensor],
    theta: Flat,
    radius: float | None = None,
    points: int = 41,
    seed: int = 0,
) -> Escape:
    """L4: at a saddle (a negative Hessian eigenvalue), theta + eta u with u its eigenvector has
    a lower loss for small eta. Both slices span [-radius, radius] (default: 5% of |theta|, at
    least 0.05), denser near theta."""
    theta = theta.double()
    value, u, method = extreme_eigenpair(f, theta)
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(theta.numel(), generator=gen, dtype=torch.float64)
    r = r / r.norm()
    radius = radius or max(0.05 * theta.norm().item(), 0.05)
    # cubic spacing: most points near theta, where the second-order picture holds
    etas = radius * np.linspace(-1.0, 1.0, points) ** 3
    with torch.no_grad():
        base = f(theta).item()
        along = [f(theta + e * u).item() - base for e in etas]
        random = [f(theta + e * r).item() - base for e in etas]
    best = int(np.argmin(along))
    slope = grad(f)(theta).norm().item()
    return Escape(
        value,
        method,
        etas.tolist(),
        along,
        random,
        float(etas[best]),
        -min(along),
        -min(random),
        slope,
    )


def descend(f: Callable[[Flat], torch.Tensor], theta: Flat, steps: int, lr: float) -> list[float]:
    """Plain gradient descent on f from theta: the loss before each step and at the end."""
    g = grad(f)
    theta = theta.double().clone()
    losses = []
    for _ in range(steps):
        losses.append(f(theta).item())
        theta = theta - lr * g(theta)
    losses.append(f(theta).item())
    return losses


# --- what the point is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CriticalPoint:
    """The lecture's reading of a point: its Hessian's signs and the gradient there."""

    parameters: int
    method: str  # exact | lanczos
    min_eigenvalue: float
    max_eigenvalue: float
    positive: int | None  # counts (exact only)
    negative: int | None
    zero: int | None
    minimum_ratio: float | None  # positive / all (exact only)
    kind: str  # local minimum | local maximum | saddle point | flat (degenerate)
    grad_norm: float


def classify(min_eig: float, max_eig: float, tol: float) -> str:
    """L4's table: the signs of the extreme eigenvalues."""
    if min_eig < -tol and max_eig > tol:
        return "saddle point"
    if min_eig > tol:
        return "local minimum"
    if max_eig < -tol:
        return "local maximum"
    if max_eig > tol:
        return "flat (degenerate) minimum: zero curvature in some directions"
    if min_eig < -tol:
        return "flat (degenerate) maximum: zero curvature in some directions"
    return "flat: zero curvature in every direction"


def critical_point(
    f: Callable[[Flat], torch.Tensor],
    theta: Flat,
    exact_limit: int = EXACT_LIMIT,
    steps: int = 80,
    rel_tol: float = 1e-6,
) -> CriticalPoint:
    """Eigenvalues of the Hessian at theta (exact up to `exact_limit` parameters, else Lanczos),
    the minimum ratio and what kind of point it is."""
    theta = theta.double()
    grad_norm = grad(f)(theta).norm().item()
    dim = theta.numel()
    if dim <= exact_limit:
        eigs = hessian_eigenvalues(f, theta)
        tol = rel_tol * max(abs(eigs).max(initial=0.0), 1e-300)
        pos, neg = int((eigs > tol).sum()), int((eigs < -tol).sum())
        return CriticalPoint(
            dim,
            "exact",
            float(eigs[0]),
            float(eigs[-1]),
            pos,
            neg,
            dim - pos - neg,
            pos / dim,
            classify(float(eigs[0]), float(eigs[-1]), tol),
            grad_norm,
        )
    ritz = lanczos(hvp_function(f, theta), dim, steps)
    tol = rel_tol * max(abs(ritz).max(initial=0.0), 1e-300)
    lo, hi = float(ritz[0]), float(ritz[-1])
    return CriticalPoint(
        dim, "lanczos", lo, hi, None, None, None, None, classify(lo, hi, tol), grad_norm
    )


TRAIN_ROWS = 3_000  # the last training rows the loss surface is measured on


def last_train_rows(windows) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the windows' last TRAIN_ROWS training rows."""
    rows = windows.rows("train")[-TRAIN_ROWS:]
    return windows.x(rows), windows.y(rows)


def views_loss(model, x: np.ndarray, y: np.ndarray, loss: str = "mae", weekday=None):
    """(f, theta): a trained ViewsModel's loss on rows of views (x, y; `weekday`: the target
    days' weekdays, for a weekday-calendar model), in its net's scaled space, as a function of
    its flat parameters (on a copy of the net)."""
    tx = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    ty = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32)
    xs, ys, _ = model.encode(tx, ty, weekday)
    return model_loss(copy.deepcopy(model.net), xs, ys, loss)


def analyse_model(model, x: np.ndarray, y: np.ndarray, loss: str = "mae", weekday=None, **kwargs):
    """The critical point a trained ViewsModel ended at, on rows of views (x, y)."""
    return critical_point(*views_loss(model, x, y, loss, weekday), **kwargs)


def stuck_epochs(loss: list[float], grad_norm: list[float], window: int = 20) -> list[int]:
    """Epochs where the loss barely moved over `window` epochs (<0.1%) although the gradient norm
    stayed at least a tenth of its first value: stuck, but not at a small gradient (L6)."""
    out = []
    for e in range(window, len(loss)):
        flat = abs(loss[e - window] - loss[e]) <= 1e-3 * abs(loss[e - window])
        if flat and grad_norm[e] >= 0.1 * grad_norm[0] and math.isfinite(grad_norm[e]):
            out.append(e + 1)
    return out


@dataclass(frozen=True)
class Diagnosis:
    run_id: str
    name: str
    point: CriticalPoint
    stuck_epochs: list[int]
    figure: str


def diagnose_run(ws, run_id: str, loss: str = "mae") -> Diagnosis:
    """The critical point a training run ended at, on its training rows (every split series;
    the last 3,000 rows), and its gradient norm vs loss figure (reports/, and the run)."""
    model, rows_x, rows_y, days = _run_rows(ws, run_id, loss)
    run = tracking.get_run(ws, run_id)
    point = analyse_model(model, rows_x, rows_y, loss, days)
    history = tracking.epoch_history(ws, run_id)
    stuck = stuck_epochs(history["train_loss"], history["grad_norm"])
    figure = ws.reports / f"diagnose-{run_id}.png"
    ws.reports.mkdir(parents=True, exist_ok=True)
    annotate = tracking.writer(ws, run_id)
    if history["train_loss"]:
        lecture_report.grad_vs_loss({run.name: history}, figure)
        annotate.artifact(figure, "diagnostics")
    metrics = {
        "hessian_min_eigenvalue": point.min_eigenvalue,
        "hessian_max_eigenvalue": point.max_eigenvalue,
    }
    if point.minimum_ratio is not None:
        metrics["minimum_ratio"] = point.minimum_ratio
    annotate.metrics(metrics)
    annotate.tags({"critical_point": point.kind})
    return Diagnosis(run_id, run.name, point, stuck, str(figure) if history["train_loss"] else "")


@dataclass(frozen=True)
class EscapeReport:
    run_id: str
    name: str
    escape: Escape
    stay: list[float]  # plain gradient descent from the trained point ...
    leave: list[float]  # ... and from the escaped point theta + best_eta u
    figure: str


def escape_run(
    ws, run_id: str, loss: str = "mae", steps: int = 0, lr: float = 1e-2
) -> EscapeReport:
    """L4 on a training run: the loss along its lowest-curvature eigenvector and a random
    direction, on its training rows (the last 3,000); with `steps`, gradient descent from the
    trained point and from the escaped one. The figure and numbers are logged to the run."""
    if steps < 0 or not lr > 0:
        raise ViewcastError(
            f"--escape-steps must be 0 or more and --escape-lr positive, got {steps}, {lr:g}"
        )
    model, rows_x, rows_y, days = _run_rows(ws, run_id, loss)
    f, theta = views_loss(model, rows_x, rows_y, loss, days)
    out = escape(f, theta)
    stay = leave = []
    if steps:
        _, u, _ = extreme_eigenpair(f, theta)
        stay = descend(f, theta, steps, lr)
        leave = descend(f, theta.double() + out.best_eta * u, steps, lr)
    run = tracking.get_run(ws, run_id)
    figure = ws.reports / f"escape-{run_id}.png"
    ws.reports.mkdir(parents=True, exist_ok=True)
    lecture_report.escape_figure(
        out, stay, leave, f"{run.name}: {loss} loss around the trained point", figure
    )
    annotate = tracking.writer(ws, run_id)
    annotate.artifact(figure, "diagnostics")
    numbers = {"escape_eigenvalue": out.eigenvalue, "escape_drop": out.drop}
    numbers |= {"escape_random_drop": out.random_drop}
    if steps:
        numbers |= {"escape_stay_loss": stay[-1], "escape_leave_loss": leave[-1]}
    annotate.metrics(numbers)
    return EscapeReport(run_id, run.name, out, stay, leave, str(figure))


def _run_rows(ws, run_id: str, loss: str):
    """A training run's single model, its training rows (the last 3,000) and their weekdays."""
    if loss not in LOSSES:
        raise ViewcastError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    model = tracking.load_model(ws, run_id)
    if not hasattr(model, "net"):
        raise ViewcastError(f"run {run_id} is an ensemble: diagnose one of its members")
    if not any(True for _ in model.net.parameters()):  # naive, seasonal naive, hgb's trees
        raise ViewcastError(
            f"run {run_id} ({model.cfg.model}) has no weights trained by gradient descent to "
            "diagnose: give a linear, sigmoid or relu run"
        )
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    rows = windows.rows("train")[-TRAIN_ROWS:]
    return model, windows.x(rows), windows.y(rows), windows.weekday(rows)
