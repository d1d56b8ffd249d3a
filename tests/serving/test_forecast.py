"""Refit, daily forecasts from the days before D, conformal intervals, the forecast run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.features import lag_windows
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models import intervals as iv
from pipeline.serving import forecast as fc
from tests.conftest import FORTNIGHT, export


def test_refit_prints_json_for_scripts(production: Path, cli):
    result = cli("refit", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert tracking.alias_run(Paths(production), "production") == (
        printed["run_id"],
        printed["version"],
    )
    assert printed["rows"] > 0 and printed["train_mae"] > 0


def test_refit_trains_on_all_history_and_keeps_the_champion(production: Path):
    ws = Paths(production)
    champion_id, _ = tracking.alias_run(ws, "champion")
    prod_id, _ = tracking.alias_run(ws, "production")
    assert prod_id != champion_id
    refit_run, champion = tracking.get_run(ws, prod_id), tracking.get_run(ws, champion_id)
    assert refit_run.stage == tracking.Stage.REFIT and champion.stage == tracking.Stage.TRAIN
    assert champion.name == "relu-2x64-bn-lags28-log1p-adam-0.003"
    assert champion.metrics["best_epoch"] > 0
    assert refit_run.tags["source_run_id"] == champion_id
    assert refit_run.params["train.epochs"] == str(int(champion.metrics["best_epoch"]))
    store = Store(ws)
    n = int(refit_run.params["model.lags"])
    every_day = lag_windows(store.read_all(), store.read_splits(), n)
    assert refit_run.metrics["rows_train"] == len(every_day)  # train, val and test days
    assert champion.status == "FINISHED" and "test_mae" not in champion.metrics


def test_forecast_uses_only_days_before_d(production: Path, series: pd.DataFrame, cli):
    ws = Paths(production)
    day = series["Date"].iloc[-FORTNIGHT - 5]  # a day already in the store
    assert cli("forecast", "--date", day, "--horizon", "3").exit_code == 0
    path = ws.data / "forecasts" / f"{day}.csv"
    before = pd.read_csv(path)
    assert list(before["date"]) == list(pd.date_range(day, periods=3).strftime("%Y-%m-%d"))
    assert (before["lower_95"] <= before["lower_80"]).all()
    assert (before["lower_80"] <= before["forecast"]).all()
    assert (before["forecast"] <= before["upper_80"]).all()
    assert (before["upper_80"] <= before["upper_95"]).all()

    # unchanged without --force, saying how far the file reaches when another horizon is asked;
    # the same numbers after the last fortnight is appended
    assert cli("forecast", "--date", day, "--horizon", "3").output == (
        f"{path} exists: nothing to do (--force replaces it)\n"
    )
    shorter = cli("forecast", "--date", day, "--json")
    assert shorter.output.startswith(
        f"{path} exists (it holds 3 days ahead; 1 asked): nothing to do (--force replaces it)\n"
    )
    assert '"held": 3' in shorter.output and '"horizon": 1' in shorter.output
    everything = export(series, production.parent / "all.csv")
    assert cli("ingest", everything, "--name", "series").exit_code == 0
    assert cli("forecast", "--date", day, "--horizon", "3", "--force").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(path), before)

    # the one-day-ahead forecast is the model on the real previous days
    model = tracking.load_model(ws, before["run_id"][0])
    views = series["Views"].to_numpy(float)
    t = int(np.flatnonzero(series["Date"].to_numpy() == day)[0])
    x = views[t - model.cfg.lags : t][::-1][None, :]
    assert before["forecast"][0] == pytest.approx(model.predict(x)[0], abs=1e-3)


def test_forecast_run_is_logged_with_date_and_version(production: Path, cli):
    result = cli("forecast", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    ws = Paths(production)
    (run,) = tracking.runs(ws, tracking.Stage.FORECAST)
    assert printed["run_id"] == run.run_id and len(printed["forecasts"]) == 1
    assert (
        printed["forecasts"][0]["series_id"] == "series" and printed["forecasts"][0]["forecast"] > 0
    )
    # daily operations live in their own experiment; both are model-training experiments
    s = tracking.session(ws)
    assert s.client.get_run(run.run_id).info.experiment_id == s.daily != s.experiment
    for experiment in (s.experiment, s.daily):
        tags = s.client.get_experiment(experiment).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"
    prod_id, version = tracking.alias_run(ws, "production")
    assert run.tags["model_version"] == version
    assert run.tags["model_run_id"] == prod_id
    frame = pd.read_csv(next((production / "data" / "forecasts").glob("*.csv")))
    assert run.tags["forecast_date"] == frame["date"][0]
    assert (frame["model_version"] == int(version)).all()
    day = frame["date"][0]
    assert tracking.artifacts(ws, run.run_id, "forecast") == {
        f"forecast/{day}.csv",
        f"forecast/{day}.png",
    }
    png = production / "data" / "forecasts" / f"{day}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_day_no_series_can_be_forecast_for_is_one_line_and_writes_nothing(production: Path, cli):
    ws = Paths(production)
    last = Store(ws).read_all().day.max()
    far = str(np.datetime64(int(last) + fc.MAX_ROLL_DAYS + 10, "D"))
    result = cli("forecast", "--date", far)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"viewcast: error: nothing to forecast from {far}: ")
    assert f"the last day ingested is {np.datetime64(int(last), 'D')}" in result.stderr
    assert not list((production / "data" / "forecasts").glob(f"{far}*")), "no file, no picture"
    assert not tracking.runs(ws, tracking.Stage.FORECAST)


def test_days_past_the_champions_errors_get_empty_bounds_not_infinite_ones(production: Path, cli):
    """Conformal half-widths need enough out-of-sample errors h days ahead: past the validation
    days' reach there are none, and the rows say so with empty bounds (the CLI names the date)."""
    horizon = Store(Paths(production)).read_splits().val_days + 10
    result = cli("forecast", "--horizon", horizon)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(production / "data" / "forecasts" / f"{json_date(result)}.csv")
    bounds = frame[[c for c in frame if c.startswith(("lower_", "upper_"))]]
    assert np.isfinite(frame["forecast"]).all() and not np.isinf(bounds.to_numpy()).any()
    assert bounds.iloc[0].notna().all() and bounds.iloc[-1].isna().all()
    first = frame["date"][bounds.isna().any(axis=1)].min()
    assert bounds[frame["date"] < first].notna().all().all()
    shown = " ".join(result.stdout.split())
    assert (
        f"rows from {first} on have no interval where they lie further past their series' last day"
        in shown
    )
    rows = json.loads(cli("forecast", "--horizon", horizon, "--force", "--json").stdout)
    assert rows["unbounded_from"] == first and rows["forecasts"][-1]["upper_95"] is None


