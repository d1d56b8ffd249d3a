"""Hessian eigenvalues, critical points, Lanczos, and the lecture experiment's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.lecture import diagnostics as diag
from pipeline.lecture.experiment import Row, depth_findings, views_weights
from pipeline.models.families import ModelConfig, ViewsModel


def test_the_hessian_of_a_quadratic_is_its_matrix():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eigs = np.array([-3.0, -0.5, 0.25, 1.0, 2.0, 7.0])
    a = torch.tensor(q @ np.diag(eigs) @ q.T)
    b = torch.tensor(rng.normal(size=6))
    f = lambda t: 0.5 * t @ a @ t + b @ t  # noqa: E731
    theta = torch.tensor(rng.normal(size=6))
    np.testing.assert_allclose(diag.hessian_eigenvalues(f, theta), eigs, atol=1e-10)


def test_the_huber_surface_is_torchs_huber_and_its_hessian_counts_the_small_residuals():
    """A linear model: the Huber loss of the residuals r is torch's, and its Hessian is
    [x 1]^T [x 1] / n over the rows with |r| < delta only (the linear part has no curvature)."""
    from pipeline.models.train import HUBER_DELTA

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    y = 2 * torch.randn(50, 1, generator=gen, dtype=torch.float64)
    net = torch.nn.Linear(3, 1).double()
    f, theta = diag.model_loss(net, x, y, "huber")
    residual = net(x) - y
    want = torch.nn.functional.huber_loss(net(x), y, delta=HUBER_DELTA)
    assert f(theta).item() == pytest.approx(want.item(), rel=1e-12)
    small = (residual.abs() < HUBER_DELTA).squeeze(1)
    assert 0 < small.sum() < len(x), "both sides of delta are exercised"
    design = torch.cat([x, torch.ones(50, 1, dtype=torch.float64)], dim=1)[small]
    hvp = diag.hvp_function(f, theta)  # forward over reverse, as Lanczos uses it
    h = torch.stack([hvp(e) for e in torch.eye(4, dtype=torch.float64)])
    np.testing.assert_allclose(h.numpy(), (design.T @ design / 50).numpy(), atol=1e-12)


def test_saddle_and_minimum_at_the_origin():
    origin = torch.zeros(2, dtype=torch.float64)
    saddle = diag.critical_point(lambda t: t[0] ** 2 - t[1] ** 2, origin)
    assert saddle.kind == "saddle point" and saddle.minimum_ratio == 0.5
    assert (saddle.min_eigenvalue, saddle.max_eigenvalue) == pytest.approx((-2.0, 2.0))
    minimum = diag.critical_point(lambda t: t[0] ** 2 + t[1] ** 2, origin)
    assert minimum.kind == "local minimum" and minimum.minimum_ratio == 1.0
    assert minimum.grad_norm == 0.0
    maximum = diag.critical_point(lambda t: -(t[0] ** 2) - t[1] ** 2, origin)
    assert maximum.kind == "local maximum" and maximum.minimum_ratio == 0.0
    flat = diag.critical_point(lambda t: t[0] ** 2 + 0 * t[1], origin)
    assert flat.kind.startswith("flat (degenerate) minimum") and flat.zero == 1


def small_network_loss():
    torch.manual_seed(0)
    model = ViewsModel(ModelConfig(lags=7, model="relu", layers=2, width=12))
    x, y = torch.randn(300, 7), torch.randn(300, 1)
    return diag.model_loss(model.net, x, y, "mse")


def test_lanczos_matches_the_exact_extreme_eigenvalues_within_one_percent():
    f, theta = small_network_loss()
    exact = diag.hessian_eigenvalues(f, theta)
    ritz = diag.lanczos(diag.hvp_function(f, theta), theta.numel(), steps=80)
    assert ritz[0] == pytest.approx(exact[0], rel=0.01)
    assert ritz[-1] == pytest.approx(exact[-1], rel=0.01)
    assert exact[0] < 0 < exact[-1], "a random network is at a saddle-like point"
    # above the exact limit critical_point switches to Lanczos and reads the point the same way
    by_lanczos = diag.critical_point(f, theta, exact_limit=10)
    by_exact = diag.critical_point(f, theta)
    assert (by_lanczos.method, by_exact.method) == ("lanczos", "exact")
    assert by_lanczos.kind == by_exact.kind == "saddle point"
    assert by_lanczos.minimum_ratio is None and 0 < by_exact.minimum_ratio < 1


def test_escaping_x2_minus_y2_goes_along_y_and_beats_a_random_direction():
    f = lambda t: t[0] ** 2 - t[1] ** 2  # noqa: E731
    out = diag.escape(f, torch.zeros(2, dtype=torch.float64), radius=1.0)
    assert out.eigenvalue == pytest.approx(-2.0) and out.method == "exact"
    assert out.drop == pytest.approx(1.0) and abs(out.best_eta) == pytest.approx(1.0)
    assert all(a <= 0 for a in out.along)  # every step along u lowers the loss
    assert out.random_drop < out.drop, "the random slice is not the steepest"


def test_a_small_network_at_its_saddle_escapes_and_then_trains_lower():
    """y = w2 w1 x on y = x: at w1 = w2 = 0 the gradient is zero and the Hessian is
    E[x^2] [[0, -2], [-2, 0]]: a saddle with eigenvalue -2 E[x^2] along (1, 1)/sqrt(2)."""
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False))
    torch.nn.init.zeros_(net[0].weight)
    torch.nn.init.zeros_(net[1].weight)
    x = torch.linspace(-1, 1, 21).reshape(-1, 1)
    f, theta = diag.model_loss(net, x, x, loss="mse")
    out = diag.escape(f, theta, radius=0.5)
    assert out.eigenvalue == pytest.approx(-2 * float((x.double() ** 2).mean()), rel=1e-6)
    assert out.drop > 0 and out.drop > out.random_drop
    _, u, _ = diag.extreme_eigenpair(f, theta)
    stay = diag.descend(f, theta, steps=50, lr=0.5)
    leave = diag.descend(f, theta + out.best_eta * u, steps=50, lr=0.5)
    assert stay[-1] == pytest.approx(stay[0]), "gradient descent cannot leave the saddle"
    assert leave[-1] < 1e-3 * stay[-1], "from the escaped point it trains to the minimum"


def test_lanczos_ritz_vectors_are_eigenvectors():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    eigs = np.linspace(-4, 9, 30)
    a = torch.tensor(q @ np.diag(eigs) @ q.T)
    values, vectors = diag.lanczos_pairs(lambda v: a @ v, 30, steps=30)
    for k in (0, -1):
        residual = a @ vectors[:, k] - values[k] * vectors[:, k]
        assert residual.norm().item() < 1e-8


def test_stuck_is_a_flat_loss_with_a_large_gradient():
    loss = [10.0 - 0.5 * e for e in range(10)] + [5.0] * 30
    big = [1.0] * 40
    assert diag.stuck_epochs(loss, big, window=20)[0] == 31  # 20 epochs after it stopped
    assert diag.stuck_epochs(loss, [1.0] * 10 + [1e-3] * 30, window=20) == []


def test_linear_weights_in_views_reproduce_the_model():
    torch.manual_seed(0)
    model = ViewsModel(ModelConfig(lags=7, model="linear"))
    x = np.random.default_rng(0).lognormal(7, 0.5, (50, 7))
    model.fit_normalisation(torch.tensor(x, dtype=torch.float32), torch.tensor(x[:, 0] * 2))
    weights, note = views_weights(model)
    w = np.array([weights[f"w_{j}"] for j in range(1, 8)])
    assert note == ""
    np.testing.assert_allclose(weights["b"] + x @ w, model.predict(x), rtol=1e-4)


def test_depth_findings_name_overfitting_and_optimisation_problems():
    rows = [
        Row("relu-1", "", 0, train_mae=100.0, val_mae=90.0, lowest_loss=0.5),
        Row("relu-2", "", 0, train_mae=80.0, val_mae=95.0, lowest_loss=0.3),  # overfits
        Row("relu-3", "", 0, train_mae=85.0, val_mae=94.0, lowest_loss=0.4),  # fits worse
    ]
    found = depth_findings(rows)
    assert len(found) == 2
    assert found[0].startswith("Overfitting: from relu-1 to relu-2")
    assert found[1].startswith("Optimisation problem: relu-3 never fitted the training days")
    assert "0.4 > 0.3" in found[1]
    # a worse MAE at the kept epoch is no optimisation problem if some epoch fitted better
    rows[2] = Row("relu-3", "", 0, train_mae=85.0, val_mae=94.0, lowest_loss=0.2)
    assert len(depth_findings(rows)) == 1
    assert depth_findings(rows[:1])[0].startswith("Every deeper network")


@pytest.mark.slow  # a sweep, end to end
def test_diagnose_reads_a_training_run(two_series: Path, cli):
    assert cli("features").exit_code == 0
    args = ("--lags", "7", "--model", "relu", "--layers", "1", "--width", "8", "--epochs", "30")
    trained = cli("train", *args)
    assert trained.exit_code == 0, trained.output
    ws = Paths(two_series)
    (run,) = tracking.runs(ws, tracking.Stage.TRAIN)
    result = cli("diagnose", run.run_id, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    point = report["point"]
    assert point["method"] == "exact" and point["parameters"] == 73
    # On the MAE a one-layer ReLU network has no curvature within a layer (relu'' = |.|'' = 0):
    # its Hessian is [[0, B], [B^T, 0]] between the output layer and the hidden layer, whose
    # eigenvalues come in pairs +s, -s. So the point is a saddle, symmetric about zero.
    assert point["kind"] == "saddle point"
    assert point["positive"] == point["negative"] > 0
    assert point["min_eigenvalue"] == pytest.approx(-point["max_eigenvalue"], rel=1e-6)
    logged = tracking.get_run(ws, run.run_id)
    assert logged.tags["critical_point"] == point["kind"]
    assert logged.metrics["hessian_max_eigenvalue"] == pytest.approx(point["max_eigenvalue"])
    assert Path(report["figure"]).exists()
    assert cli("diagnose", "nosuchrun").exit_code == 2

    # L4: that saddle has a negative eigenvalue: a step along its eigenvector lowers the loss
    result = cli("diagnose", run.run_id, "--escape", "--escape-steps", "20", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    e = found["escape"]
    assert e["eigenvalue"] == pytest.approx(point["min_eigenvalue"], rel=1e-6)
    assert e["drop"] > 0 and min(e["along"]) == pytest.approx(-e["drop"])
    assert len(found["stay"]) == len(found["leave"]) == 21
    logged = tracking.get_run(ws, run.run_id)
    assert logged.metrics["escape_drop"] == pytest.approx(e["drop"])
    assert "diagnostics/escape-" + run.run_id + ".png" in {
        p for p in tracking.artifacts(ws, run.run_id, "diagnostics")
    }
    words = cli("diagnose", run.run_id, "--escape").stdout
    assert "lowers the loss by" in words and "negative curvature" in words
    for bad in (("--escape-steps", "-1"), ("--escape-lr", "0")):
        refused = cli("diagnose", run.run_id, "--escape", *bad)
        assert refused.exit_code == 2 and refused.stderr.startswith(
            "viewcast: error: --escape-steps must be 0 or more and --escape-lr positive"
        )

    # a baseline has nothing gradient descent trained: one line, no traceback
    assert cli("train", "--model", "naive", "--lags", "1").exit_code == 0
    naive = next(r for r in tracking.runs(ws, tracking.Stage.TRAIN) if r.run_id != run.run_id)
    refused = cli("diagnose", naive.run_id)
    assert refused.exit_code == 2 and refused.stderr == (
        f"viewcast: error: run {naive.run_id} (naive) has no weights trained by gradient "
        "descent to diagnose: give a linear, sigmoid or relu run\n"
    )
