"""What the morning's commands print: the monitor's table with live coverage of the intervals."""

from __future__ import annotations

import math
from types import SimpleNamespace

from pipeline.cli import morning


def test_coverage_is_shown_as_whole_percents_and_a_dash_where_no_row_had_an_interval() -> None:
    assert morning.inside({"coverage_80": 83.333, "coverage_95": 100.0}) == "83% / 100%"
    assert morning.inside({"coverage_80": math.nan, "coverage_95": 95.0}) == "- / 95%"


def test_the_monitor_table_shows_each_days_coverage_and_the_whole(capsys) -> None:
    day = {"date": "2024-03-01", "series": 3, "live_mae": 12.5, "above": False}
    result = SimpleNamespace(
        days=[day | {"coverage_80": 66.667, "coverage_95": 100.0}],
        k=2.0,
        reference_mae=10.0,
        logged_days=1,
        run_id="abc",
        coverage={"coverage_80": 66.667, "coverage_95": 100.0},
        horizons=[],
    )
    morning.monitoring(result)
    out = " ".join(capsys.readouterr().out.split())
    assert "inside 80% / 95%" in out and "67% / 100%" in out
    assert out.endswith("actuals inside the 80% / 95% intervals: 67% / 100%")
    assert "validation MAE 10.0; 1 day scored, 1 logged" in out
    assert "day of the forecast" not in out, "one-day forecasts: no table by day"

    held = {"coverage_80": 50.0, "coverage_95": 100.0}
    result.horizons = [
        {"h": 1, "rows": 3, "live_mae": 12.5} | held,
        {"h": 2, "rows": 2, "live_mae": 40.25} | held,
    ]
    morning.monitoring(result)
    out = " ".join(capsys.readouterr().out.split())
    assert "live MAE by day of the forecast (D = 1)" in out and "40.2" in out