def test_a_horizon_past_the_calibrated_steps_keeps_them_and_adds_one_windows(production: Path, cli):
    """`select` calibrated 60 steps on three windows (28 where a store's size allows no more):
    a longer forecast keeps the calibrated steps and takes the later ones from the validation
    days' window alone."""
    ws = Paths(production)
    champion, _ = tracking.alias_run(ws, "champion")
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    key = iv.dev_key(store.require() / "dev.parquet")
    path = tracking.model_folder(ws, champion) / iv.CALIBRATED_FILE
    calibrated = iv.read_intervals(path, dev.names, key)
    assert calibrated.horizons == 60
    # as a large store's select leaves it: 28 steps
    short = iv.Intervals(
        calibrated.names,
        {lv: w[:28] for lv, w in calibrated.width.items()},
        {lv: r[:28] for lv, r in calibrated.relative.items()},
    )
    iv.write_intervals(path, short, key)
    one = iv.validation_intervals(tracking.load_predictor(ws, champion), dev, splits, 35)
    result = cli("forecast", "--horizon", "35")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(production / "data" / "forecasts" / f"{json_date(result)}.csv")
    half = (frame["upper_80"] - frame["forecast"]).to_numpy()
    np.testing.assert_allclose(half[:28], calibrated.width[80][:28, 0], atol=2e-3)
    np.testing.assert_allclose(half[28:], one.width[80][28:, 0], atol=2e-3)
    assert not np.allclose(calibrated.width[80][:28, 0], one.width[80][:28, 0], atol=1.0)


