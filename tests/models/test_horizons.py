"""Forecasts H days from an origin, their errors, and the per-step conformal intervals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.data import features as feats
from pipeline.data.store import SeriesSplit, Splits
from pipeline.data.table import ViewsTable
from pipeline.models import horizons as hz
from pipeline.models import infer
from pipeline.models import intervals as iv
from pipeline.models.config import ModelConfig
from pipeline.models.train import TrainConfig, fit

LEVEL, PHI, SIGMA = 1000.0, 0.8, 50.0


class AR1:
    """The true conditional mean of an AR(1) around LEVEL: x_1 -> the next day's expectation."""

    cfg = SimpleNamespace(lags=3)

    def predict(self, x, weekday=None):
        return LEVEL + PHI * (np.asarray(x)[:, 0] - LEVEL)


def simulate(series: int, days: int, seed: int = 0) -> ViewsTable:
    rng = np.random.default_rng(seed)
    y = np.empty((series, days))
    y[:, 0] = LEVEL + rng.normal(0, SIGMA / np.sqrt(1 - PHI**2), series)
    for t in range(1, days):
        y[:, t] = LEVEL + PHI * (y[:, t - 1] - LEVEL) + rng.normal(0, SIGMA, series)
    return ViewsTable(
        np.array([f"s{i:03d}" for i in range(series)]),
        np.repeat(np.arange(series, dtype=np.int32), days),
        np.tile(np.arange(19000, 19000 + days, dtype=np.int32), series),
        y.reshape(-1),
        np.zeros(series * days, bool),
    )


def splits_for(table: ViewsTable, val_start: int, test_start: int) -> Splits:
    one = SeriesSplit(val_start, test_start, test_start + 30, test_start + 59)
    return Splits(60, test_start - val_start, {str(n): one for n in table.names})


def test_recursive_paths_feed_each_prediction_back_as_lag_1():
    model = SimpleNamespace(
        cfg=SimpleNamespace(lags=2), predict=lambda x, wd: 0.5 * x[:, 0] + 0.25 * x[:, 1] + 1
    )
    x = np.array([[4.0, 8.0], [0.0, 0.0]])
    out = infer.recursive_paths(model, x, np.array([0, 0]), 3)
    expected = []
    for a, b in x:
        row = []
        for _ in range(3):
            a, b = 0.5 * a + 0.25 * b + 1, a
            row.append(a)
        expected.append(row)
    np.testing.assert_allclose(out, expected)


def test_a_stepwise_ensemble_takes_day_1_from_one_blend_and_the_rest_from_another():
    """config.Blend: `first` weights day 1 (the one-day forecast and step 1 of a path), the
    later weights days 2..H; each member forecasts its own path (fed its own predictions)."""
    from pipeline.models.infer import NumpyEnsemble

    def member(a: float, c: float):
        return SimpleNamespace(cfg=SimpleNamespace(lags=1), predict=lambda x, wd: a * x[:, 0] + c)

    slow, fast = member(0.5, 10.0), member(2.0, 0.0)
    step = NumpyEnsemble((slow, fast), weights=(0.0, 1.0), first=(1.0, 0.0))
    x = np.array([[4.0], [100.0]])
    out = infer.paths(step, x, np.array([0, 0]), 4)
    own = [infer.recursive_paths(m, x, np.array([0, 0]), 4) for m in (slow, fast)]
    np.testing.assert_allclose(out[:, 0], own[0][:, 0])  # day 1: slow's 12 and 60
    np.testing.assert_allclose(out[:, 1:], own[1][:, 1:])  # days 2..4: fast's own path
    np.testing.assert_allclose(out[:, 0], [12.0, 60.0])
    np.testing.assert_allclose(out[:, 3], [64.0, 1600.0])  # 4 * 2**4: fast never reads 12
    np.testing.assert_allclose(step.predict(x), [12.0, 60.0])  # one day ahead: the first blend
    plain = NumpyEnsemble((slow, fast), weights=(0.25, 0.75))
    np.testing.assert_allclose(infer.paths(plain, x, np.array([0, 0]), 4)[:, 0], plain.predict(x))


