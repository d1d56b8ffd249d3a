"""`viewcast pull wikipedia` against a local server answering as Wikimedia's pageviews API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.store import Store
from pipeline.data.table import concat
from pipeline.data.workspace import Paths
from pipeline.sources.wikipedia import article_title
from tests.conftest import snapshot
from tests.sources.fake_apis import Fault, daily_views

ARTICLE = "R_(programming_language)"


def stored(home) -> dict[str, float]:
    store = Store(Paths(home))
    table = concat(store.read_dev(), store.read_sealed())
    assert not table.imputed.any(), "a pulled zero is a zero, not a gap"
    return {str(np.datetime64(int(d), "D")): v for d, v in zip(table.day, table.views, strict=True)}


@pytest.mark.parametrize(
    ("text", "project", "expected"),
    [
        ("R (programming language)", "en.wikipedia", ("en.wikipedia", ARTICLE)),
        (
            "https://en.wikipedia.org/wiki/R_(programming_language)",
            "de.wikipedia",
            ("en.wikipedia", ARTICLE),
        ),
        ("https://de.m.wikipedia.org/wiki/K%C3%B6ln", "en.wikipedia", ("de.wikipedia", "Köln")),
        (
            "https://fr.wikipedia.org/w/index.php?title=Paris&action=info",
            "x",
            ("fr.wikipedia", "Paris"),
        ),
        ("peyton manning", "en.wikipedia", ("en.wikipedia", "Peyton_manning")),
        ("chat", "fr.wiktionary", ("fr.wiktionary", "chat")),
    ],
)
def test_titles_as_readers_write_them_or_as_urls(text, project, expected):
    assert article_title(text, project) == expected


def test_a_first_pull_of_years_then_an_incremental_one(apis, cli, home):
    views = daily_views("2016-03-01", "2020-12-31", seed=1)
    apis.articles[ARTICLE] = views
    result = cli("pull", "wikipedia", "R (programming language)", "--json")
    assert result.exit_code == 0, result.output
    (asked,) = apis.requests_to("/wikimedia")
    assert asked["path"].endswith(
        "/en.wikipedia/all-access/user/R_%28programming_language%29/daily/20150701/" + _yesterday()
    )
    assert "tests@viewcast.invalid" in asked["headers"]["User-Agent"]
    report = json.loads(result.stdout)
    assert report["sources"][0] | {"last_day": "2020-12-31", "revised": 0} == report["sources"][0]
    got = stored(home)
    # the API left the zero days out: they are zeros in the store, and every day is there
    assert got == {d: float(v) for d, v in views.items()}
    assert sum(v == 0 for v in views.values()) > 10

    more = daily_views("2021-01-01", "2021-01-20", seed=2)
    apis.articles[ARTICLE] |= more
    again = cli("pull")
    assert again.exit_code == 0, again.output
    second = apis.requests_to("/wikimedia")[-1]["path"]
    assert "/daily/20210101/" in second, "only the days after the last final day are asked"
    assert stored(home) == {d: float(v) for d, v in (views | more).items()}
    (source,) = json.loads(cli("sources", "--json").stdout)
    assert source["final_through"] == source["last_day"] == "2021-01-20"

    # nothing new yet: the API answers 404, the pull says so, nothing changes
    data = snapshot(home / "data")
    quiet = cli("pull")
    assert quiet.exit_code == 0 and "nothing new" in quiet.output
    assert snapshot(home / "data") == data


def test_a_first_pull_of_an_unknown_article_writes_nothing(apis, cli, home):
    result = cli("pull", "wikipedia", "No such page at all")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "viewcast: error: wikipedia en.wikipedia/No_such_page_at_all: no such article, or no "
        "views recorded for it since 2015-07-01 (The date(s) you used are valid, but we either "
        "do not have data for those date(s), or the project you asked for is not loaded yet.)"
    ]
    assert snapshot(home / "data") == {}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            b'{"items": [{"timestamp": "2020010100", "views": -5}]}',
            "negative views on 2020-01-01 (-5)",
        ),
        (
            b'{"items": [{"timestamp": "2020010100", "views": "many"}]}',
            "views on 2020-01-01 are not a number ('many')",
        ),
        (
            b'{"items": [{"timestamp": "yesterday", "views": 5}]}',
            "malformed answer (an item's timestamp is 'yesterday')",
        ),
        (b'{"itemz": []}', "malformed answer (no list of items)"),
        (
            b'{"items": [{"timestamp": "20200101',
            "malformed JSON in the answer (HTTP 200, 34 bytes: Unterminated string starting "
            "at, byte 25); nothing was written",
        ),
    ],
)
def test_a_bad_answer_is_one_line_and_leaves_the_store(apis, cli, home, body, problem):
    apis.articles[ARTICLE] = daily_views("2019-01-01", "2019-12-31", seed=3)
    assert cli("pull", "wikipedia", ARTICLE).exit_code == 0
    data = snapshot(home / "data")
    apis.fault("/wikimedia", Fault(200, body))
    result = cli("pull")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"viewcast: error: wikipedia en.wikipedia/{ARTICLE}: {problem}")
    assert snapshot(home / "data") == data


def test_a_source_that_stays_down_exits_5_and_one_that_recovers_lands(apis, cli, home, monkeypatch):
    apis.articles[ARTICLE] = daily_views("2019-01-01", "2019-12-31", seed=4)
    monkeypatch.setenv("VIEWCAST_PULL_RETRIES", "2")
    apis.fault("/wikimedia", *[Fault(500)] * 3)
    down = cli("pull", "wikipedia", ARTICLE)
    assert down.exit_code == 5
    assert down.stderr.strip() == (
        f"viewcast: error: wikipedia en.wikipedia/{ARTICLE}: HTTP 500 Internal Server Error "
        "(3 tries); nothing was written"
    )
    assert snapshot(home / "data") == {}, "no store, no registered source"
    apis.fault("/wikimedia", Fault(429, b"", {"Retry-After": "0"}), Fault(502))
    back = cli("pull", "wikipedia", ARTICLE)
    assert back.exit_code == 0, back.output
    assert len(stored(home)) == 365

    # a store and a registry exist: a source down on the next pull leaves both as they were
    apis.articles[ARTICLE] |= daily_views("2020-01-01", "2020-01-05", seed=5)
    data = snapshot(home / "data")
    apis.fault("/wikimedia", *[Fault(500)] * 3)
    assert cli("pull").exit_code == 5
    assert snapshot(home / "data") == data
    assert cli("pull").exit_code == 0 and len(stored(home)) == 370


def test_one_series_per_article_and_names_never_collide(apis, cli, home):
    apis.articles["Alpha"] = daily_views("2019-01-01", "2019-06-30", seed=5)
    apis.articles["Beta"] = daily_views("2019-01-01", "2019-06-30", seed=6)
    assert cli("pull", "wikipedia", "Alpha", "Beta").exit_code == 0
    assert list(Store(Paths(home)).read_manifest()["series"]) == ["Alpha", "Beta"]
    clash = cli("pull", "wikipedia", "Gamma", "--name", "Alpha")
    assert clash.exit_code == 2 and "series 'Alpha' is already filled by wikipedia" in clash.stderr
    two = cli("pull", "wikipedia", "Alpha", "Beta", "--name", "x")
    assert two.exit_code == 2 and "--name names one article's series" in two.stderr


def _yesterday() -> str:
    from pipeline.jobs.pull import yesterday

    return str(np.datetime64(yesterday(), "D")).replace("-", "")