def test_a_series_that_stopped_early_gets_the_intervals_of_its_days_ahead(production: Path, cli):
    """Day D for a series whose last day is D - 4 is forecast 4 and 5 days ahead of its data
    (horizon 2): its rows get the half-widths of steps 4 and 5, not of steps 1 and 2, and the
    command says how many series lack days before D."""
    ws = Paths(production)
    champion, _ = tracking.alias_run(ws, "champion")
    store = Store(ws)
    dev, last = store.read_dev(), int(store.read_all().day.max())
    splits = store.read_splits()
    key = iv.dev_key(store.require() / "dev.parquet")
    path = tracking.model_folder(ws, champion) / iv.CALIBRATED_FILE
    calibrated = iv.read_intervals(path, dev.names, key)
    day = str(np.datetime64(last + 4, "D"))
    result = cli("forecast", "--date", day, "--horizon", "2")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert f"1 series ends before the day before {day} (up to 3 days missing)" in said
    frame = pd.read_csv(production / "data" / "forecasts" / f"{day}.csv")
    for level in iv.LEVELS:
        half = (frame[f"upper_{level}"] - frame["forecast"]).to_numpy()
        np.testing.assert_allclose(half, calibrated.width[level][3:5, 0], atol=2e-3)
        assert not np.allclose(half, calibrated.width[level][:2, 0], atol=1.0)
    printed = json.loads(cli("forecast", "--date", day, "--force", "--json").stdout)
    assert (printed["late"], printed["late_days"]) == (1, 3)

    # no calibrated file (a champion of a large panel): the validation window's steps 4 and 5
    path.unlink()
    one = iv.validation_intervals(tracking.load_predictor(ws, champion), dev, splits, 5)
    assert cli("forecast", "--date", day, "--horizon", "2", "--force").exit_code == 0
    frame = pd.read_csv(production / "data" / "forecasts" / f"{day}.csv")
    half = (frame["upper_80"] - frame["forecast"]).to_numpy()
    np.testing.assert_allclose(half, one.width[80][3:5, 0], atol=2e-3)


def test_intervals_reach_the_farthest_row_as_far_as_the_budget_affords(monkeypatch):
    splits = type("Splits", (), {"val_days": 60})()
    dev = np.zeros(1000)  # dev rows
    steps = np.array([1, 2, 9, 10])  # a series 8 days behind, horizon 2
    assert fc.reach(2, steps, dev, splits) == 10
    assert fc.reach(2, np.array([80, 81]), dev, splits) == 60, "the validation days' reach"
    assert fc.reach(70, np.array([1, 70]), dev, splits) == 70, "the horizon asked, always"
    monkeypatch.setattr(fc, "SCORE_BUDGET", 4000)  # 4 steps of 1,000 rows
    assert fc.reach(2, steps, dev, splits) == 4
    assert fc.reach(1, np.array([1]), dev, splits) == 1


def json_date(result) -> str:
    return result.stdout.split("forecast for ")[1][:10]