def test_forecast_paths_never_read_imputed_days_or_days_after_the_last_one():
    table = simulate(2, 40)
    imputed = table.imputed.copy()
    imputed[25] = True  # series 0, day 25 was filled in
    table = ViewsTable(table.names, table.code, table.day, table.views, imputed)
    origins = hz.origins_between(table, np.array([19020, 19030]), np.array([19021, 19030]), 3)
    np.testing.assert_array_equal(origins, [20, 21, 70])
    found = hz.forecast_paths(AR1(), table, origins, 7, np.array([19026, 19100]))
    assert found.pred.shape == (3, 7)
    # origin 20 (day 19020): days 19020..19026 seen, except day 19025 (imputed)
    np.testing.assert_array_equal(np.isnan(found.actual[0]), [0, 0, 0, 0, 0, 1, 0])
    # origin 21: day 19027 is after the last day allowed
    np.testing.assert_array_equal(np.isnan(found.actual[1]), [0, 0, 0, 0, 1, 0, 1])
    # origin 70 (series 1, day 19030): its days end at 19039, which is within 7 days
    np.testing.assert_array_equal(np.isnan(found.actual[2]), [0] * 7)
    np.testing.assert_allclose(found.actual[2], table.views[70:77])


def test_per_step_intervals_hold_their_coverage_where_sqrt_h_does_not():
    """A simulated AR(1) with known noise: intervals calibrated on 60 validation days of 300
    series, checked on the 28-day paths from 40 later origins. The per-step conformal widths cover
    within sampling error of nominal at h = 1, 7 and 28; sqrt(h) times the one-day width
    over-covers far from nominal at h = 28 (the AR's error stops growing)."""
    horizon = 28
    table = simulate(300, 240, seed=1)
    first = 19000
    dev = table.take(table.day < first + 140)
    splits = splits_for(table, first + 80, first + 140)
    found = iv.validation_intervals(AR1(), dev, splits, horizon)
    assert found.horizons == horizon
    # h-step error sd is sigma * sqrt((1 - phi^2h) / (1 - phi^2)); widths follow it
    sd = SIGMA * np.sqrt((1 - PHI ** (2 * np.arange(1, 29))) / (1 - PHI**2))
    widths = np.median(found.width[95], axis=1)
    np.testing.assert_allclose(widths / sd, 1.96, rtol=0.15)

    origins = hz.origins_between(table, np.full(300, first + 140), np.full(300, first + 179), 3)
    later = hz.forecast_paths(AR1(), table, origins, horizon, np.full(300, first + 239))
    one_day = iv.Intervals(
        found.names, {lv: found.width[lv][:1] for lv in iv.LEVELS}, found.relative
    )
    sqrt_h = iv.sqrt_widths(one_day, horizon)
    names = found.names[later.code]
    for h in (1, 7, 28):
        steps = np.full(len(origins), h)
        err = np.abs(later.actual[:, h - 1] - later.pred[:, h - 1])
        for level in iv.LEVELS:
            width = found.half_width(level, names, steps, later.pred[:, h - 1])
            share = np.mean(err <= width)
            assert abs(share - level / 100) < 0.035, (h, level, share)
            old = np.mean(err <= sqrt_h.half_width(level, names, steps, later.pred[:, h - 1]))
            if h == 28:
                assert old - level / 100 > 0.04, (level, old)


def test_steps_without_enough_errors_fall_back_to_the_pooled_relative_width():
    names = np.array(["a", "b"])
    width = {lv: np.array([[3.0, np.inf], [np.nan, 4.0]]) for lv in iv.LEVELS}
    relative = {lv: np.array([0.1, 0.2]) for lv in iv.LEVELS}
    found = iv.Intervals(names, width, relative)
    got = found.half_width(
        80,
        np.array(["a", "b", "a", "zz"]),
        np.array([1, 1, 2, 2]),
        np.array([100.0, 100.0, 100.0, 50.0]),
    )
    np.testing.assert_allclose(got, [3.0, 10.0, 20.0, 10.0])
    with pytest.raises(ValueError, match="reach 2 days"):
        found.half_width(80, names, np.array([3, 1]), np.ones(2))


def test_kept_intervals_are_read_only_when_they_reach_the_horizon(tmp_path):
    table = simulate(3, 150)
    splits = splits_for(table, 19000 + 90, 19000 + 150)
    found = iv.validation_intervals(AR1(), table, splits, 5)
    path = tmp_path / "iv.npz"
    iv.write_intervals(path, found, "key")
    assert iv.read_intervals(path, table.names, "key", 6) is None
    again = iv.read_intervals(path, table.names, "key", 5)
    for level in iv.LEVELS:
        np.testing.assert_array_equal(again.width[level], found.width[level])
    one = iv.read_intervals(path, table.names, "key")
    assert one is not None and one.horizons == 5


