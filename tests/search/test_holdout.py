"""The sealed test: one-day-ahead scoring, recorded submissions with a budget, one finalize."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.search import holdout


@pytest.fixture
def ws_with_gaps(home: Path, raw: Path) -> Paths:
    """The 10 Kaggle pages, Peyton Manning (59 gaps) and a series too short to split."""
    from pipeline.data.ingest import read_views
    from tests.conftest import synthetic_views, write_totals

    short = write_totals(home.parent / "short.csv", synthetic_views(90), start="2016-01-01")
    ws = Paths(home)
    Store(ws).ingest(
        [
            read_views(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv"),
            read_views(raw / "wikipedia-peyton-manning" / "views.csv", "pm"),
            read_views(short, "short"),
        ]
    )
    assert "short" not in Store(ws).read_splits().series
    return ws


def test_periods_partition_the_test_days(two_series: Path):
    h = holdout.Holdout(Paths(two_series))
    data = h.data(7)
    rows, w = data.rows, data.windows
    assert len(rows["public"]) + len(rows["private"]) == len(rows["test"]) == 2 * 60
    for code, name in enumerate(w.names):
        s = h.splits.series[str(name)]
        pub = w.day[rows["public"]][w.code[rows["public"]] == code]
        priv = w.day[rows["private"]][w.code[rows["private"]] == code]
        val = w.day[rows["val"]][w.code[rows["val"]] == code]
        assert val.max() < pub.min() == s.test_start, "validation precedes the test"
        assert pub.max() < priv.min() == s.private_start, "public precedes private"
        assert priv.max() == s.test_end and len(pub) == len(priv) == 30


def test_period_rows_are_each_series_days_in_its_periods(ws_with_gaps: Paths):
    """The binary-searched runs equal a row-by-row reading of each series' boundaries, over
    11 real series with gaps, one unsplit series and series of other lengths; windows out of
    (series, day) order are refused."""
    store = Store(ws_with_gaps)
    table, splits = store.read_all(), store.read_splits()
    for n in (1, 7, 56):
        w = holdout.lag_windows(table, splits, n)
        rows = holdout.period_rows(w, splits)
        for period, (a, b) in holdout.PERIOD_BOUNDS.items():
            expected = []
            for i, (code, day) in enumerate(zip(w.code, w.day, strict=True)):
                split = splits.series.get(str(w.names[code]))
                if split is not None:
                    edges = [split.val_start, split.test_start, split.private_start]
                    edges.append(split.test_end + 1)
                    if edges[a] <= day < edges[b]:
                        expected.append(i)
            np.testing.assert_array_equal(rows[period], expected, err_msg=f"{period} lags {n}")
    shuffled = w.subset(np.random.default_rng(0).permutation(len(w)))
    with pytest.raises(ValueError, match=r"\(series, day\) order"):
        holdout.period_rows(shuffled, splits)


def test_test_days_are_predicted_one_day_ahead_from_the_real_previous_days(
    two_series: Path,
):
    """The naive model's public MAE is |y_t - y_(t-1)| over the public days of the raw CSV."""
    h = holdout.Holdout(Paths(two_series))
    scores = h.score(ViewsModel(ModelConfig(lags=1, model="naive")), ("public", "private"))
    errors = []
    for name in ("alpha", "beta"):
        raw = pd.read_csv(two_series.parent / f"{name}.csv")
        views = raw["Views"].to_numpy(float)
        s = h.splits.series[name]
        days = pd.to_datetime(raw["Date"]).to_numpy().astype("datetime64[D]").astype(int)
        public = (days >= s.test_start) & (days < s.private_start)
        errors += list(np.abs(views[1:] - views[:-1])[public[1:]])
    assert scores["public_mae"] == pytest.approx(np.mean(errors), rel=1e-9)


