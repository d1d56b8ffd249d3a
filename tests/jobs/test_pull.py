"""The pull job, and a simulated week of `viewcast daily --pull` on a workspace that forecasts:
the YouTube source publishes one more day each morning, its last days provisional."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import jobs
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.table import concat
from pipeline.data.workspace import Paths
from tests.conftest import FORTNIGHT, snapshot
from tests.jobs.test_daily import run_count
from tests.sources.fake_apis import Fault
from tests.sources.fixtures import write_token

WEEK = 7


def publish(apis, series: pd.DataFrame, last: int) -> str:
    """The channel as YouTube shows it on the morning after row `last`: the last 3 days still
    provisional (90% of their final count)."""
    rows = series.iloc[: last + 1]
    apis.channel = {
        str(d): float(v) * (0.9 if last - i < 3 else 1.0)
        for i, (d, v) in enumerate(zip(rows["Date"], rows["Views"], strict=True))
    }
    return str(rows["Date"].iloc[-1])


def test_a_simulated_week_of_daily_pull(production, series, cli, apis):
    ws = Paths(production)
    write_token(production, apis)
    start = len(series) - FORTNIGHT - 1  # the production store's last day
    publish(apis, series, start)
    first = cli("pull", "youtube", "--name", "series")
    assert first.exit_code == 0, first.output

    for i in range(1, WEEK + 1):
        last = publish(apis, series, start + i)
        result = cli("daily", "--pull")
        assert result.exit_code == 0, result.output
        tomorrow = str(np.datetime64(last, "D") + 1)
        assert (ws.data / "forecasts" / f"{tomorrow}.csv").exists()
        if i == 3:  # twice the same morning: nothing changes, no new run
            data, runs = snapshot(ws.data), run_count(ws)
            again = cli("daily", "--pull")
            assert again.exit_code == 0, again.output
            assert snapshot(ws.data) == data and run_count(ws) == runs

    store = Store(ws)
    table = concat(store.read_dev(), store.read_sealed())
    got = dict(zip(table.day.tolist(), table.views.tolist(), strict=True))
    real = series.iloc[: start + WEEK + 1]
    days = np.array(real["Date"], dtype="datetime64[D]").astype(int)
    # final days hold YouTube's final counts; the last 3 are still the provisional ones
    assert [got[d] for d in days[:-3]] == list(real["Views"].astype(float))[:-3]
    assert [got[d] for d in days[-3:]] == pytest.approx(list(0.9 * real["Views"].iloc[-3:]))
    (source,) = json.loads(cli("sources", "--json").stdout)
    # the first pull revised the 3 days the export had as final (YouTube: provisional); then
    # each morning one day left the provisional window with its final count
    assert len(source["revisions"]) == 3 + WEEK
    assert all(r["new"] == pytest.approx(r["old"] / 0.9) for r in source["revisions"][3:])


def test_daily_pull_forecasts_from_what_arrived_when_a_source_is_down(
    production, series, cli, apis, monkeypatch
):
    ws = Paths(production)
    write_token(production, apis)
    start = len(series) - FORTNIGHT - 1
    publish(apis, series, start)
    assert cli("pull", "youtube", "--name", "series").exit_code == 0
    publish(apis, series, start + 1)
    monkeypatch.setenv("VIEWCAST_PULL_RETRIES", "1")
    apis.fault("/youtube", Fault(503), Fault(503))
    data = snapshot(ws.store)
    result = cli("daily", "--pull")
    assert result.exit_code == 5
    assert result.stderr.strip().splitlines()[-1] == (
        "viewcast: error: youtube channel MINE: HTTP 503 Service Unavailable (2 tries); "
        "nothing was written"
    )
    assert snapshot(ws.store) == data, "the store is as it was"
    day_after = str(np.datetime64(series["Date"].iloc[start], "D") + 1)
    assert (ws.data / "forecasts" / f"{day_after}.csv").exists(), "the forecast is still made"


def test_pull_without_sources_or_daily_without_input_says_what_to_do(cli, home):
    assert "no source registered" in cli("pull").stderr
    nothing = cli("daily")
    assert nothing.exit_code == 2
    assert "give the new exports (files or folders), or --pull" in nothing.stderr
    with pytest.raises(ViewcastError, match="no source registered"):
        jobs.pull(Paths(home))
