"""Training rows: seeded samples of windows."""

from __future__ import annotations

import numpy as np


def test_a_row_sample_is_seeded_ordered_and_whole_when_small():
    from pipeline.models.device_rows import sample_rows

    rows = np.arange(10, 1010, 3)
    assert sample_rows(rows, len(rows)) is rows
    picked = sample_rows(rows, 50, seed=1)
    assert len(picked) == 50 and np.all(np.diff(picked) > 0) and np.isin(picked, rows).all()
    np.testing.assert_array_equal(picked, sample_rows(rows, 50, seed=1))
    assert not np.array_equal(picked, sample_rows(rows, 50, seed=2))
