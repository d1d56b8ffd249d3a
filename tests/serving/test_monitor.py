"""Monitoring: live MAE of past forecasts against ingested actuals, logged by day, and drift."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.serving.monitor import HORIZONS_FILE, drift_run, live_errors, monitor


def test_drift_needs_m_consecutive_days():
    dates = ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-06"]
    assert drift_run([True, True, True, True, True], dates, 3) == "2024-01-04"  # a gap resets
    assert drift_run([True, True, True, False, True], dates, 3) is None
    assert drift_run([False, True, True, False, False], dates, 2) is None  # 01-03 is missing
    assert drift_run([False, False, True, True, False], dates, 2) == "2024-01-04"


def last_three_days(home: Path):
    """The workspace, its last three days and their views, and an empty forecasts folder."""
    ws = Paths(home)
    table = Store(ws).read_all()
    folder = ws.data / "forecasts"
    folder.mkdir(parents=True)
    return ws, table.day[-3:].astype("datetime64[D]").astype(str), table.views[-3:], folder


def test_live_mae_is_each_days_error_against_the_actuals_logged_once(production: Path):
    ws, days, actual, folder = last_three_days(production)
    made = actual + np.array([10.0, -20.0, 400.0])
    for day, value in zip(days, made, strict=True):
        # a two-day horizon file: only its first day (the one-day-ahead forecast) is scored
        rows = {"series_id": ["series", "series"], "date": [day, "2099-01-01"]}
        pd.DataFrame(rows | {"forecast": [value, 1.0]}).to_csv(folder / f"{day}.csv", index=False)

    reference = tracking.get_run(ws, tracking.champion_run(ws)).metrics["val_mae"]
    result = monitor(ws, k=400 / reference - 1e-9, m=1)
    assert [d["date"] for d in result.days] == list(days)
    assert [d["live_mae"] for d in result.days] == pytest.approx([10.0, 20.0, 400.0])
    assert [d["above"] for d in result.days] == [False, False, True]
    assert result.drift_since == days[-1] and result.logged_days == 3
    logged = tracking.metric_steps(ws, result.run_id, "live_mae")
    assert sorted(logged.values()) == pytest.approx([10.0, 20.0, 400.0])
    ratio = tracking.metric_steps(ws, result.run_id, "live_mae_ratio")
    assert max(ratio.values()) == pytest.approx(400.0 / reference)

    # hand-written files without bounds: no coverage, nothing logged for it
    assert all(math.isnan(d["coverage_80"]) for d in result.days)
    assert tracking.metric_steps(ws, result.run_id, "live_coverage_80") == {}

    again = monitor(ws, k=2, m=3)
    assert again.logged_days == 0 and again.run_id == result.run_id, "each day is logged once"
    assert len(tracking.runs(ws, tracking.Stage.MONITOR)) == 1


def test_a_day_is_logged_again_when_more_of_its_series_have_actuals(swept: Path, cli):
    """Day D's actuals of beta arrive a day after alpha's (another source, a late export): the
    monitor run's D is logged again over both series, and is MLflow's latest value for D."""
    ws = Paths(swept)
    table = Store(ws).read_all()
    day = int(table.day.max()) + 1
    date = str(np.datetime64(day, "D"))
    folder = ws.data / "forecasts"
    folder.mkdir(parents=True)
    rows = {"series_id": ["alpha", "beta"], "date": [date, date], "forecast": [1000.0, 1000.0]}
    pd.DataFrame(rows).to_csv(folder / f"{date}.csv", index=False)
    for name, views, arrived in (("alpha", 1100, True), ("beta", 1300, False)):
        export = swept.parent / f"{name}-late.csv"
        pd.DataFrame({"Date": [date], "Views": [views]}).to_csv(export, index=False)
        if arrived:
            assert cli("ingest", export, "--name", name).exit_code == 0

    first = monitor(ws)
    assert [(d["series"], d["live_mae"]) for d in first.days] == [(1, 100.0)]
    assert cli("ingest", swept.parent / "beta-late.csv", "--name", "beta").exit_code == 0
    second = monitor(ws)
    assert [(d["series"], d["live_mae"]) for d in second.days] == [(2, 200.0)]
    assert second.logged_days == 1 and second.run_id == first.run_id
    assert tracking.metric_steps(ws, first.run_id, "live_mae") == {day: 200.0}
    assert tracking.get_run(ws, first.run_id).metrics["live_series"] == 2.0
    assert monitor(ws).logged_days == 0, "logged again only when the day changed"
    # beta's day revised (YouTube's provisional days are pulled again): the same two series
    pd.DataFrame({"Date": [date], "Views": [1500]}).to_csv(
        swept.parent / "beta-late.csv", index=False
    )
    assert cli("ingest", swept.parent / "beta-late.csv", "--name", "beta").exit_code == 0
    assert monitor(ws).logged_days == 1
    assert tracking.metric_steps(ws, first.run_id, "live_mae") == {day: 300.0}


def test_live_coverage_counts_the_actuals_inside_each_interval(production: Path):
    """Each day's share of actuals inside its rows' 80% and 95% bounds, and over every day;
    rows with empty bounds (too far ahead) are left out of it, not counted as misses."""
    ws, days, actual, folder = last_three_days(production)
    # day 1 inside both, day 2 inside the 95% band only, day 3 without bounds
    widths = [(5.0, 9.0), (1.0, 30.0), (np.nan, np.nan)]
    for day, value, (w80, w95) in zip(days, actual, widths, strict=True):
        row = {"series_id": ["series"], "date": [day], "forecast": [value + 3.0]}
        row |= {"lower_80": [value + 3.0 - w80], "upper_80": [value + 3.0 + w80]}
        row |= {"lower_95": [value + 3.0 - w95], "upper_95": [value + 3.0 + w95]}
        pd.DataFrame(row).to_csv(folder / f"{day}.csv", index=False)
    # days 1 and 2 logged by a viewcast from before live coverage: their MAE, no coverage
    old = monitor(ws, log=False)
    run = tracking.create_run(ws, "monitor", tracking.Stage.MONITOR, {})
    points = [(int(np.datetime64(d["date"], "D").astype(int)), d) for d in old.days[:2]]
    run.series("live_mae", [(t, d["live_mae"], t * 86_400_000) for t, d in points])
    run.series("live_series", [(t, float(d["series"]), t * 86_400_000) for t, d in points])
    result = monitor(ws)
    got = [(d["coverage_80"], d["coverage_95"]) for d in result.days]
    assert got[:2] == [(100.0, 100.0), (0.0, 100.0)] and all(map(math.isnan, got[2]))
    assert result.coverage == {"coverage_80": 50.0, "coverage_95": 100.0}
    assert result.run_id == run.run_id and result.logged_days == 3, "days 1-2 again, day 3 new"
    logged = tracking.metric_steps(ws, result.run_id, "live_coverage_80")
    assert sorted(logged.values()) == [0.0, 100.0], "the day without bounds logs none"
    assert monitor(ws).logged_days == 0


def test_every_day_of_a_multi_day_forecast_is_scored_by_its_day_of_the_forecast(production: Path):
    """Two-day files: day D is the one-day-ahead forecast (per day, drift), day D+1 is scored
    as day 2 of its forecast when its actual is in; a day with no actual yet is not."""
    ws, days, actual, folder = last_three_days(production)
    for i, day in enumerate(days):
        later = actual[i + 1] if i + 1 < len(actual) else 0.0  # the last file's day 2: no actual
        rows = {"series_id": ["series", "series"], "date": [day, str(np.datetime64(day) + 1)]}
        forecasts = [actual[i] + 10.0 * (i + 1), later + 100.0]
        pd.DataFrame(rows | {"forecast": forecasts}).to_csv(folder / f"{day}.csv", index=False)
    (folder / "notes.csv").write_text("series_id,date,forecast\nseries,2000-01-01,1\n")
    result = monitor(ws)
    assert [d["live_mae"] for d in result.days] == pytest.approx([10.0, 20.0, 30.0])
    assert [(d["h"], d["rows"]) for d in result.horizons] == [(1, 3), (2, 2)]
    assert [d["live_mae"] for d in result.horizons] == pytest.approx([20.0, 100.0])
    assert math.isnan(result.horizons[1]["coverage_80"]), "hand-written rows: no bounds"
    kept = tracking.artifacts(ws, result.run_id, "monitor")
    assert kept == {f"monitor/{HORIZONS_FILE}"}


def test_series_ids_that_look_like_formulas_are_neutralised_and_restored():
    from pipeline.data.atomic import neutralise, restore

    for text in ("=cmd|calc", "+1", "-2", "@SUM(A1)", "\tx", "'quoted", "'=x", "plain", ""):
        assert restore(neutralise(text)) == text
    assert neutralise("=cmd|calc") == "'=cmd|calc" and neutralise("plain") == "plain"
    assert not any(neutralise(t).startswith(("=", "+", "-", "@")) for t in ("=a", "+b", "-c"))


def test_a_forecast_csv_never_starts_a_cell_with_a_formula(production: Path, cli, tmp_path):
    ws = Paths(production)
    table = Store(ws).read_all()
    rows = pd.DataFrame(
        {"Date": table.day[-200:].astype("datetime64[D]").astype(str), "Views": table.views[-200:]}
    )
    rows.to_csv(tmp_path / "evil.csv", index=False)
    assert cli("ingest", tmp_path / "evil.csv", "--name", "=cmd|calc").exit_code == 0
    assert cli("forecast").exit_code == 0
    path = next((ws.data / "forecasts").glob("*.csv"))
    cells = path.read_text().splitlines()
    assert any(line.startswith("'=cmd|calc,") for line in cells), cells[:3]
    assert not any(line.startswith("=") for line in cells)


@pytest.mark.parametrize(
    "content", [b"garbage\x00\x01", b"", b"series_id,date\nct,2021-01-01\n", b"\xff\xfe\x00"]
)
def test_a_file_in_the_forecasts_folder_that_is_not_a_forecast_is_one_line(
    tmp_path: Path, content: bytes
):
    ws = Paths(tmp_path)
    folder = ws.data / "forecasts"
    folder.mkdir(parents=True)
    (folder / "2021-12-31.csv").write_bytes(content)
    with pytest.raises(ViewcastError) as err:
        live_errors(ws)
    line = str(err.value)
    assert line.startswith(f"{folder / '2021-12-31.csv'}: not a forecast file (")
    assert line.endswith(f"move it out of {folder}") and "\n" not in line
