"""The HTTP client against a real local server: retries, backoff, Retry-After, timeouts,
malformed answers, proxies from the environment, the User-Agent."""

from __future__ import annotations

import random

import pytest

from pipeline.data.errors import SourceDownError, ViewcastError
from pipeline.sources.http import MAX_WAIT, Client, retry_after, user_agent
from tests.sources.fake_apis import Fault

WHAT = "wikipedia en.wikipedia/Test"
PAGE = "metrics/pageviews/per-article/en.wikipedia/all-access/user/Test"


def client(waits: list[float], **kw) -> Client:
    return Client(agent=user_agent("me@example.org"), sleep=waits.append, **kw)


def test_429_then_success_honours_retry_after(apis):
    apis.articles["Test"] = {"2020-01-01": 5}
    apis.fault("/wikimedia", Fault(429, b"{}", {"Retry-After": "7"}), Fault(503))
    waits: list[float] = []
    url = f"{apis.root}/wikimedia/{PAGE}/daily/20200101/20200102"
    answer = client(waits, backoff=0.5, rng=random.Random(0)).get_json(url, WHAT)
    assert answer.status == 200 and answer.body["items"][0]["views"] == 5
    assert waits[0] == 7.0, "Retry-After is honoured"
    assert 0.0 <= waits[1] <= 1.0, "then full jitter under backoff x 2^1"
    sent = apis.requests_to("/wikimedia")
    assert len(sent) == 3
    agent = sent[0]["headers"]["User-Agent"]
    assert agent.startswith("viewcast/") and "(me@example.org)" in agent


def test_500_every_time_is_source_down_after_the_retries(apis):
    apis.fault("/wikimedia", *[Fault(500)] * 3)
    waits: list[float] = []
    with pytest.raises(SourceDownError) as err:
        client(waits, retries=2).get_json(f"{apis.root}/wikimedia/x", WHAT)
    assert err.value.exit_code == 5
    assert (
        str(err.value) == f"{WHAT}: HTTP 500 Internal Server Error (3 tries); nothing was written"
    )
    assert len(apis.requests_to("/wikimedia")) == 3 and len(waits) == 2


def test_a_timeout_and_a_refused_connection_are_source_down(apis):
    apis.fault("/wikimedia", Fault(200, b"{}", delay=1.0))
    with pytest.raises(SourceDownError, match=r"no answer within 0\.2 s"):
        client([], retries=0, timeout=0.2).get_json(f"{apis.root}/wikimedia/x", WHAT)
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(SourceDownError, match=r"connection failed \(ConnectionError\) \(2 tries\)"):
        client([], retries=1).get_json(closed, WHAT)


def test_a_4xx_comes_back_to_the_caller_and_bad_json_is_one_line(apis):
    answer = client([]).get_json(f"{apis.root}/nowhere", WHAT)
    assert answer.status == 404 and answer.body == {"error": "no such endpoint"}
    apis.fault("/wikimedia", Fault(200, b'{"items": [{"timestamp": "2015'))
    with pytest.raises(ViewcastError) as err:
        client([]).get_json(f"{apis.root}/wikimedia/x", WHAT)
    assert type(err.value) is ViewcastError and err.value.exit_code == 2
    assert str(err.value).startswith(f"{WHAT}: malformed JSON in the answer (HTTP 200, 30 bytes")


def test_backoff_is_full_jitter_doubling_and_capped():
    c = Client(backoff=2.0, rng=random.Random(1))
    for attempt in range(10):
        ceiling = min(MAX_WAIT, 2.0 * 2**attempt)
        draws = [c.delay(attempt) for _ in range(200)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert max(draws) > 0.8 * ceiling, "the whole range is used"


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("12") == 12.0
    assert retry_after("100000") == MAX_WAIT
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_proxies_come_from_the_environment(apis, monkeypatch):
    """HTTP_PROXY names the local server: the request for another host goes through it."""
    apis.articles["Test"] = {"2020-01-01": 3}
    monkeypatch.setenv("HTTP_PROXY", apis.root)
    monkeypatch.setenv("NO_PROXY", "")
    url = f"http://wikimedia.invalid/wikimedia/{PAGE}/daily/20200101/20200101"
    answer = client([]).get_json(url, WHAT)
    assert answer.status == 200
    (seen,) = apis.requests_to("/wikimedia")
    assert seen["proxied"] and seen["host"] == "wikimedia.invalid"
