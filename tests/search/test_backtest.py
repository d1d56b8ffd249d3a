"""Rolling-origin backtests per horizon: the numbers, the sealed test, the MLflow record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import jobs, tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.search.backtest import Plan, backtest
from tests.conftest import synthetic_views, write_totals


def _run(ws: Paths, name: str) -> str:
    (found,) = [r for r in tracking.runs(ws, tracking.Stage.TRAIN) if r.name == name]
    return found.run_id


def test_the_naive_baseline_backtest_is_its_errors_by_hand(swept: Path, parquet_opens):
    """y = x_1 fed back forecasts every day ahead as the day before the origin: the MAE, SMAPE
    and coverage-free numbers per h are those of |y[o + h - 1] - y[o - 1]| over the origins. Before
    finalize the test days are never opened, and the last day read is each series' last
    validation day."""
    ws = Paths(swept)
    plan = Plan(horizon=5, origins=3, step=4)
    done = backtest(ws, _run(ws, "naive"), plan)
    assert not [p for p in parquet_opens if "sealed" in p], "the sealed test stays sealed"
    dev, splits = Store(ws).read_dev(), Store(ws).read_splits()
    errors = {h: [] for h in range(1, 6)}
    for s, name in enumerate(dev.names):
        views = dev.views[dev.code == s]
        days = dev.day[dev.code == s]
        assert done.last_days[str(name)] == str(np.datetime64(int(days[-1]), "D"))
        assert days[-1] == splits.series[str(name)].test_start - 1
        for k in range(3):
            o = len(views) - 5 - (2 - k) * 4  # the origin's position
            for h in range(1, 6):
                errors[h].append(abs(views[o + h - 1] - views[o - 1]))
    for row in done.steps:
        assert row["paths"] == 6
        assert row["mae"] == pytest.approx(np.mean(errors[row["h"]]))
        for level in (80, 95):
            assert 0 <= row[f"coverage_{level}"] <= 100
    assert set(done.series) == {"alpha", "beta"} and done.sealed
    # the MLflow run: stage backtest, every metric stepped by h, the table and the picture
    run = tracking.get_run(ws, done.run_id)
    assert run.stage == "backtest" and run.tags["source_run_id"] == done.source_run_id
    steps = tracking.metric_steps(ws, done.run_id, "mae")
    assert sorted(steps) == [1, 2, 3, 4, 5]
    assert steps[3] == pytest.approx(np.mean(errors[3]))
    assert set(tracking.metric_steps(ws, done.run_id, "coverage_95")) == set(steps)
    assert tracking.artifacts(ws, done.run_id) >= {"backtest.json", done.figure.name}
    assert done.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_seasonal_configuration_beats_naive_on_a_weekly_series_at_every_step(swept: Path):
    """The two series have a weekly cycle: the seasonal naive (lag 7, fed back) is better than
    y = x_1 a week ahead, on the same origins."""
    ws = Paths(swept)
    plan = Plan(horizon=7, origins=4, step=7)
    naive = backtest(ws, _run(ws, "naive"), plan)
    seasonal = backtest(ws, _run(ws, "seasonal-naive"), plan)
    worse = [a["mae"] > b["mae"] for a, b in zip(naive.steps, seasonal.steps, strict=True)]
    assert sum(worse) >= 5, (naive.steps, seasonal.steps)


def test_an_ensemble_champion_is_backtested_member_by_member(swept: Path, cli):
    """The default is the champion; an ensemble's members are each trained at every origin."""
    ws = Paths(swept)
    ensemble = _run(ws, "ensemble-top4")
    result = cli("backtest", ensemble, "--horizon", "7", "--origins", "2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the table went to stderr
    assert payload["source_run_id"] == ensemble
    assert [r["h"] for r in payload["steps"]] == list(range(1, 8))
    assert cli("backtest").exit_code == 0  # the champion


def test_a_stepwise_backtest_is_one_runs_day_1_and_the_others_later_days(swept: Path):
    """A stepwise model (day 1 from naive, days 2..7 from the seasonal naive) is backtested as
    its two runs are: at every origin its step 1 is naive's, its later steps the seasonal's."""
    from pipeline.search.ensembles import stepwise_run

    ws = Paths(swept)
    sweep = tracking.latest_sweep(ws)
    naive, seasonal = (tracking.get_run(ws, _run(ws, n)) for n in ("naive", "seasonal-naive"))
    step = stepwise_run(ws, sweep, tracking.sweep_children(ws, sweep), naive, seasonal, 7)
    assert step is not None and step.params["ensemble.first"] == "1.0,0.0"
    plan = Plan(horizon=7, origins=3, step=7)
    done, first, later = (backtest(ws, r.run_id, plan) for r in (step, naive, seasonal))
    assert done.steps[0]["mae"] == pytest.approx(first.steps[0]["mae"])
    assert done.steps[0]["mae"] != pytest.approx(later.steps[0]["mae"])
    for mine, theirs in zip(done.steps[1:], later.steps[1:], strict=True):
        assert mine["mae"] == pytest.approx(theirs["mae"]), mine["h"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--horizon", "0"), "at least 1"),
        (("--horizon", "150"), "no series is long enough"),
        (("RUN", "--champion"), "not both"),
    ],
)
def test_bad_backtest_requests_get_one_line_and_exit_2(swept: Path, cli, args, message):
    result = cli("backtest", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_run_without_a_model_is_refused_in_one_line(swept: Path, cli):
    sweep = tracking.latest_sweep(Paths(swept))
    result = cli("backtest", sweep, "--origins", "1", "--horizon", "2")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"viewcast: error: run {sweep} has no model to refit (its stage is sweep): give a "
        "training run, or --champion\n"
    )
    assert not tracking.runs(Paths(swept), tracking.Stage.BACKTEST), "nothing was logged"


def test_after_finalize_the_backtest_reads_every_day(production: Path):
    ws = Paths(production)
    done = jobs.backtest(ws, None, horizon=3, origins=2, step=3)
    splits = Store(ws).read_splits()
    for name, last in done.last_days.items():
        assert last == str(np.datetime64(splits.series[name].test_end, "D"))
    assert not done.sealed


def test_a_series_too_short_to_split_is_left_out_after_finalize(production: Path, tmp_path):
    """After finalize the backtest reads every series, the unsplit ones too: they are skipped,
    not looked up in the splits (a KeyError before)."""
    ws = Paths(production)
    short = write_totals(tmp_path / "short.csv", synthetic_views(30, seed=3))
    jobs.ingest(ws, [(short, "short")])
    assert "short" not in Store(ws).read_splits().series
    done = jobs.backtest(ws, None, horizon=3, origins=2, step=3)
    assert "short" in done.skipped and "short" not in done.last_days
    assert done.last_days and not done.sealed
