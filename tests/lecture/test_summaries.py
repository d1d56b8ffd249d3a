"""The numbers the studies are summed up by."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.lecture import summaries


def test_flatness_of_a_parabola():
    alphas = np.linspace(-1, 1, 21).tolist()
    line = [2.0 + 3.0 * a * a for a in alphas]
    assert summaries.flatness(line, alphas, at=0.5) == pytest.approx(3.0 * 0.25 / 2.0)
