"""The lecture's L4-L8 studies: softmax and cross-entropy, direction classes, filter-normalised
directions, the deep sigmoid network, and `viewcast experiment lecture --only` end to end."""

from __future__ import annotations

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