def test_intervals_are_kept_per_champion_and_dev_days(production: Path, cli, monkeypatch):
    """No forecast scores the validation days again: `select` logged the champion's calibrated
    intervals beside its model, read first; without them, the champion's training run logged its
    intervals with its model (from the validation forecasts it made anyway, equal to scoring
    them here), and the first forecast keeps them per champion and dev-days hash. A damaged
    kept file is read again from the run; without the run's file they are scored here."""
    ws = Paths(production)
    champion, _ = tracking.alias_run(ws, "champion")
    logged = tracking.model_folder(ws, champion) / iv.INTERVALS_FILE
    store = Store(ws)
    dev, splits = store.read_dev(), store.read_splits()
    scored = iv.validation_intervals(tracking.load_predictor(ws, champion), dev, splits)
    key = iv.dev_key(store.require() / "dev.parquet")
    read = iv.read_intervals(logged, dev.names, key)
    for level in iv.LEVELS:
        np.testing.assert_allclose(read.width[level], scored.width[level], rtol=1e-5)
        assert read.relative[level] == pytest.approx(scored.relative[level], rel=1e-5)
    assert iv.read_intervals(logged, dev.names, "other dev days") is None
    calls = []
    original = iv.validation_intervals
    monkeypatch.setattr(fc, "validation_intervals", lambda *a: calls.append(1) or original(*a))
    folder = production / "data" / "forecasts"
    # `select` calibrated the champion on several windows: read first, nothing scored or kept
    calibrated = tracking.model_folder(ws, champion) / iv.CALIBRATED_FILE
    assert iv.read_intervals(calibrated, dev.names, key, 28) is not None
    assert cli("forecast", "--force").exit_code == 0
    assert calls == [] and not list((folder / ".intervals").glob("*.npz"))
    calibrated.unlink()  # a champion selected before calibration: the one-window chain below
    assert cli("forecast", "--force").exit_code == 0
    first = pd.read_csv(next(folder.glob("*.csv")))
    (kept,) = (folder / ".intervals").glob("*.npz")
    assert kept.name == f"{champion}-{key}.npz"
    assert cli("forecast", "--force").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(next(folder.glob("*.csv"))), first)
    kept.write_bytes(b"damaged")
    assert cli("forecast", "--force").exit_code == 0
    assert calls == [], "read from the run's model folder"
    pd.testing.assert_frame_equal(pd.read_csv(next(folder.glob("*.csv"))), first)
    kept.unlink()
    logged.unlink()
    assert cli("forecast", "--force").exit_code == 0
    assert calls == [1], "scored here"
    pd.testing.assert_frame_equal(pd.read_csv(next(folder.glob("*.csv"))), first)


def test_the_forecast_picture_shows_the_busiest_series_last_90_days_and_bands():
    day = int(np.datetime64("2024-03-01", "D").astype(int))
    history = {f"s{i}": np.full(200, float(10 * (i + 1))) for i in range(8)}
    last = {name: day - 1 for name in history} | {"s7": day - 3}  # s7 stopped two days early
    frame = fc.forecast_frame(
        np.array(list(history)), np.full(8, day), np.ones(8), np.arange(8.0) * 10, _intervals()
    )
    panels, title = fc.picture(frame, history, last, day)
    assert [p.title for p in panels] == ["s7", "s6", "s5", "s4", "s3", "s2"]
    assert "6 of 8 series" in title
    late, panel = panels[0], panels[1]
    assert len(panel.actual) == 90 and panel.dates[-1] == np.datetime64("2024-02-29")
    assert late.dates[-1] == np.datetime64("2024-02-27")
    assert panel.forecast_dates[0] == np.datetime64("2024-03-01") and panel.forecast[0] == 60.0
    lower, upper = panel.bands[95]
    assert lower[0] <= panel.bands[80][0][0] <= 60.0 <= panel.bands[80][1][0] <= upper[0]


def _intervals():
    """Conformal widths of 5 (80%) and 9 (95%) views for every series, one step ahead."""
    width = {80: np.full((1, 8), 5.0), 95: np.full((1, 8), 9.0)}
    names = np.array([f"s{i}" for i in range(8)])
    return iv.Intervals(names, width, {80: np.array([0.1]), 95: np.array([0.2])})


