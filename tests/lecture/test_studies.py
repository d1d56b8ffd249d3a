"""The lecture's L4-L8 studies: softmax and cross-entropy, direction classes, filter-normalised
directions, the deep sigmoid network, and `viewcast experiment lecture --only` end to end."""

from __future__ import annotations

import pytest
import torch

from pipeline.lecture import studies


def test_filter_normalised_directions_match_each_neuron_and_skip_biases():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    d = studies.filter_normalised(net, torch.Generator().manual_seed(1))
    parts = torch.split(d, [p.numel() for p in net.parameters()])
    for (_, p), part in zip(net.named_parameters(), parts, strict=True):
        part = part.reshape(p.shape)
        if p.dim() == 1:
            assert (part == 0).all()
        else:
            torch.testing.assert_close(part.norm(dim=1), p.detach().double().norm(dim=1))


def test_the_sigmoid_nets_with_and_without_batch_norm_start_alike():
    plain, normed = studies.sigmoid_net(8, False, seed=3), studies.sigmoid_net(8, True, seed=3)
    linears = [[m.weight for m in net if isinstance(m, torch.nn.Linear)] for net in (plain, normed)]
    assert len(linears[0]) == studies.SIGMOID_LAYERS + 1
    for a, b in zip(*linears, strict=True):
        torch.testing.assert_close(a, b)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in normed) == studies.SIGMOID_LAYERS


def test_the_sigmoid_net_trains_in_the_one_loop_as_momentum_sgd_by_hand():
    """train_sigmoid is the shared loop with momentum SGD on seeded mini-batches (batch norm in
    training mode, the curve in evaluation mode): the same curve as the loop written out."""
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(130, 8, generator=gen)
    ys = xs[:, :1] * 0.5 - xs[:, 1:2] + 0.1 * torch.randn(130, 1, generator=gen)
    net, curve = studies.train_sigmoid(xs, ys, batchnorm=True, lr=0.05, epochs=4, batch=64)
    twin = studies.sigmoid_net(8, True, 0)
    opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(0)
    by_hand = []
    for _ in range(4):
        twin.train()
        for idx in torch.randperm(130, generator=order).split(64):
            if len(idx) < 2:  # the last batch of 2 rows stays, one row would be dropped
                continue
            opt.zero_grad()
            (twin(xs[idx]) - ys[idx]).abs().mean().backward()
            opt.step()
        twin.eval()
        with torch.no_grad():
            by_hand.append(float((twin(xs) - ys).abs().mean()))
    assert curve == pytest.approx(by_hand, rel=1e-5)
    assert curve[-1] < curve[0]
    assert not net.training