def _weekly_table(days: int = 400) -> ViewsTable:
    pattern = np.array([100, 300, 250, 200, 150, 500, 50.0])
    views = np.tile(pattern, days // 7 + 1)[:days]
    return ViewsTable(
        np.array(["s"]),
        np.zeros(days, np.int32),
        np.arange(19000, 19000 + days, dtype=np.int32),
        views,
        np.zeros(days, bool),
    )


@pytest.mark.parametrize(
    ("mcfg", "tcfg", "tolerance"),
    [
        (
            ModelConfig(lags=7, model="linear", horizon=7),
            TrainConfig(solver="lstsq", loss="mse"),
            0.01,
        ),
        (
            ModelConfig(
                lags=14, model="relu", layers=2, width=32, horizon=7, scaling="window-mean"
            ),
            TrainConfig(epochs=300, lr=3e-3),
            5.0,
        ),
    ],
)
def test_a_direct_model_recovers_a_known_weekly_pattern(mcfg, tcfg, tolerance):
    """Days 1..7 after any window of a series that repeats every week are the window's week
    again: the closed form finds it exactly, a ReLU net by gradient descent to a few views (of
    50-500). Past its 7 days it feeds its own week back and goes on. Training rows never reach
    into the validation days (the last 6 training days have no complete target)."""
    table = _weekly_table()
    splits = splits_for(table, 19000 + 280, 19000 + 340)
    dev = table.take(table.day < 19000 + 340)
    windows = feats.lag_windows(dev, splits, mcfg.lags)
    result = fit(windows, mcfg, tcfg)
    assert result.rows["train"] == 280 - mcfg.lags - 6
    assert result.val_mae < tolerance
    origins = hz.origins_between(table, np.array([19000 + 340]), np.array([19000 + 352]), mcfg.lags)
    found = hz.forecast_paths(result.model, table, origins, 14, np.array([19000 + 399]))
    assert np.nanmax(found.errors) < 3 * tolerance
    assert result.model.predict_days(windows.x(windows.rows("val")[:3])).shape == (3, 7)


def test_a_direct_training_row_never_learns_from_a_validation_day():
    table = _weekly_table(120)
    splits = splits_for(table, 19000 + 60, 19000 + 90)
    windows = feats.lag_windows(table.take(table.day < 19000 + 90), splits, 7)
    train, val = windows.rows("train"), windows.rows("val")
    ahead = windows.y_ahead(train, 5)
    day = windows.day[train][:, None] + np.arange(5)
    assert (
        np.all(np.isnan(ahead[day >= 19000 + 60])) and not np.isnan(ahead[day < 19000 + 60]).any()
    )
    later = windows.y_ahead(val, 5)  # validation rows: nan only past the last dev day
    day = windows.day[val][:, None] + np.arange(5)
    np.testing.assert_array_equal(np.isnan(later), day > 19000 + 89)


def test_a_year_of_memory_finds_the_day_that_comes_back_every_52_weeks():
    """Quiet days with a spike every 364 days (the same weekday each year): with the week a
    year back among its inputs the closed form predicts the spike to a few views; the same model
    on recent days alone cannot (its validation error is the spike's size over the days)."""
    days = 364 * 4
    rng = np.random.default_rng(0)
    views = 100 + rng.normal(0, 1, days)
    views[np.arange(days) % 364 == 200] += 5000
    table = ViewsTable(
        np.array(["s"]),
        np.zeros(days, np.int32),
        np.arange(19000, 19000 + days, dtype=np.int32),
        views,
        np.zeros(days, bool),
    )
    val_start = 19000 + 364 * 3 + 150  # the last spike (day 3 * 364 + 200) is a validation day
    splits = splits_for(table, val_start, val_start + 60)
    dev = table.take(table.day < val_start + 60)
    tcfg = TrainConfig(solver="lstsq", loss="mse")
    scores = {}
    for mcfg in (
        ModelConfig(lags=7, model="linear"),
        ModelConfig(lags=367, recent=7, model="linear"),
    ):
        assert mcfg.inputs == (14 if mcfg.year else 7)
        result = fit(feats.lag_windows(dev, splits, mcfg.lags), mcfg, tcfg)
        scores[mcfg.year] = result.val_mae
    assert scores[True] < 5 < 5000 / 60 / 2 < scores[False], scores
