"""The model families: the lecture's formulas, batch norm in evaluation, save and load."""

from __future__ import annotations

import torch

from pipeline.models.families import ModelConfig, ViewsModel


def test_batchnorm_evaluates_with_its_moving_averages() -> None:
    torch.manual_seed(0)
    model = ViewsModel(ModelConfig(4, "relu", 1, 3, batchnorm=True))
    x = torch.rand(64, 4) * 100
    model.train()
    model(x)  # one training pass updates the running statistics
    bn = model.net[1]
    assert bn.num_batches_tracked.item() == 1
    model.eval()
    xs, _, scale = model.encode(x)
    h = model.net[0](xs)
    by_hand = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    out = model.net[3](torch.relu(by_hand))
    torch.testing.assert_close(model(x), model.decode(out, scale))
    batch_stats = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps)
    assert not torch.allclose(by_hand, batch_stats * bn.weight + bn.bias, atol=1e-3)


def test_sigmoid_network_is_b_plus_c_sigmoid_b_plus_wx() -> None:
    """The lecture's y = b + c^T sigmoid(b' + W x), computed by hand from the weights."""
    torch.manual_seed(0)
    net = ViewsModel(ModelConfig(5, "sigmoid", width=8)).net
    x = torch.randn(4, 5)
    (w, b1), (c, b) = (net[0].weight, net[0].bias), (net[2].weight[0], net[2].bias[0])
    by_hand = torch.stack(
        [
            b + sum(c[i] * (1 / (1 + torch.exp(-(b1[i] + w[i] @ row)))) for i in range(8))
            for row in x
        ]
    )
    torch.testing.assert_close(net(x)[:, 0], by_hand)
