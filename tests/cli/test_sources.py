"""The source commands' surface: help, choices, --base-url kept for the next pulls, the list."""

from __future__ import annotations

import json

from tests.sources.fake_apis import daily_views


def test_a_base_url_given_once_is_used_by_every_later_pull(apis, cli, monkeypatch):
    monkeypatch.delenv("VIEWCAST_WIKIMEDIA_URL")
    apis.articles["Foo"] = daily_views("2020-01-01", "2020-01-31", seed=1)
    first = cli("pull", "wikipedia", "Foo", "--base-url", f"{apis.root}/wikimedia/")
    assert first.exit_code == 0, first.output
    apis.articles["Foo"] |= daily_views("2020-02-01", "2020-02-03", seed=2)
    again = cli("pull")
    assert again.exit_code == 0 and len(apis.requests_to("/wikimedia")) == 2
    listed = cli("sources")
    assert "wikipedia en.wikipedia/Foo" in listed.output and "2020-02-03" in listed.output
    (source,) = json.loads(cli("sources", "--json").stdout)
    assert source["base_url"] == f"{apis.root}/wikimedia/"


def test_choices_and_help(cli):
    bad = cli("pull", "wikipedia", "Foo", "--access", "fax")
    assert bad.exit_code == 2 and "'fax' is not one of" in bad.stderr
    for args in (("pull", "--help"), ("auth", "youtube", "--help"), ("daily", "--help")):
        shown = cli(*args)
        assert shown.exit_code == 0
    assert (
        "wikipedia" in cli("pull", "--help").stdout
        and "--no-browser" in cli("auth", "youtube", "--help").stdout
    )
    assert "--pull" in cli("daily", "--help").stdout
    empty = cli("sources")
    assert empty.exit_code == 0
