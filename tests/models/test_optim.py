"""One step of each optimiser against its formula by hand, many against torch.optim; the single
and the batched trainers share one rule; schedule values exact."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models.optim import LectureOptimizer, StackedOptimizer, get_lr, make_optimizer
from pipeline.models.train import TrainConfig

GRADS = [torch.tensor([0.5, -2.0, 0.0]), torch.tensor([1.5, 1.0, -0.25])]
START = torch.tensor([1.0, 2.0, -3.0])


def _run(name: str, lr: float, **kwargs) -> list[torch.Tensor]:
    """Apply the two GRADS with the named optimiser; return the parameters after each step."""
    p = torch.nn.Parameter(START.clone())
    opt = make_optimizer(name, [p], lr, **kwargs)
    out = []
    for g in GRADS:
        p.grad = g.clone()
        opt.step()
        out.append(p.detach().clone())
    return out


def test_sgd_is_theta_minus_lr_g() -> None:
    after = _run("sgd", 0.1)
    torch.testing.assert_close(after[0], START - 0.1 * GRADS[0])
    torch.testing.assert_close(after[1], START - 0.1 * (GRADS[0] + GRADS[1]))


def test_momentum_accumulates_the_previous_movement() -> None:
    lr, lam = 0.1, 0.9
    after = _run("momentum", lr, momentum=lam)
    m1 = GRADS[0]  # torch's form: m = lambda m + g, theta -= lr m (m_0 = g_0)
    m2 = lam * m1 + GRADS[1]
    torch.testing.assert_close(after[0], START - lr * m1)
    torch.testing.assert_close(after[1], START - lr * m1 - lr * m2)


def test_adagrad_divides_by_the_root_mean_square_of_past_gradients() -> None:
    lr, eps = 0.1, 1e-8
    after = _run("adagrad", lr)
    sigma0 = GRADS[0].abs() + eps  # sqrt(g0^2 / 1)
    step0 = START - lr * GRADS[0] / sigma0
    sigma1 = ((GRADS[0] ** 2 + GRADS[1] ** 2) / 2).sqrt() + eps  # mean, not sum
    torch.testing.assert_close(after[0], step0)
    torch.testing.assert_close(after[1], step0 - lr * GRADS[1] / sigma1)
    # torch's Adagrad divides by the root of the sum: a different second step
    p = torch.nn.Parameter(START.clone())
    torch_opt = torch.optim.Adagrad([p], lr=lr)
    for g in GRADS:
        p.grad = g.clone()
        torch_opt.step()
    assert not torch.allclose(p.detach(), after[1])
    assert isinstance(make_optimizer("adagrad", [torch.nn.Parameter(START)], lr), LectureOptimizer)


def test_adagrad_applies_weight_decay_to_the_gradient() -> None:
    lr, wd, eps = 0.1, 0.5, 1e-8
    after = _run("adagrad", lr, weight_decay=wd)
    g0 = GRADS[0] + wd * START  # torch's convention: the decay joins the gradient
    step0 = START - lr * g0 / (g0.abs() + eps)
    g1 = GRADS[1] + wd * step0
    sigma1 = ((g0**2 + g1**2) / 2).sqrt() + eps
    torch.testing.assert_close(after[0], step0)
    torch.testing.assert_close(after[1], step0 - lr * g1 / sigma1)
    assert not torch.allclose(after[1], _run("adagrad", lr)[1]), "the decay must change the step"


def test_rmsprop_with_alpha() -> None:
    lr, alpha, eps = 0.01, 0.8, 1e-8
    after = _run("rmsprop", lr, alpha=alpha)
    v1 = (1 - alpha) * GRADS[0] ** 2
    v2 = alpha * v1 + (1 - alpha) * GRADS[1] ** 2
    step0 = START - lr * GRADS[0] / (v1.sqrt() + eps)
    torch.testing.assert_close(after[0], step0)
    torch.testing.assert_close(after[1], step0 - lr * GRADS[1] / (v2.sqrt() + eps))


def test_adam_with_bias_correction() -> None:
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    after = _run("adam", lr)
    theta, m, v = START.clone(), torch.zeros(3), torch.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (v_hat.sqrt() + eps)
        torch.testing.assert_close(after[t - 1], theta)


def test_warmup_then_linear_decay_values_are_exact() -> None:
    lrs = [get_lr(s, 10, 1.0, "linear", warmup_steps=4) for s in range(10)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_cosine_step_and_constant_schedules() -> None:
    assert get_lr(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert get_lr(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert get_lr(2, 10, 0.1, "cosine", warmup_steps=2) == pytest.approx(0.1)
    assert get_lr(6, 10, 0.1, "cosine", warmup_steps=2) == pytest.approx(
        0.05 * (1 + math.cos(math.pi * 0.5))
    )
    assert [get_lr(s, 100, 1.0, "step", step_every=3, gamma=0.5) for s in (0, 2, 3, 6, 9)] == [
        1.0,
        1.0,
        0.5,
        0.25,
        0.125,
    ]
    assert get_lr(77, 100, 0.3) == 0.3


TORCH = {
    "sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr, weight_decay=0.01),
    "momentum": lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.8, weight_decay=0.01),
    "rmsprop": lambda ps, lr: torch.optim.RMSprop(ps, lr=lr, alpha=0.9, weight_decay=0.01),
    "adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr, weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_fifty_steps_on_a_network_follow_torch_optim(name: str) -> None:
    """The lecture's rules (written once) give torch's trajectory where torch has the rule."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    twin.load_state_dict(net.state_dict())
    start = [p.detach().clone() for p in net.parameters()]
    ours = make_optimizer(name, net.parameters(), 0.01, momentum=0.8, alpha=0.9, weight_decay=0.01)
    theirs = TORCH[name](twin.parameters(), 0.01)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        x, y = torch.randn(32, 5, generator=gen), torch.randn(32, 1, generator=gen)
        for model, opt in ((net, ours), (twin, theirs)):
            opt.zero_grad()
            (model(x) - y).abs().mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    pairs = zip(net.parameters(), start, strict=True)
    moved = max(float((a.detach() - b).abs().max()) for a, b in pairs)
    assert moved > 1e-3, "fifty steps must move the weights"


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_a_stack_of_members_steps_as_each_member_alone(name: str) -> None:
    """StackedOptimizer (the batched trainer) and LectureOptimizer (the single one) apply the
    same rule: three members with their own lr and hyper-parameters, each as if alone."""
    configs = [
        TrainConfig(optimizer=name, lr=lr, momentum=mu, alpha=a, weight_decay=wd)
        for lr, mu, a, wd in ((0.1, 0.9, 0.99, 0.0), (0.03, 0.5, 0.8, 0.1), (0.01, 0.0, 0.9, 0.0))
    ]
    start = torch.stack([START, 2 * START, -START])
    stacked = {"w": start.clone()}
    opt = StackedOptimizer(stacked, configs)
    alone = [torch.nn.Parameter(row.clone()) for row in start]
    singles = [
        make_optimizer(name, [p], c.lr, c.momentum, c.alpha, c.weight_decay)
        for p, c in zip(alone, configs, strict=True)
    ]
    for g in GRADS:
        grads = torch.stack([g, -g, 0.5 * g])
        opt.step([c.lr for c in configs], grads)
        for p, single, row in zip(alone, singles, grads, strict=True):
            p.grad = row.clone()
            single.step()
    for m, p in enumerate(alone):
        torch.testing.assert_close(stacked["w"][m], p.detach())
    assert not torch.allclose(stacked["w"][0], start[0])
