"""`viewcast pull youtube` against a local server answering as the YouTube Analytics API and
Google's token endpoint: provisional days revised, tokens refreshed, refused and protected."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from pipeline.data.store import Store
from pipeline.data.table import concat
from pipeline.data.workspace import Paths
from pipeline.sources import oauth
from pipeline.sources.youtube import PROVISIONAL_DAYS
from tests.conftest import snapshot
from tests.sources.fake_apis import daily_views
from tests.sources.fixtures import write_token


def stored(home) -> dict[str, float]:
    store = Store(Paths(home))
    table = concat(store.read_dev(), store.read_sealed())
    return {str(np.datetime64(int(d), "D")): v for d, v in zip(table.day, table.views, strict=True)}


def channel(first: str, last: str, seed: int) -> dict[str, float]:
    return {d: float(v) for d, v in daily_views(first, last, seed, zeros=0).items()}


def test_provisional_days_are_pulled_again_and_revised(apis, cli, home):
    write_token(home, apis)
    # the channel's first days had no views: they are not the series' start
    apis.channel = {"2018-12-30": 0.0, "2018-12-31": 0.0} | channel("2019-01-01", "2020-06-30", 1)
    first = cli("pull", "youtube", "--json")
    assert first.exit_code == 0, first.output
    (asked,) = apis.requests_to("/youtube")
    assert asked["query"]["startDate"] == ["2005-01-01"] and asked["query"]["dimensions"] == ["day"]
    got = stored(home)
    assert min(got) == "2019-01-01" and got == {d: v for d, v in apis.channel.items() if v}
    (source,) = json.loads(cli("sources", "--json").stdout)
    assert source["name"] == "youtube-mine" and source["last_day"] == "2020-06-30"
    assert source["final_through"] == str(np.datetime64("2020-06-30") - PROVISIONAL_DAYS)

    # the next day: the provisional days come back with YouTube's revised counts
    apis.channel["2020-06-29"] += 40
    apis.channel["2020-06-30"] += 90
    apis.channel["2020-07-01"] = 700.0
    second = cli("pull", "youtube", "--json")
    assert second.exit_code == 0, second.output
    assert apis.requests_to("/youtube")[-1]["query"]["startDate"] == ["2020-06-28"]
    assert json.loads(second.stdout)["sources"][0]["revised"] == 2
    got = stored(home)
    assert got["2020-06-29"] == apis.channel["2020-06-29"] and got["2020-07-01"] == 700.0
    (source,) = json.loads(cli("sources", "--json").stdout)
    assert [(r["day"], r["new"] - r["old"]) for r in source["revisions"]] == [
        ("2020-06-29", 40.0),
        ("2020-06-30", 90.0),
    ]

    # a final day is never asked for again: a late change upstream does not reach the store
    apis.channel["2020-06-01"] += 1000
    cli("pull", "youtube")
    assert stored(home)["2020-06-01"] == got["2020-06-01"]


def test_an_expired_token_is_refreshed_through_the_token_endpoint(apis, cli, home):
    path = write_token(home, apis, expired=True)
    old = json.loads(path.read_text())["token"]
    apis.access_tokens.discard(old)  # the API would refuse it
    apis.channel = channel("2020-01-01", "2020-03-31", 2)
    result = cli("pull", "youtube")
    assert result.exit_code == 0, result.output
    assert len([r for r in apis.seen if r["path"] == "/token"]) == 1
    saved = json.loads(path.read_text())
    assert saved["token"] != old and saved["token"] in apis.access_tokens
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert saved["token"] not in result.output and saved["refresh_token"] not in result.output
    assert len(stored(home)) == 91


def test_a_revoked_token_is_one_line_exit_6_and_nothing_written(apis, cli, home):
    write_token(home, apis, expired=True)
    apis.refresh_tokens.clear()  # the user revoked viewcast's access
    apis.channel = channel("2020-01-01", "2020-03-31", 3)
    result = cli("pull", "youtube")
    assert result.exit_code == 6
    assert result.stderr.strip() == (
        "viewcast: error: YouTube token refused by the token endpoint (invalid_grant): revoked "
        "or expired; run `viewcast auth youtube --client-secrets FILE` again"
    )
    assert snapshot(home / "data") == {}


def test_a_401_with_an_unexpired_token_refreshes_once_then_gives_up(apis, cli, home):
    path = write_token(home, apis)
    apis.access_tokens.clear()  # revoked access token, refresh token still good
    apis.channel = channel("2020-01-01", "2020-01-31", 4)
    assert cli("pull", "youtube").exit_code == 0
    assert json.loads(path.read_text())["token"] in apis.access_tokens
    apis.access_tokens.clear()
    apis.refresh_tokens.clear()
    refused = cli("pull", "youtube")
    assert refused.exit_code == 6 and "invalid_grant" in refused.stderr


def test_a_token_file_others_can_read_is_refused(apis, cli, home):
    path = write_token(home, apis)
    os.chmod(path, 0o644)
    result = cli("pull", "youtube")
    assert result.exit_code == 6
    assert result.stderr.strip() == (
        f"viewcast: error: {path}: readable by others (mode 0644); run `chmod 600 {path}` (or "
        "`viewcast auth youtube` again), as ssh asks of a private key"
    )
    assert apis.requests_to("/youtube") == [], "nothing was sent with it"


def test_no_token_yet_says_how_to_get_one(apis, cli, home):
    result = cli("pull", "youtube")
    assert result.exit_code == 6
    assert "run `viewcast auth youtube --client-secrets FILE` first" in result.stderr


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([["2020-01-01", -3]], "negative views on 2020-01-01 (-3)"),
        ([["2020-01-01", None]], "views on 2020-01-01 are not a number (None)"),
        (
            [["2020-01-01", 3], ["2020-01-01", 4]],
            "2020-01-01 is in the answer twice, with different views",
        ),
        ([["2001-01-01", 3]], "the answer holds 2001-01-01, outside the days asked"),
        ([["2020-01-01"]], "malformed answer (a row ['2020-01-01'])"),
    ],
)
def test_bad_rows_are_one_line(apis, cli, home, rows, problem):
    from tests.sources.fake_apis import Fault

    write_token(home, apis)
    body = {
        "kind": "youtubeAnalytics#resultTable",
        "columnHeaders": [{"name": "day"}, {"name": "views"}],
        "rows": rows,
    }
    apis.fault("/youtube", Fault(200, json.dumps(body).encode()))
    result = cli("pull", "youtube")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"viewcast: error: youtube channel MINE: {problem}")
    assert snapshot(home / "data") == {}


def test_the_token_never_reaches_mlflow_or_data(apis, cli, home):
    path = write_token(home, apis)
    apis.channel = channel("2020-01-01", "2020-02-29", 5)
    assert cli("pull", "youtube").exit_code == 0
    secret = json.loads(path.read_text())
    for file in home.rglob("*"):
        if file.is_file() and file != path:
            blob = file.read_bytes()
            assert (
                secret["token"].encode() not in blob
                and secret["refresh_token"].encode() not in blob
            )
    assert oauth.token_path(Paths(home)).parent == home / "secrets"
