"""Models: a logged model loads back and predicts the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths


def test_logged_model_loads_back_and_predicts_the_same(trained: str, home: Path) -> None:
    from pipeline.data import features as feats

    ws = Paths(home)
    model = tracking.load_model(ws, trained)
    windows = feats.build(ws, feats.FeatureSpec((56,)))[56]
    val = windows.rows("val")
    pred = model.predict(windows.x(val))
    logged_val_mae = tracking.get_run(ws, trained).metrics["val_mae"]
    assert np.abs(pred - windows.y(val)).mean() == pytest.approx(logged_val_mae, rel=1e-6)
    again = tracking.load_model(ws, trained).predict(windows.x(val))
    np.testing.assert_array_equal(pred, again)
