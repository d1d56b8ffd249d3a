"""Grids, sweeps (nested, resumable, budgeted, folded) and validation-only selection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.search import grids, sweeps


def the_sweep(home: Path) -> tracking.RunRecord:
    (parent,) = tracking.runs(Paths(home), tracking.Stage.SWEEP)
    return parent


def children(home: Path, parent: str) -> list[tracking.RunRecord]:
    return tracking.children(Paths(home), parent)


def test_lecture_grid_is_the_lectures_tables():
    grid = grids.lecture_grid()
    shapes = [(c.model.model, c.model.lags, c.model.layers, c.model.width) for c in grid]
    linear = [(m, n) for m, n, _, _ in shapes if m == "linear"]
    assert linear == [("linear", 1), ("linear", 7), ("linear", 28), ("linear", 56)]
    assert ("sigmoid", 56, 3, 100) in shapes  # layers is unused (canonical) for sigmoid
    relu = sorted((k, w) for m, n, k, w in shapes if m == "relu" and n == 56)
    assert relu == [(1, 10), (1, 100), (1, 1000), (2, 100), (3, 100), (4, 100)]
    assert len({c.key for c in grid}) == len(grid) == 11
    assert all(c.train.loss == "mae" and c.train.solver == "gd" for c in grid)


def test_default_grid_covers_every_axis_without_duplicates():
    grid = grids.default_grid()
    assert len({c.key for c in grid}) == len(grid) == 144
    nets = grid
    assert {c.model.calendar for c in nets} == {"none", "weekday"}
    assert {c.model.lags for c in nets} == {7, 28, 56}
    assert {c.model.model for c in nets} == {"linear", "relu"}
    assert {(c.train.optimizer, c.train.lr) for c in nets} == {
        ("adam", 3e-3),
        ("adam", 1e-3),
        ("rmsprop", 1e-3),
    }
    assert {c.model.target_transform for c in nets} == {"log1p", "none"}
    assert {c.model.batchnorm for c in nets} == {False, True}
    # a time budget cuts the end: the first pass covers every structure with one optimiser
    first = grid[: len(grid) // 3]
    assert {(c.train.optimizer, c.train.lr) for c in first} == {("adam", 3e-3)}
    assert {(c.model.lags, c.model.model, c.model.target_transform) for c in first} == {
        (c.model.lags, c.model.model, c.model.target_transform) for c in grid
    }


def test_toml_grid_is_the_product_without_duplicates(tiny_grid: Path, tmp_path: Path):
    grid = grids.toml_grid(tiny_grid)
    assert [c.name for c in grid] == [
        "linear-lags7-log1p-adam-0.01",
        "relu-1x8-lags7-log1p-adam-0.01",
        "linear-lags14-log1p-adam-0.01",
        "relu-1x8-lags14-log1p-adam-0.01",
    ]
    assert all(c.train.epochs == 40 and c.model.scaling == "window-mean" for c in grid)
    # layers means nothing to a linear model: two layer counts give one linear configuration
    path = tmp_path / "dup.toml"
    path.write_text('[grid]\nmodel = ["linear", "relu"]\nlayers = [1, 2]\nlags = 7\n')
    assert [c.name for c in grids.toml_grid(path)] == [
        "linear-lags7-adam-0.001",
        "relu-1x100-lags7-adam-0.001",
        "relu-2x100-lags7-adam-0.001",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[grid]\nlayerz = [1]\n", "unknown keys layerz"),
        ("[grid]\nmodel = ['cnn']\n", "unknown model 'cnn'"),
        ("[grid\n", "cannot read the grid"),
        ("[other]\nx = 1\n", "use [base] and [grid]"),
    ],
)
def test_bad_grid_file_is_one_clear_line(tmp_path: Path, cli, text: str, problem: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ViewcastError, match=re.escape(problem)):
        grids.load_grid(str(path))
    result = cli("sweep", "--grid", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"viewcast: error: {path}: ")
    assert "Traceback" not in result.output


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


def test_folds_score_the_mean_of_rolling_origins(two_series: Path, tiny_grid: Path):
    ws = Paths(two_series)
    report = sweeps.sweep(ws, "tiny", grids.toml_grid(tiny_grid)[:1], folds=2)
    for run in children(two_series, report.run_id):
        m = run.metrics
        assert m["val_mae"] == pytest.approx((m["val_mae_fold1"] + m["val_mae_fold2"]) / 2)
        assert m["val_mae_fold1"] != m["val_mae_fold2"]


def test_select_registers_the_best_validation_run_as_champion(swept: Path, cli):
    parent = the_sweep(swept)
    runs = children(swept, parent.run_id)
    best = min(runs, key=lambda r: r.metrics["val_mae"])
    run_id, version = tracking.alias_run(Paths(swept), "champion")
    assert run_id == best.run_id == tracking.champion_run(Paths(swept))
    # selecting again keeps the same version; the table ranks by val_mae
    result = cli("select", "--top", "3")
    assert result.exit_code == 0
    assert f"version {version}, alias champion" in result.output
    assert best.run_id in result.output
    assert cli("select", "--metric", "test_mae").exit_code == 2


def test_selection_never_opens_test_rows(two_series: Path, tiny_grid: Path, cli, parquet_opens):
    assert cli("sweep", "--grid", tiny_grid).exit_code == 0
    assert cli("select").exit_code == 0
    assert parquet_opens, "the spy must see the dev reads"
    assert not [p for p in parquet_opens if "sealed" in p]


def test_selection_ignores_submissions(swept: Path, cli):
    before = cli("select").output
    parent = the_sweep(swept)
    worst = max(children(swept, parent.run_id), key=lambda r: r.metrics["val_mae"])
    assert cli("submit", worst.run_id).exit_code == 0
    assert cli("submit", "--champion").exit_code == 0
    assert cli("select").output == before


def test_the_ensemble_is_the_mean_of_the_best_configurations(swept: Path, cli):
    from pipeline.models.families import ViewsModel

    ws = Paths(swept)
    parent = the_sweep(swept)
    runs = children(swept, parent.run_id)
    (ens,) = [r for r in runs if "ensemble_key" in r.tags]
    singles = [r for r in runs if r.tags["baseline"] == "False" and r is not ens]
    best = sorted(singles, key=lambda r: r.metrics["val_mae"])[:5]
    members = ens.params["ensemble.members"].split(",")
    assert members == [r.run_id for r in best] and len(members) == 4

    # its val_mae is the MAE of the members' mean forecast on the validation days, by hand
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    windows = feats.lag_windows(dev, splits, 14)
    rows = windows.rows("val")
    models = [tracking.load_model(ws, m) for m in members]
    assert all(isinstance(m, ViewsModel) for m in models)
    mean = np.mean([m.predict(windows.x(rows)[:, : m.cfg.lags]) for m in models], axis=0)
    assert ens.metrics["val_mae"] == pytest.approx(np.abs(mean - windows.y(rows)).mean())
    assert tracking.load_model(ws, ens.run_id).predict(windows.x(rows)) == pytest.approx(mean)

    # selecting again logs no second ensemble; --ensemble 0 leaves it out of a new ranking
    assert cli("select").exit_code == 0
    assert len(children(swept, parent.run_id)) == len(runs)
    without = cli("select", "--ensemble", "0", "--top", "20")
    assert without.exit_code == 0 and "ensemble-top4" not in without.output
    assert len(children(swept, parent.run_id)) == len(runs)
    assert "ensemble-top4" in cli("select", "--top", "20").output


def test_select_by_the_scale_free_metric_weighs_every_series_alike(swept: Path, cli):
    """val_mae_vs_naive is the mean over series of (series MAE / naive MAE) on validation: the
    naive baseline scores exactly 1, and the champion it picks is the run with the lowest."""
    from pipeline.data import metrics

    ws = Paths(swept)
    children = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    naive = next(r for r in children if r.tags.get(tracking.Tag.BASELINE_ROLE) == "naive")
    assert naive.metrics["val_mae_vs_naive"] == pytest.approx(1.0)
    result = cli("select", "--metric", "val_mae_vs_naive", "--json")
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.stdout)
    scores = [r["score"] for r in chosen["ranking"]]
    assert scores == sorted(scores) and chosen["metric"] == "val_mae_vs_naive"
    run = tracking.get_run(ws, chosen["champion"]["run_id"])
    model = tracking.load_model(ws, run.run_id)
    store = Store(ws)
    windows = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    assert metrics.validation_vs_naive(model, windows) == pytest.approx(
        run.metrics["val_mae_vs_naive"]
    )
    assert metrics.mean_ratio_to_naive(
        np.array([2.0, 4, 10, 10]),
        np.array([1.0, 1, 10, 20]),
        np.array([0.0, 0, 10, 10]),
        np.array([0, 0, 1, 1]),
    ) == pytest.approx(((1 + 3) / 2 / 1 + 10 / 10) / 2)


def test_default_means_the_panel_grid_where_windows_are_too_many_to_gather(monkeypatch):
    from pipeline.models import device_rows

    limit = device_rows.FULL_ROWS_LIMIT
    assert grids.grid_for("default", lambda: limit // 56)[0] == "default"
    assert grids.grid_for("default", lambda: limit // 56 + 1)[0] == "panel"
    unasked = lambda: pytest.fail("the store's size is read for `default` only")  # noqa: E731
    assert grids.grid_for("lecture", unasked)[0] == "lecture"
    panel = grids.panel_grid()
    assert len({c.key for c in panel}) == len(panel) == 6
    assert all(c.train.rows_per_epoch == grids.PANEL_EPOCH for c in panel)
    assert all(c.train.batch_size == 65_536 for c in panel)
    assert {
        (c.model.model, c.model.layers, c.model.width) for c in panel if c.model.lags == 56
    } == {
        ("linear", 3, 100),
        ("relu", 2, 64),
        ("relu", 3, 100),  # linear: canonical defaults
    }


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
