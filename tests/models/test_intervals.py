"""Split-conformal intervals: the finite-sample quantile, coverage, per-series widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models import intervals as iv
from pipeline.search import holdout


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    errors = np.arange(1.0, 21.0)  # 20 errors: 1..20
    assert iv.conformal_quantile(errors, 80) == 17.0  # ceil(21 * 0.8) = 17th smallest
    assert iv.conformal_quantile(errors, 95) == 20.0  # ceil(21 * 0.95) = 20th
    assert iv.conformal_quantile(errors[:10], 95) == np.inf  # too few errors for 95%


def test_split_conformal_covers_fresh_exchangeable_errors():
    """Calibrated on m errors, the interval covers a fresh error with probability
    ceil((m+1) level) / (m+1): checked over 400 seeded calibration sets of 60 errors."""
    rng = np.random.default_rng(0)
    m = 60
    for level in iv.LEVELS:
        covered = []
        for _ in range(400):
            calibration, fresh = rng.exponential(10, m), rng.exponential(10, 2000)
            covered.append(np.mean(fresh <= iv.conformal_quantile(calibration, level)))
        expected = np.ceil((m + 1) * level / 100) / (m + 1)
        assert np.mean(covered) == pytest.approx(expected, abs=0.01)
        assert np.mean(covered) >= level / 100 - 0.01


@pytest.mark.parametrize("layout", ["shuffled", "sorted", "uneven"])
def test_grouped_conformal_quantile_matches_one_group_at_a_time(layout):
    """Every layout: groups in any order (the padded table), in order (validation rows come
    series by series), and one group far larger than the rest (one lexsort instead)."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, 5, 300)
    group[group == 3] = 4  # group 3 has no errors
    if layout == "sorted":
        group.sort()
    if layout == "uneven":
        group = np.concatenate([np.full(5000, 2), group])
    errors = rng.exponential(10, len(group))
    errors[:20] = errors[20:40]  # ties
    for level in iv.LEVELS:
        grouped = iv.grouped_conformal_quantile(errors, group, 6, level)
        for g in range(6):
            mine = errors[group == g]
            expected = iv.conformal_quantile(mine, level) if len(mine) else np.nan
            np.testing.assert_equal(grouped[g], expected)


def test_spliced_takes_the_first_steps_from_one_and_the_rest_from_the_other():
    names = np.array(["a", "b"])

    def made(steps: int, base: float) -> iv.Intervals:
        width = {lv: base + lv + np.arange(steps * 2.0).reshape(steps, 2) for lv in iv.LEVELS}
        relative = {lv: base + lv / 100 + np.arange(steps * 1.0) for lv in iv.LEVELS}
        return iv.Intervals(names, width, relative)

    first, rest = made(3, 1000.0), made(5, 0.0)
    both = iv.spliced(first, rest)
    assert both.horizons == 5 and list(both.names) == ["a", "b"]
    for lv in iv.LEVELS:
        np.testing.assert_array_equal(both.width[lv][:3], first.width[lv])
        np.testing.assert_array_equal(both.width[lv][3:], rest.width[lv][3:])
        np.testing.assert_array_equal(
            both.relative[lv], [*first.relative[lv], *rest.relative[lv][3:]]
        )


def test_intervals_from_validation_cover_the_test_days(production: Path):
    """Calibrated on the validation days, checked on the 60 test days the calibration never saw
    (the test is finalized in this workspace): coverage near the nominal share, within two
    binomial standard deviations."""
    ws = Paths(production)
    model = tracking.load_model(ws, tracking.champion_run(ws))
    store = Store(ws)
    intervals = iv.validation_intervals(model, store.read_dev(), store.read_splits())
    data = holdout.Holdout(ws).data(model.cfg.lags)
    rows = data.rows["test"]
    err = np.abs(data.windows.y(rows) - model.predict(data.windows.x(rows)))
    shares = {}
    for level in iv.LEVELS:
        shares[level] = np.mean(err <= intervals.width[level][0])
        sd = np.sqrt(level / 100 * (1 - level / 100) / len(rows))
        assert shares[level] >= level / 100 - 2 * sd, (level, shares[level])
    assert shares[95] >= shares[80]