def test_a_forecast_file_whose_run_went_missing_gets_its_run_back(production: Path, cli):
    """kill -9 between writing <D>.csv and logging its run: the next forecast of D logs the run
    from the file instead of saying 'nothing to do' forever."""
    ws = Paths(production)
    assert cli("forecast", "--horizon", "2").exit_code == 0
    (run,) = tracking.runs(ws, tracking.Stage.FORECAST)
    tracking.session(ws).client.delete_run(run.run_id)
    assert tracking.runs(ws, tracking.Stage.FORECAST) == []
    again = cli("forecast")
    assert again.exit_code == 0 and "nothing to do" in again.output
    (back,) = tracking.runs(ws, tracking.Stage.FORECAST)
    assert back.tags["forecast_date"] == run.tags["forecast_date"]
    assert back.tags["model_run_id"] == run.tags["model_run_id"]
    assert back.params["horizon"] == "2" and back.metrics["series"] == 1
    assert cli("forecast").exit_code == 0
    assert len(tracking.runs(ws, tracking.Stage.FORECAST)) == 1, "logged once"

    # a file there that is not a forecast (emptied, say) and no run: one line, not a crash
    (path,) = (production / "data" / "forecasts").glob("*.csv")
    tracking.session(ws).client.delete_run(back.run_id)
    path.write_text("")
    damaged = cli("forecast")
    assert damaged.exit_code == 2
    assert damaged.stderr.startswith(f"viewcast: error: {path}: not a forecast file viewcast wrote")
    assert cli("forecast", "--force").exit_code == 0, "--force writes it again"
    assert len(pd.read_csv(path)) == 1  # one series, one day (the default horizon)


def test_forecast_does_not_import_torch(production: Path):
    code = (
        "import sys\n"
        "from pipeline.data.workspace import Paths\n"
        "from pipeline.serving.forecast import forecast\n"
        f"forecast(Paths.resolve({str(production)!r}), force=True)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_ensemble_champion_refits_every_member_and_forecasts(swept: Path, cli):
    from pipeline.models import infer
    from pipeline.models.families import EnsembleModel

    ws = Paths(swept)
    (sweep,) = tracking.runs(ws, tracking.Stage.SWEEP)
    (ens,) = [r for r in tracking.sweep_children(ws, sweep.run_id) if "ensemble_key" in r.tags]
    tracking.register_alias(ws, ens.run_id, "champion", {})  # whatever select preferred
    assert cli("finalize").exit_code == 0
    result = cli("refit")
    assert result.exit_code == 0, result.output
    prod_id, _ = tracking.alias_run(ws, "production")
    refit_run = tracking.get_run(ws, prod_id)
    assert refit_run.stage == tracking.Stage.REFIT
    members = refit_run.params["ensemble.members"].split(",")
    assert members == ens.params["ensemble.members"].split(",")
    model = tracking.load_model(ws, prod_id)
    assert isinstance(model, EnsembleModel) and len(model.members) == len(members) == 4

    assert cli("forecast").exit_code == 0
    frame = pd.read_csv(next((ws.data / "forecasts").glob("*.csv")))
    assert sorted(frame["series_id"]) == ["alpha", "beta"]
    assert isinstance(tracking.load_predictor(ws, prod_id), infer.NumpyEnsemble)
    table = Store(ws).read_all()
    x = np.stack([table.views[table.code == c][-model.cfg.lags :][::-1] for c in (0, 1)])
    np.testing.assert_allclose(frame["forecast"], model.predict(x), rtol=1e-4)


def test_no_forecast_of_a_test_day_before_finalize(swept: Path, cli):
    ws = Paths(swept)
    test_day = fc.iso(Store(ws).read_splits().series["alpha"].test_start + 5)
    refused = cli("forecast", "--date", test_day)
    assert refused.exit_code == 2
    assert "before `viewcast finalize` would score the test" in refused.stderr
    assert not (ws.data / "forecasts").exists()
    assert cli("forecast").exit_code == 0, "the day after the data is fine (champion model)"
    assert cli("finalize").exit_code == 0
    assert cli("forecast", "--date", test_day).exit_code == 0
