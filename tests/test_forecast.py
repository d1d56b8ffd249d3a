"""Refit, daily forecasts with intervals, monitoring and drift, the `daily` job and its lock."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import forecast as fc
from pipeline import tracking
from pipeline.config import ModelConfig, Workspace
from pipeline.features import lag_windows
from pipeline.monitor import drift_run
from pipeline.store import Store

from .conftest import snapshot

FORTNIGHT = 14


@pytest.fixture
def series(raw: Path) -> pd.DataFrame:
    """Peyton Manning's real daily Wikipedia views up to a calm summer's end (2015-06-30), with
    no missing day in the last 100."""
    views = pd.read_csv(raw / "wikipedia-peyton-manning" / "views.csv")
    return views[views["Date"] <= "2015-06-30"].reset_index(drop=True)


def export(rows: pd.DataFrame, path: Path) -> Path:
    """A YouTube Studio Totals.csv holding these rows."""
    rows.to_csv(path, index=False)
    return path


# one configuration of the default grid: it beats the naive baselines on these validation days
GRID = """
[grid]
lags = 28
model = "relu"
layers = 2
width = 64
batchnorm = true
target_transform = "log1p"
scaling = "window-mean"
lr = 3e-3
epochs = 600
patience = 60
"""


@pytest.fixture
def production(home: Path, series: pd.DataFrame, cli) -> Path:
    """The series minus its last fortnight, swept, selected, finalized and refit."""
    first = export(series.iloc[:-FORTNIGHT], home.parent / "export-0.csv")
    grid = home.parent / "series.toml"
    grid.write_text(GRID)
    for args in (
        ("ingest", first, "--series", "series"),
        ("sweep", "--grid", grid),
        ("select",),
        ("finalize",),
        ("refit",),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    return home


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    errors = np.arange(1.0, 21.0)  # 20 errors: 1..20
    assert fc.conformal_quantile(errors, 80) == 17.0  # ceil(21 * 0.8) = 17th smallest
    assert fc.conformal_quantile(errors, 95) == 20.0  # ceil(21 * 0.95) = 20th
    assert fc.conformal_quantile(errors[:10], 95) == np.inf  # too few errors for 95%


def test_drift_needs_m_consecutive_days():
    dates = ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-06"]
    assert drift_run([True, True, True, True, True], dates, 3) == "2024-01-04"  # a gap resets
    assert drift_run([True, True, True, False, True], dates, 3) is None
    assert drift_run([False, True, True, False, False], dates, 2) is None  # 01-03 is missing
    assert drift_run([False, False, True, True, False], dates, 2) == "2024-01-04"


def test_refit_trains_on_all_history_and_keeps_the_champion(production: Path):
    ws = Workspace(production)
    client = tracking.connect(ws).tracking.MlflowClient()
    champion = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "champion")
    prod = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "production")
    assert prod.run_id != champion.run_id
    refit_run, champion_run = client.get_run(prod.run_id), client.get_run(champion.run_id)
    assert champion_run.info.run_name == "relu-2x64-bn-lags28-log1p-adam-0.003"
    assert champion_run.data.metrics["best_epoch"] > 0
    assert refit_run.data.tags["source_run_id"] == champion.run_id
    assert refit_run.data.params["train.epochs"] == str(
        int(champion_run.data.metrics["best_epoch"])
    )
    store = Store(ws)
    n = int(refit_run.data.params["model.lags"])
    every_day = lag_windows(store.read_all(), store.read_splits(), n)
    assert refit_run.data.metrics["rows_train"] == len(every_day)  # train, val and test days
    assert champion_run.info.status == "FINISHED" and "test_mae" not in champion_run.data.metrics


def test_intervals_cover_their_nominal_share_of_validation_days(production: Path):
    ws = Workspace(production)
    champion = client_champion(ws)
    model = tracking.load_model(ws, champion)
    store = Store(ws)
    intervals = fc.validation_intervals(model, store.read_dev(), store.read_splits())
    windows = lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    rows = windows.rows("val")
    err = np.abs(windows.y(rows) - model.predict(windows.x(rows)))
    for level in fc.LEVELS:
        covered = np.mean(err <= intervals.width[level][0])
        # on its calibration days split conformal covers ceil((m + 1) * level) / m of them
        assert level / 100 <= covered <= level / 100 + 2 / len(rows)


def client_champion(ws: Workspace) -> str:
    from pipeline.selection import champion_run

    return champion_run(ws)


def test_forecast_uses_only_days_before_d(production: Path, series: pd.DataFrame, cli):
    ws = Workspace(production)
    day = series["Date"].iloc[-FORTNIGHT - 5]  # a day already in the store
    assert cli("forecast", "--date", day, "--horizon", "3").exit_code == 0
    path = ws.data / "forecasts" / f"{day}.csv"
    before = pd.read_csv(path)
    assert list(before["date"]) == list(pd.date_range(day, periods=3).strftime("%Y-%m-%d"))
    assert (before["lower_95"] <= before["lower_80"]).all()
    assert (before["lower_80"] <= before["forecast"]).all()
    assert (before["forecast"] <= before["upper_80"]).all()
    assert (before["upper_80"] <= before["upper_95"]).all()

    # unchanged without --force; the same numbers after the last fortnight is appended
    assert "nothing to do" in cli("forecast", "--date", day).output
    assert (
        cli("ingest", export(series, production.parent / "all.csv"), "--series", "series").exit_code
        == 0
    )
    assert cli("forecast", "--date", day, "--horizon", "3", "--force").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(path), before)

    # the one-day-ahead forecast is the model on the real previous days
    model = tracking.load_model(ws, before["run_id"][0])
    views = series["Views"].to_numpy(float)
    t = int(np.flatnonzero(series["Date"].to_numpy() == day)[0])
    x = views[t - model.cfg.lags : t][::-1][None, :]
    assert before["forecast"][0] == pytest.approx(model.predict(x)[0], abs=1e-3)


def test_forecast_run_is_logged_with_date_and_version(production: Path, cli):
    result = cli("forecast")
    assert result.exit_code == 0, result.output
    client = tracking.connect(Workspace(production)).tracking.MlflowClient()
    (run,) = client.search_runs(["1"], "tags.stage = 'forecast'")
    prod = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "production")
    assert run.data.tags["model_version"] == str(prod.version)
    assert run.data.tags["model_run_id"] == prod.run_id
    frame = pd.read_csv(next((production / "data" / "forecasts").glob("*.csv")))
    assert run.data.tags["forecast_date"] == frame["date"][0]
    assert (frame["model_version"] == int(prod.version)).all()


def test_a_simulated_fortnight(production: Path, series: pd.DataFrame, cli):
    """Day by day: one more day of the series arrives, `daily` runs. From day 8 the views jump
    twentyfold: drift must fire on the third shifted day monitored, and not before."""
    ws = Workspace(production)
    shifted = series.copy()
    shift_from = len(series) - FORTNIGHT + 7  # the 8th day of the fortnight
    shifted.loc[shift_from:, "Views"] *= 20
    codes = []
    for i in range(1, FORTNIGHT + 1):
        end = len(series) - FORTNIGHT + i
        new = export(shifted.iloc[end - 28 : end], production.parent / f"export-{i}.csv")
        result = cli("daily", new, "--series", "series", "--k", "2", "--m", "3")
        codes.append(result.exit_code)
        assert result.exit_code in (0, 3), result.output
        tomorrow = shifted["Date"].iloc[end - 1]
        tomorrow = str(np.datetime64(tomorrow, "D") + 1)
        assert (ws.data / "forecasts" / f"{tomorrow}.csv").exists()

        if i == 5:  # re-running the same day changes nothing
            data, runs = snapshot(ws.data), run_count(ws)
            again = cli("daily", new, "--series", "series")
            assert again.exit_code == 0 and snapshot(ws.data) == data and run_count(ws) == runs

    # the fortnight's forecasts for day 2..14 were scored: day i's forecast is scored on day i+1.
    # Shifted actuals arrive on days 8, 9, 10...: the third is monitored by the 10th day's run.
    first_drift = 10
    assert codes[: first_drift - 1] == [0] * (first_drift - 1)
    assert codes[first_drift - 1 :] == [3] * (FORTNIGHT - first_drift + 1)

    # the monitoring numbers, by hand from the forecast files and the export
    report = json.loads(cli("monitor", "--json").stdout)
    by_hand = []
    for path in sorted((ws.data / "forecasts").glob("*.csv")):
        row = pd.read_csv(path).iloc[0]
        actual = shifted.loc[shifted["Date"] == row["date"], "Views"]
        if len(actual):
            by_hand.append((row["date"], abs(row["forecast"] - float(actual.iloc[0]))))
    assert [d["date"] for d in report["days"]] == [d for d, _ in by_hand]
    assert [d["live_mae"] for d in report["days"]] == pytest.approx([e for _, e in by_hand])
    assert len(by_hand) == FORTNIGHT - 1
    assert report["drift_since"] == shifted["Date"].iloc[shift_from]
    client = tracking.connect(ws).tracking.MlflowClient()
    (mon,) = client.search_runs(["1"], "tags.stage = 'monitor'")
    history = client.get_metric_history(mon.info.run_id, "live_mae")
    assert sorted(m.value for m in history) == pytest.approx(sorted(e for _, e in by_hand))


def run_count(ws: Workspace) -> tuple[int, int]:
    client = tracking.connect(ws).tracking.MlflowClient()
    runs = client.search_runs(["1"], "", max_results=10_000)
    mon = [r for r in runs if r.data.tags.get("stage") == "monitor"]
    points = len(client.get_metric_history(mon[0].info.run_id, "live_mae")) if mon else 0
    return len(runs), points


def test_two_daily_runs_do_not_both_proceed(production: Path, series: pd.DataFrame, cli):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pipeline.config import Workspace\n"
            "from pipeline.lock import workspace_lock\n"
            f"with workspace_lock(Workspace.resolve({str(production)!r})):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(production / "data")
        new = export(series.iloc[-FORTNIGHT - 20 : -FORTNIGHT + 1], production.parent / "new.csv")
        started = time.monotonic()
        result = cli("daily", new, "--series", "series")
        assert time.monotonic() - started < 5, "the second run exits at once"
        assert result.exit_code == 4
        assert "workspace busy" in result.stderr and str(holder.pid) in result.stderr
        assert snapshot(production / "data") == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("daily", new, "--series", "series").exit_code == 0, "the lock dies with its holder"


def test_deploy_recipes_run_daily_with_a_persistent_timer():
    deploy = Path(__file__).resolve().parents[1] / "deploy"
    timer = configparser.ConfigParser()
    timer.read(deploy / "viewcast-daily.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "viewcast-daily.service"
    service = configparser.ConfigParser(strict=False)
    service.read(deploy / "viewcast-daily.service")
    assert " daily " in service["Service"]["ExecStart"]
    assert service["Service"]["Type"] == "oneshot"
    cron = [ln for ln in (deploy / "crontab.txt").read_text().splitlines() if ln[:1].isdigit()]
    assert len(cron) == 1 and "viewcast daily" in cron[0]


def test_grouped_conformal_quantile_matches_one_group_at_a_time():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 5, 300)
    group[group == 3] = 4  # group 3 has no errors
    errors = rng.exponential(10, 300)
    errors[:20] = errors[20:40]  # ties
    for level in fc.LEVELS:
        grouped = fc.grouped_conformal_quantile(errors, group, 6, level)
        for g in range(6):
            mine = errors[group == g]
            expected = fc.conformal_quantile(mine, level) if len(mine) else np.nan
            np.testing.assert_equal(grouped[g], expected)


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(lags=7, model="linear", target_transform="log1p", scaling="window-mean"),
        ModelConfig(lags=7, model="sigmoid", width=5),
        ModelConfig(
            lags=14,
            model="relu",
            layers=2,
            width=8,
            batchnorm=True,
            dropout=0.2,
            target_transform="log1p",
            scaling="window-mean",
        ),
        ModelConfig(lags=7, model="relu", layers=3, width=4, dropout=0.1),
        ModelConfig(lags=7, model="naive"),
    ],
)
def test_numpy_inference_matches_torch(cfg: ModelConfig, tmp_path: Path):
    import torch

    from pipeline import infer
    from pipeline.models import ViewsModel, save

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.lognormal(6, 1, (64, cfg.lags))
    model = ViewsModel(cfg)
    model.fit_normalisation(torch.tensor(x, dtype=torch.float32), torch.tensor(x[:, 0] * 1.1))
    for module in model.modules():  # moving averages away from their initial 0 and 1
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    save(model, tmp_path)
    np.testing.assert_allclose(
        infer.load(tmp_path).predict(x), model.predict(x), rtol=1e-4, atol=1e-3
    )


def test_forecast_does_not_import_torch(production: Path):
    code = (
        "import sys\n"
        "from pipeline.config import Workspace\n"
        "from pipeline.forecast import forecast\n"
        f"forecast(Workspace.resolve({str(production)!r}), force=True)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_ensemble_champion_refits_every_member_and_forecasts(swept: Path, cli):
    from pipeline import infer, selection
    from pipeline.models import EnsembleModel

    ws = Workspace(swept)
    client = tracking.connect(ws).tracking.MlflowClient()
    (ens,) = client.search_runs(["1"], "tags.ensemble_key != ''")
    selection.register_champion(client, ens.info.run_id, {})  # whatever select preferred
    assert cli("finalize").exit_code == 0
    result = cli("refit")
    assert result.exit_code == 0, result.output
    prod = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "production")
    refit_run = client.get_run(prod.run_id)
    members = refit_run.data.params["ensemble.members"].split(",")
    assert members == ens.data.params["ensemble.members"].split(",")
    model = tracking.load_model(ws, prod.run_id)
    assert isinstance(model, EnsembleModel) and len(model.members) == len(members) == 4

    assert cli("forecast").exit_code == 0
    frame = pd.read_csv(next((ws.data / "forecasts").glob("*.csv")))
    assert sorted(frame["series_id"]) == ["alpha", "beta"]
    assert isinstance(tracking.load_predictor(ws, prod.run_id), infer.NumpyEnsemble)
    table = Store(ws).read_all()
    x = np.stack([table.views[table.code == c][-model.cfg.lags :][::-1] for c in (0, 1)])
    np.testing.assert_allclose(frame["forecast"], model.predict(x), rtol=1e-4)


def test_no_forecast_of_a_test_day_before_finalize(swept: Path, cli):
    ws = Workspace(swept)
    test_day = fc.iso(Store(ws).read_splits().series["alpha"].test_start + 5)
    refused = cli("forecast", "--date", test_day)
    assert refused.exit_code == 2
    assert "before `viewcast finalize` would score the test" in refused.stderr
    assert not (ws.data / "forecasts").exists()
    assert cli("forecast").exit_code == 0, "the day after the data is fine (champion model)"
    assert cli("finalize").exit_code == 0
    assert cli("forecast", "--date", test_day).exit_code == 0
