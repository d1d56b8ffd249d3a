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
