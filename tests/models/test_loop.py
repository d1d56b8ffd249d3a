"""The one training loop: curves, the schedule, clipping, early stopping on `monitor` with the
best weights kept, divergence, and the same steps as a loop written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.data.errors import ViewcastError
from pipeline.models.loop import descend
from pipeline.models.train import TrainConfig


def _data(n: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


def test_full_batch_sgd_is_the_loop_written_out_with_its_curves() -> None:
    x, y = _data()
    net, twin = _net(), _net()
    rule = TrainConfig(optimizer="sgd", lr=0.1, epochs=5, patience=0, restore_best=False)
    done = descend(
        net, lambda: [(x, y)], len(x), 1, torch.nn.functional.mse_loss, rule,
        lambda: {"val": (net(x) - y).abs().mean()},
    )  # fmt: skip
    losses, norms = [], []
    for _ in range(5):
        twin.zero_grad()
        loss = torch.nn.functional.mse_loss(twin(x), y)
        loss.backward()
        norms.append(float(torch.cat([p.grad.flatten() for p in twin.parameters()]).norm()))
        losses.append(loss.item())
        with torch.no_grad():
            for p in twin.parameters():
                p -= 0.1 * p.grad
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert done.history["train_loss"] == pytest.approx(losses, rel=1e-6)
    assert done.history["grad_norm"] == pytest.approx(norms, rel=1e-5)
    assert done.history["lr"] == [0.1] * 5
    assert done.history["val"][-1] < done.history["val"][0]
    assert (done.epochs_run, done.best_epoch) == (5, 0)  # no monitor: no best epoch


def test_warmup_and_clipping_shape_every_step() -> None:
    x, y = _data()
    net = _net()
    rule = TrainConfig(
        optimizer="sgd", lr=0.1, epochs=4, warmup_epochs=2, clip=0.01, patience=0,
        schedule="constant", restore_best=False,
    )  # fmt: skip
    start = torch.cat([p.detach().flatten() for p in net.parameters()])
    done = descend(net, lambda: [(x, y)], len(x), 1, torch.nn.functional.mse_loss, rule, dict)
    assert done.history["lr"] == pytest.approx([0.05, 0.1, 0.1, 0.1])
    moved = torch.cat([p.detach().flatten() for p in net.parameters()]) - start
    # each step moves the weights by lr x at most the clipped norm
    assert float(moved.norm()) <= (0.05 + 3 * 0.1) * 0.01 + 1e-6
    assert min(done.history["grad_norm"]) > 0.01, "the recorded norm is before clipping"


def test_early_stopping_keeps_the_best_epoch_and_its_weights() -> None:
    x, y = _data()
    net = _net()
    scores = iter([5.0, 3.0, 4.0, 4.5, 6.0, 7.0])
    kept = {}

    def remember() -> None:
        kept["weight"] = net.weight.detach().clone()

    rule = TrainConfig(optimizer="sgd", lr=0.05, epochs=6, patience=2, restore_best=True)
    done = descend(
        net, lambda: [(x, y)], len(x), 1, torch.nn.functional.l1_loss, rule,
        lambda: {"val_mae": next(scores)}, monitor="val_mae", on_best=remember,
    )  # fmt: skip
    assert (done.best_epoch, done.epochs_run) == (2, 4)  # 2 epochs without a better score
    torch.testing.assert_close(net.weight.detach(), kept["weight"])
    assert done.history["val_mae"] == [5.0, 3.0, 4.0, 4.5]


def test_a_diverging_training_stops_with_one_clear_error() -> None:
    x, y = _data()
    rule = TrainConfig(optimizer="sgd", lr=1e6, epochs=50, patience=0)
    net = _net()
    with pytest.raises(ViewcastError, match="diverged at epoch"):
        descend(net, lambda: [(x, 1e6 * y)], len(x), 1, torch.nn.functional.mse_loss, rule, dict)
    assert not all(math.isfinite(p.detach().abs().max().item()) for p in net.parameters())
