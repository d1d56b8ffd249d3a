"""What a training run records before the MLflow door writes it: metrics, thinned curves, files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.models.outcome import CURVE_POINTS, curve_points, thin_epochs


def test_short_curves_keep_every_epoch() -> None:
    assert thin_epochs(5) == [1, 2, 3, 4, 5]
    assert thin_epochs(CURVE_POINTS) == list(range(1, CURVE_POINTS + 1))
    assert thin_epochs(0) == []


@pytest.mark.parametrize("epochs", [CURVE_POINTS + 1, 1999, 2000, 100_000])
def test_long_curves_keep_at_most_the_limit_with_the_best_and_the_last(epochs: int) -> None:
    best = epochs // 3 + 1
    kept = thin_epochs(epochs, (best,))
    assert len(kept) <= CURVE_POINTS and kept == sorted(set(kept))
    assert {1, best, epochs} <= set(kept)
    gaps = np.diff(kept)
    assert gaps.max() <= math.ceil(epochs / (CURVE_POINTS - 2)), "evenly spaced, not clumped"


def test_curve_points_name_the_epoch_curve_and_drop_non_finite_values() -> None:
    history = {"train_loss": [3.0, math.nan, 1.0], "val_mae": [30.0, 20.0, math.inf]}
    assert curve_points(history, best_epoch=2) == [
        ("train_loss", 1, 3.0),
        ("train_loss", 3, 1.0),
        ("val_mae_epoch", 1, 30.0),
        ("val_mae_epoch", 2, 20.0),
    ]
    long = {"val_mae": [float(e) for e in range(3000)]}
    points = curve_points(long, best_epoch=1234)
    assert ("val_mae_epoch", 1234, 1233.0) in points and ("val_mae_epoch", 3000, 2999.0) in points


def test_each_thinned_curve_keeps_its_own_minimum() -> None:
    """The lecture's tables read a run's lowest training loss from its logged curve."""
    rng = np.random.default_rng(3)
    history = {
        "train_loss": list(rng.uniform(1, 2, 2000)),
        "grad_norm": list(rng.uniform(size=2000)),
    }
    history["train_loss"][1337] = 0.5
    points = curve_points(history, best_epoch=10)
    for key, values in history.items():
        kept = [v for k, _, v in points if k == key]
        assert min(kept) == min(values) and len(kept) <= CURVE_POINTS