def test_submissions_are_recorded_and_budgeted(swept: Path, cli, monkeypatch):
    monkeypatch.setenv(holdout.BUDGET_ENV, "2")
    first = cli("submit")
    assert first.exit_code == 0, first.output
    assert "submission 1 of 2 today" in first.output
    assert cli("submit", "--champion").exit_code == 0
    refused = cli("submit", "--champion")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("viewcast: error: submission budget spent: 2 of 2 today")

    subs = tracking.runs(Paths(swept), tracking.Stage.SUBMISSION)
    assert len(subs) == 2, "a refused submission leaves no record and no score"
    for run in subs:
        assert [context for context, _ in run.inputs] == ["test-public"]
        assert run.tags["source_run_id"] == run.params["source_run_id"]
        assert "private_mae" not in run.metrics, "the private score stays hidden"

    board = json.loads(cli("leaderboard", "--json").stdout)
    assert [row["public_mae"] for row in board] == [r.metrics["public_mae"] for r in subs]
    champion = board[0]["run_id"]
    model = tracking.load_model(Paths(swept), champion)
    expected = holdout.Holdout(Paths(swept)).score(model, ("public",))["public_mae"]
    assert board[0]["public_mae"] == pytest.approx(expected)
    assert "public leaderboard" in cli("leaderboard").output


def test_a_training_run_is_required(swept: Path, cli):
    result = cli("submit", "nosuchrun")
    assert result.exit_code == 2 and "no run 'nosuchrun'" in result.stderr
    (sweep,) = tracking.runs(Paths(swept), tracking.Stage.SWEEP)
    result = cli("submit", sweep.run_id)
    assert result.exit_code == 2 and "is not a training run (its stage is sweep)" in result.stderr


def test_the_linear_baseline_is_found_by_its_configuration_not_its_name(swept: Path, cli):
    """Renaming the baseline's run (as a user may in the UI) does not lose it."""
    from pipeline.search.grids import baselines

    ws = Paths(swept)
    (linear,) = [c for c in baselines() if c.model.model == "linear"]
    (sweep,) = tracking.runs(ws, tracking.Stage.SWEEP)
    run = tracking.sweep_child(ws, sweep.run_id, linear.key)
    assert run is not None and run.tags["baseline_role"] == linear.name
    tracking.session(ws).client.set_tag(run.run_id, "mlflow.runName", "renamed by hand")
    final = json.loads(cli("finalize", "--json").stdout)
    assert set(final["baselines"]) == {"naive", "seasonal-naive", linear.name}
    model = tracking.load_model(ws, run.run_id)
    expected = holdout.Holdout(ws).score(model, ("test",))["test_mae"]
    assert final["baselines"][linear.name]["test_mae"] == pytest.approx(expected)


