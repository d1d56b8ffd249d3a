"""Grids, sweeps (nested, resumable, budgeted, folded) and validation-only selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.search import grids, sweeps
from pipeline.search.budget import Budget
from pipeline.tracking import Tag
from tests.search.conftest import children, the_sweep


def test_fold_k_validates_on_the_days_before_fold_k_minus_1(two_series: Path):
    store = Store(Paths(two_series))
    dev, splits = store.read_dev(), store.read_splits()
    windows = feats.lag_windows(dev, splits, 7)
    assert feats.fold(windows, splits, 1) is windows
    second = feats.fold(windows, splits, 2)
    for code, name in enumerate(windows.names):
        s = splits.series[str(name)]
        mine = second.code == code
        val_days = second.day[mine & (second.split == 1)]
        train_days = second.day[mine & (second.split == 0)]
        assert val_days.min() == s.val_start - 60 and val_days.max() == s.val_start - 1
        assert train_days.max() < val_days.min(), "training must precede validation"
        assert second.day[mine].max() < s.val_start, "fold 2 never sees fold 1's validation"


def test_sweep_logs_nested_runs_with_the_baselines(swept: Path, tiny_grid: Path):
    parent = the_sweep(swept)
    assert parent.status == "FINISHED" and parent.tags["complete"] == "True"
    runs = children(swept, parent.run_id)
    names = sorted(r.name for r in runs)
    expected = ["naive", "seasonal-naive", "linear-lstsq-lags56", "ensemble-top4"]
    expected += [c.name for c in grids.toml_grid(tiny_grid)]
    assert names == sorted(expected)  # the ensemble is select's, logged under the sweep
    assert all(r.tags["stage"] == "train" and "val_mae" in r.metrics for r in runs)

    # the naive baseline's validation MAE is |y_t - y_(t-1)| over the validation days, by hand
    naive = next(r for r in runs if r.name == "naive")
    store = Store(Paths(swept))
    dev, splits = store.read_dev(), store.read_splits()
    errors = []
    for code, name in enumerate(dev.names):
        views, day = dev.views[dev.code == code], dev.day[dev.code == code]
        in_val = day >= splits.series[str(name)].val_start
        errors += list(np.abs(views[1:] - views[:-1])[in_val[1:]])
    assert naive.metrics["val_mae"] == pytest.approx(np.mean(errors), rel=1e-6)


@pytest.mark.slow  # a sweep, end to end
def test_sweep_resumes_after_a_crash(two_series: Path, tiny_grid: Path, monkeypatch):
    import pipeline.models.batched

    ws = Paths(two_series)
    grid = grids.toml_grid(tiny_grid)
    real_fit, calls = pipeline.models.batched.fit_stack, []

    def crashing_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second stack (after the 3 baselines)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(pipeline.models.batched, "fit_stack", crashing_fit)
    with pytest.raises(KeyboardInterrupt):
        sweeps.sweep(ws, "tiny", grid)
    parent = the_sweep(two_series)
    assert parent.status == "KILLED"
    assert len(children(two_series, parent.run_id)) == 4

    monkeypatch.setattr(pipeline.models.batched, "fit_stack", real_fit)
    report = sweeps.sweep(ws, "tiny", grid)
    assert report.run_id == parent.run_id, "the same sweep resumes under the same parent"
    assert (report.resumed, report.ran, report.total) == (4, 3, 7)
    runs = children(two_series, parent.run_id)
    assert len({r.tags["config_key"] for r in runs}) == 7
    assert tracking.get_run(ws, parent.run_id).status == "FINISHED"
    assert sweeps.sweep(ws, "tiny", grid).ran == 0, "a finished sweep trains nothing"


@pytest.mark.slow  # a sweep, end to end
def test_a_resumed_sweep_ends_the_runs_a_killed_one_left_running(two_series: Path, tiny_grid: Path):
    """kill -9 in the middle of logging a configuration leaves its run RUNNING: the resumed
    sweep marks it KILLED (with the reason) and trains the configuration again."""
    ws = Paths(two_series)
    grid = grids.toml_grid(tiny_grid)
    sweeps.sweep(ws, "tiny", grid)
    parent = the_sweep(two_series)
    victim = next(r for r in children(two_series, parent.run_id) if r.name == grid[0].name)
    tracking.set_status(ws, victim.run_id, "RUNNING")  # as kill -9 before set_terminated leaves it
    report = sweeps.sweep(ws, "tiny", grid)
    assert report.ran == 1, "only the configuration whose run died trains again"
    dead = tracking.get_run(ws, victim.run_id)
    assert dead.status == "KILLED" and "interrupted sweep" in dead.tags["killed_reason"]
    statuses = [r.status for r in children(two_series, parent.run_id)]
    assert statuses.count("RUNNING") == 0


def test_time_budget_cuts_the_grid(two_series: Path, tiny_grid: Path):
    ws = Paths(two_series)
    report = sweeps.sweep(ws, "tiny", grids.toml_grid(tiny_grid), max_minutes=1e-6)
    assert (report.ran, report.skipped) == (1, 6)
    assert tracking.get_run(ws, report.run_id).tags["complete"] == "False"


def test_a_unit_too_long_for_the_budget_is_left_out_and_cheaper_ones_after_it_train(
    two_series: Path, tiny_grid: Path, monkeypatch
):
    """The budget predicts each unit (pipeline/search/budget.py); one predicted past it is left
    out, the grid goes on with what still fits."""
    ws = Paths(two_series)

    def expected(self, unit, rows, folds=1) -> float:  # a network: past any budget
        return 1e6 if unit[0][1].model.model == "relu" else 0.0

    monkeypatch.setattr(Budget, "expected", expected)
    report = sweeps.sweep(ws, "tiny", grids.toml_grid(tiny_grid), max_minutes=1)
    assert (report.ran, report.skipped) == (5, 2)
    trained = {run.tags[Tag.CONFIG_KEY] for run in children(two_series, report.run_id)}
    kept = [c for c in grids.toml_grid(tiny_grid) if c.model.model == "linear"]
    assert {c.key for c in kept} <= trained and len(kept) == 2
    assert tracking.get_run(ws, report.run_id).tags["complete"] == "False"


@pytest.mark.slow  # a sweep, end to end
def test_folds_score_the_mean_of_rolling_origins(two_series: Path, tiny_grid: Path):
    ws = Paths(two_series)
    report = sweeps.sweep(ws, "tiny", grids.toml_grid(tiny_grid)[:1], folds=2)
    for run in children(two_series, report.run_id):
        m = run.metrics
        assert m["val_mae"] == pytest.approx((m["val_mae_fold1"] + m["val_mae_fold2"]) / 2)
        assert m["val_mae_fold1"] != m["val_mae_fold2"]


@pytest.mark.slow  # a sweep, end to end
def test_a_sweep_of_a_large_store_trains_the_panel_grid_and_selects(two_series, cli, monkeypatch):
    """The two-series store made 'too large to gather': `sweep --seeds 2` says it trains the
    panel grid, every configuration on sampled epochs, its two seeds in one stack (sampled
    stacks never gather), and `select` works on it."""
    from pipeline.models import device_rows

    monkeypatch.setattr(device_rows, "FULL_ROWS_LIMIT", 5_000)
    monkeypatch.setattr(grids, "PANEL_EPOCH", 512)
    done = cli("sweep", "--seeds", 2, "--json")
    assert done.exit_code == 0, done.output
    assert "sweep panel: 9 of 9 configurations trained" in done.output
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["grid"] == "panel" and report["failed"] == 0
    ws = Paths(two_series)
    parent = tracking.latest_sweep(ws)
    assert tracking.get_run(ws, parent).params["grid"] == "panel"
    trained = [r for r in tracking.sweep_children(ws, parent) if r.params["model.model"] != "naive"]
    assert len(trained) == 7  # six panel configurations and the closed form
    for run in trained:
        solver = run.params["train.solver"]
        assert run.params["train.rows_per_epoch"] == ("0" if solver == "lstsq" else "512")
        if solver == "gd":
            assert run.tags["stacked"] == "True" and run.params["train.seeds"] == "2"
    assert cli("select").exit_code == 0


@pytest.mark.slow  # a sweep with direct twins, selected, finalized, refit and forecast
def test_a_sweep_for_a_week_ahead_lets_direct_and_recursive_compete(
    two_series: Path, tiny_grid: Path, cli
):
    """`sweep --horizon 7`: each network of the grid gets its direct 7-day twin, every run
    (baselines too) is scored on val_mae_h7, the champion is chosen on it, and a direct
    champion forecasts 7 days with per-step intervals."""
    from pipeline.models import horizons
    from pipeline.models.families import EnsembleModel

    ws = Paths(two_series)
    assert cli("sweep", "--grid", tiny_grid, "--horizon", "7").exit_code == 0
    parent = tracking.latest_sweep(ws)
    runs = tracking.sweep_children(ws, parent)
    names = {r.name for r in runs}
    grid_nets = [n for n in names if n.startswith(("linear-lags", "relu-"))]
    direct = [n for n in grid_nets if "-direct7" in n]
    assert len(direct) == 4 and len(grid_nets) == 8, names
    assert all("val_mae_h7" in r.metrics for r in runs)
    # the metric is the paths' error on the validation days, recomputed here for one run
    store = Store(ws)
    run = next(r for r in runs if r.name == sorted(direct)[0])
    model = tracking.load_predictor(ws, run.run_id)
    assert model.reach == 7
    again = horizons.validation_mae_ahead(model, store.read_dev(), store.read_splits(), 7)
    assert run.metrics["val_mae_h7"] == pytest.approx(again, rel=1e-5)
    # the top-3 ensemble competes on val_mae_h7 too: its members' paths averaged, then scored
    result = cli("select", "--metric", "val_mae_h7", "--ensemble", "3", "--json")
    assert result.exit_code == 0, result.output
    after = tracking.sweep_children(ws, parent)
    (ensemble,) = [r for r in after if r.name == "ensemble-top3-h7"]
    model = tracking.load_predictor(ws, ensemble.run_id)
    again = horizons.validation_mae_ahead(model, store.read_dev(), store.read_splits(), 7)
    assert ensemble.metrics["val_mae_h7"] == pytest.approx(again, rel=1e-5)
    singles = sorted((r for r in runs if not r.baseline), key=metric_h7)
    by_hand = EnsembleModel([tracking.load_model(ws, r.run_id) for r in singles[:3]]).eval()
    mean_of_top3 = horizons.validation_mae_ahead(by_hand, store.read_dev(), store.read_splits(), 7)
    assert ensemble.metrics["val_mae_h7"] == pytest.approx(mean_of_top3, rel=1e-5)
    # each day on its own evidence: day 1 from the one-day champion (the top-3 on val_mae of the
    # runs a one-day sweep trains: no direct twin), days 2..7 from the best on val_mae_h7
    best = min(after, key=metric_h7)
    champion = tracking.get_run(ws, tracking.champion_run(ws))
    (top3,) = [r for r in after if r.name == "ensemble-top3"]
    one_day = sorted((r for r in runs if "-direct" not in r.name), key=val_mae)
    assert top3.params["ensemble.members"] == ",".join(r.run_id for r in one_day[:3])
    first = min([*one_day, top3], key=val_mae)  # the top-3 competes with the singles on day 1
    assert champion.name == f"stepwise-h7 {first.name}, then {best.name}"
    shown = json.loads(result.stdout)
    assert f"day 1 from {first.name} (the best on val_mae" in shown["note"]
    assert shown["champion"]["name"] == shown["ranking"][0]["name"] == champion.name
    assert shown["ranking"][1]["name"] == best.name, "then the rest as they rank"
    greedy = cli("select", "--metric", "val_mae_h7", "--ensemble-method", "greedy")
    assert greedy.exit_code == 0 and "no greedy ensemble on val_mae_h7" in greedy.stdout
    # no ensemble: the best single on val_mae (day 1) and on val_mae_h7 differ, so the champion
    # is the stepwise model: the first's forecast for day 1, the second's for days 2..7
    assert cli("select", "--metric", "val_mae_h7", "--ensemble", "0").exit_code == 0
    day_one = one_day[0]
    week = min(runs, key=metric_h7)
    assert day_one.run_id != week.run_id
    (step,) = [
        r
        for r in tracking.sweep_children(ws, parent)
        if r.name == f"stepwise-h7 {day_one.name}, then {week.name}"
    ]
    assert step.params["ensemble.members"] == f"{day_one.run_id},{week.run_id}"
    assert step.metrics["val_mae"] == pytest.approx(day_one.metrics["val_mae"], rel=1e-6)
    pair = [tracking.load_model(ws, r.run_id) for r in (day_one, week)]
    dev, splits = store.read_dev(), store.read_splits()
    lo, hi = horizons.validation_bounds(dev, splits)
    origins = horizons.origins_between(dev, lo, hi - 6, 14)
    first, later = (horizons.forecast_paths(m, dev, origins, 7, hi) for m in pair)
    stitched = np.concatenate([first.errors[:, :1], later.errors[:, 1:]], axis=1)
    assert step.metrics["val_mae_h7"] == pytest.approx(np.nanmean(stitched), rel=1e-5)
    assert tracking.champion_run(ws) == step.run_id
    # a direct champion, refit and forecast a week ahead (its days at once)
    tracking.register_alias(ws, run.run_id, "champion", {})
    for args in (("finalize",), ("refit",), ("forecast", "--horizon", "7")):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
    (csv,) = (two_series / "data" / "forecasts").glob("*.csv")
    frame = pd.read_csv(csv)
    assert len(frame) == 14 and (frame["upper_95"] >= frame["upper_80"]).all()
    # a stepwise champion refits both its runs and keeps its day-1 weights in production
    tracking.register_alias(ws, step.run_id, "champion", {})
    for args in (("refit",), ("forecast", "--horizon", "7", "--force")):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
    production = tracking.get_run(ws, tracking.alias_run(ws, "production")[0])
    assert production.params["ensemble.first"] == step.params["ensemble.first"] == "1.0,0.0"
    assert production.params["ensemble.weights"] == "0.0,1.0"
    assert tracking.load_predictor(ws, production.run_id).first == (1.0, 0.0)
    assert len(pd.read_csv(csv)) == 14


def metric_h7(run) -> float:
    return run.metrics.get("val_mae_h7", float("inf"))


def val_mae(run) -> tuple[float, str]:
    return run.metrics["val_mae"], run.name


@pytest.mark.parametrize(
    ("days", "folds", "expected"), [(840, 1, False), (860, 1, True), (900, 2, False)]
)
def test_the_year_axis_needs_two_years_before_validation_in_every_fold(days, folds, expected):
    from pipeline.data.store import SeriesSplit, Splits
    from pipeline.data.table import ViewsTable
    from pipeline.search.units import SweepData

    names = np.array(["long", "short"])
    sizes = (days + 100, days)
    code = np.repeat(np.arange(2, dtype=np.int32), sizes)
    day = np.concatenate([np.arange(20000 - n, 20000, dtype=np.int32) for n in sizes])
    table = ViewsTable(names, code, day, np.ones(len(day)), np.zeros(len(day), bool))
    split = SeriesSplit(20000 - 120, 20000 - 60, 20000 - 30, 19999)
    splits = Splits(60, 60, {"long": split, "short": split})
    assert sweeps.year_of_memory(SweepData(table, splits, None, folds)) is expected
    # a sweep of the long series alone needs only that one to be long enough
    alone = SweepData(table, splits, ["long"], folds)
    assert sweeps.year_of_memory(alone) is (days + 100 - 120 - (folds - 1) * 60 >= 730)
