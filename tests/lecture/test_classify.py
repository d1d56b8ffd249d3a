"""L7: softmax, cross-entropy and the direction classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.lecture import classify


def test_softmax_is_the_lecture_formula_and_cross_entropy_its_log():
    z = torch.tensor([[3.0, 1.0, -3.0], [0.0, 0.0, 0.0], [1000.0, 999.0, 0.0]], dtype=torch.float64)
    p = classify.softmax(z)
    by_hand = torch.exp(z[:2]) / torch.exp(z[:2]).sum(dim=1, keepdim=True)
    torch.testing.assert_close(p[:2], by_hand)  # y'_i = exp(y_i) / sum_j exp(y_j)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.isfinite(p).all(), "large logits do not overflow"
    torch.testing.assert_close(classify.softmax(z + 5.0), p)  # shift invariant
    labels = torch.tensor([0, 2, 1])
    e = classify.cross_entropy(z, labels)
    expected = -torch.log(p[torch.arange(3), labels]).mean()  # -sum_i yhat_i ln y'_i
    torch.testing.assert_close(e, expected)
    torch.testing.assert_close(e, torch.nn.functional.cross_entropy(z, labels))


def test_direction_classes_cut_the_training_changes_in_thirds():
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 1000, size=(3000, 7))
    y = x[:, 0] * np.exp(rng.normal(0, 0.2, size=3000))
    change = classify.changes(x, y)
    np.testing.assert_allclose(change, np.log1p(y) - np.log1p(x[:, 0]))
    cuts = classify.thresholds(change)
    counts = np.bincount(classify.labels(change, cuts), minlength=3)
    assert counts.tolist() == pytest.approx([1000, 1000, 1000], abs=2)
    middle = (cuts[0] + cuts[1]) / 2
    assert classify.labels(np.array([cuts[0] - 1, middle, cuts[1] + 1]), cuts).tolist() == [0, 1, 2]


def test_train_task_direction_logs_accuracies_against_baselines(two_series: Path, cli):
    result = cli("train", "--task", "direction", "--lags", "7", "--epochs", "30", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    run = tracking.get_run(Paths(two_series), found["run_id"])
    assert run.tags["task"] == "direction" and run.stage == tracking.Stage.STUDY
    for key in ("val_accuracy", "majority_accuracy", "persistence_accuracy"):
        assert 0 <= run.metrics[key] <= 1 and run.metrics[key] == pytest.approx(found[key])
    assert len(found["history"]["val_accuracy"]) == 30
    assert found["cuts"][0] < found["cuts"][1]


def test_the_direction_classifier_trains_in_the_one_loop_as_adam_by_hand(two_series: Path):
    """train_direction is the shared loop with Adam on the full batch: the same accuracies as the
    loop written out with torch.optim.Adam, and the gradient norm recorded each epoch."""
    from pipeline.data import features as feats
    from pipeline.data.store import Store

    store = Store(Paths(two_series))
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), 7)
    found = classify.train_direction(windows, "ce", epochs=25, lr=1e-2, seed=3)
    (x_tr, x_va), (l_tr, l_va), _, _ = classify.direction_data(windows)
    net = classify.direction_net(x_tr.shape[1], 64, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    val = []
    for _ in range(25):
        opt.zero_grad()
        classify.cross_entropy(net(x_tr), l_tr).backward()
        opt.step()
        with torch.no_grad():
            val.append(float((net(x_va).argmax(-1) == l_va).float().mean()))
    assert found.history["val_accuracy"] == pytest.approx(val, abs=1e-6)
    assert len(found.history["grad_norm"]) == 25 and min(found.history["grad_norm"]) > 0
    assert found.val_accuracy == pytest.approx(val[-1], abs=1e-6)
    assert found.history["train_loss"][-1] < found.history["train_loss"][0]