def test_finalize_reveals_the_private_score_once(swept: Path, cli):
    result = cli("finalize", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    champion = final["champion"]
    ws = Paths(swept)
    assert champion["run_id"] == tracking.champion_run(ws)
    assert champion["val_mae"] == pytest.approx(champion["selection_score"], rel=1e-5)
    for key in ("val_mae", "public_mae", "private_mae", "test_mae"):
        assert np.isfinite(champion[key])
    rows = final["test_rows"]
    assert champion["test_mae"] == pytest.approx(
        (champion["public_mae"] * rows["public"] + champion["private_mae"] * rows["private"])
        / rows["test"]
    )
    assert set(final["baselines"]) == {"naive", "seasonal-naive", "linear-lstsq-lags56"}
    assert all(np.isfinite(b["test_mae"]) for b in final["baselines"].values())
    assert json.loads((ws.reports / "final.json").read_text())["champion"] == champion
    assert "(champion)" in (ws.reports / "final.md").read_text()
    assert (ws.reports / "final.png").read_bytes()[:4] == b"\x89PNG"

    (run,) = tracking.runs(ws, tracking.Stage.FINAL)
    assert sorted(context for context, _ in run.inputs) == ["test-private", "test-public"]
    assert run.metrics["champion_private_mae"] == pytest.approx(champion["private_mae"])

    again = cli("finalize")
    assert again.exit_code == 2
    assert "already finalized" in again.stderr and "revealed once" in again.stderr
    (ws.reports / "final.json").unlink()  # deleting the report does not buy a second look
    assert "already finalized in MLflow run" in cli("finalize").stderr
    assert len(tracking.runs(ws, tracking.Stage.FINAL)) == 1


def test_only_scoring_opens_the_sealed_file(swept: Path, cli, parquet_opens):
    assert cli("submit").exit_code == 0
    assert any("sealed" in p for p in parquet_opens)
    sealed = Store(Paths(swept)).generation() / "sealed.parquet"
    assert str(sealed) in parquet_opens


def test_smape_mase_and_the_ratio_to_naive_by_hand():
    from pipeline.data import metrics

    f, a = np.array([110.0, 0.0, 50.0]), np.array([100.0, 0.0, 100.0])
    assert metrics.smape(f, a) == pytest.approx(200 / 3 * (10 / 210 + 0 + 50 / 150))  # 0/0 is 0
    series = np.array([1.0, 2, 3, 4, 5, 6, 7, 3, 2, 5])
    assert metrics.seasonal_scale(series) == pytest.approx((2 + 0 + 2) / 3)
    assert np.isnan(metrics.seasonal_scale(series[:7]))
    naive = np.array([90.0, 10.0, 100.0])
    found = metrics.errors(f, a, naive, np.array([5.0, 5.0, 10.0]))
    assert found["mae"] == pytest.approx(20.0)
    assert found["mase"] == pytest.approx((10 / 5 + 0 + 50 / 10) / 3)
    assert found["vs_naive"] == pytest.approx(20.0 / (20 / 3))
    assert metrics.errors(naive, a, naive, np.ones(3))["vs_naive"] == 1.0


def test_grouped_errors_are_each_series_errors():
    """The per-series metrics computed in one bincount pass equal `errors` series by series,
    including a series with no seasonal scale (MASE nan) and one whose naive MAE is 0."""
    from pipeline.data import metrics

    rng = np.random.default_rng(5)
    code = np.repeat([4, 9, 11, 30], [7, 1, 12, 5])
    actual = rng.gamma(2.0, 50.0, len(code))
    forecast, naive = actual + rng.normal(0, 20, len(code)), actual + rng.normal(0, 30, len(code))
    naive[code == 9] = actual[code == 9]
    scale = np.array([3.0, 8.0, np.nan, 2.5])[np.searchsorted([4, 9, 11, 30], code)]
    groups, found = metrics.grouped_errors(forecast, actual, naive, scale, code)
    assert groups.tolist() == [4, 9, 11, 30]
    for i, g in enumerate(groups):
        mine = code == g
        want = metrics.errors(forecast[mine], actual[mine], naive[mine], scale[mine])
        for name, value in want.items():
            np.testing.assert_allclose(found[name][i], value, rtol=1e-12, equal_nan=True)
    assert np.isnan(found["mase"][2]) and np.isnan(found["vs_naive"][1])


def test_final_and_leaderboard_report_scale_free_metrics(swept: Path, cli):
    submitted = cli("submit")
    assert submitted.exit_code == 0, submitted.output
    board = json.loads(cli("leaderboard", "--json").stdout)
    assert 0 < board[0]["public_smape"] < 200 and board[0]["public_mase"] > 0
    assert "SMAPE" in cli("leaderboard").stdout
    final = json.loads(cli("finalize", "--json").stdout)
    champion = final["champion"]
    for key in ("test_smape", "test_mase", "test_vs_naive"):
        assert champion[key] > 0, key
    assert final["baselines"]["naive"]["test_vs_naive"] == pytest.approx(1.0)
    per = final["champion_per_series"]
    assert sorted(per) == sorted(json.loads(cli("status", "--json").stdout)["series"])
    # pooled MASE is the mean of the rows' scaled errors: between the series' values
    values = [p["test_mase"] for p in per.values()]
    assert min(values) - 1e-9 <= champion["test_mase"] <= max(values) + 1e-9
    page = (swept / "reports" / "final.md").read_text()
    assert "## Scale-free scores (test period)" in page and "naive (baseline)" in page
