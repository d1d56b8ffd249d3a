"""GET a JSON answer from a source, the way a polite client does: a descriptive User-Agent, a
timeout, retries with exponential backoff and full jitter on 429 and 5xx (Retry-After honoured),
proxies from the usual environment variables (requests reads HTTP(S)_PROXY and NO_PROXY).

What is not a fault of the network (404, 401, 403, another 4xx) comes back to the caller, who
knows what it means for its API. Headers (a bearer token) never appear in an error message.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from pipeline.data.errors import SourceDownError, ViewcastError

CONTACT_ENV = "VIEWCAST_CONTACT"  # an email or URL: Wikimedia asks every client for one
RETRIES_ENV = "VIEWCAST_PULL_RETRIES"
BACKOFF_ENV = "VIEWCAST_PULL_BACKOFF"
TIMEOUT_ENV = "VIEWCAST_PULL_TIMEOUT"
RETRIED = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 120.0  # seconds: a longer Retry-After is capped (the timer has a day, not a week)


def user_agent(contact: str | None = None) -> str:
    """`viewcast/<version> (<contact>) python-requests/<version>`, as Wikimedia's User-Agent
    policy asks: a name, a version and a way to reach whoever runs it."""
    try:
        mine = version("viewcast")
    except PackageNotFoundError:  # a source checkout that was never installed
        mine = "0"
    who = contact or os.environ.get(CONTACT_ENV) or f"no contact given: set {CONTACT_ENV}"
    return f"viewcast/{mine} ({who}) python-requests/{version('requests')}"


@dataclass(frozen=True)
class Answer:
    """A source's answer that was not a network fault: its status and, when it had one, its JSON."""

    status: int
    body: object | None


@dataclass(frozen=True)
class Client:
    """One source's HTTP settings; `sleep` and `rng` are the clock and the jitter (tests pass
    their own)."""

    agent: str = field(default_factory=user_agent)
    timeout: float = 30.0
    retries: int = 4  # tries after the first: 5 in all
    backoff: float = 1.0  # the first wait's ceiling, doubled after each failure
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_env(cls, contact: str | None = None) -> Client:
        """Settings from $VIEWCAST_PULL_RETRIES, _BACKOFF (seconds), _TIMEOUT (seconds)."""
        env = os.environ
        return cls(
            agent=user_agent(contact),
            timeout=_number(env, TIMEOUT_ENV, 30.0),
            retries=int(_number(env, RETRIES_ENV, 4)),
            backoff=_number(env, BACKOFF_ENV, 1.0),
        )

    def get_json(
        self, url: str, what: str, params: dict | None = None, headers: dict | None = None
    ) -> Answer:
        """GET `url`; retry network faults, 429 and 5xx; SourceDownError once the retries are
        spent. `what` names the source in every message ("wikipedia en.wikipedia/Foo")."""
        # lazy: requests, only when `viewcast pull` fetches
        import requests

        sent = {"User-Agent": self.agent, "Accept": "application/json"} | (headers or {})
        problem = ""
        for attempt in range(self.retries + 1):
            wait = None
            try:
                response = requests.get(url, params=params, headers=sent, timeout=self.timeout)
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g} s"
            except requests.RequestException as err:
                problem = f"connection failed ({type(err).__name__})"
            else:
                if response.status_code not in RETRIED:
                    return Answer(response.status_code, _json(response, what))
                problem = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                wait = retry_after(response.headers.get("Retry-After"))
            if attempt < self.retries:
                self.sleep(wait if wait is not None else self.delay(attempt))
        tries = self.retries + 1
        raise SourceDownError(f"{what}: {problem} ({tries} tries); nothing was written")

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, backoff x 2^attempt], capped at MAX_WAIT."""
        return self.rng.uniform(0.0, min(MAX_WAIT, self.backoff * 2**attempt))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), capped; None if
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_WAIT)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), MAX_WAIT)


def _json(response, what: str) -> object | None:
    """The answer's JSON; None for an empty body; one line for anything that is not JSON."""
    text = response.content
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"{err.msg}, byte {err.pos}"
    except UnicodeDecodeError as err:
        problem = f"not UTF-8, byte {err.start}"
    raise ViewcastError(
        f"{what}: malformed JSON in the answer (HTTP {response.status_code}, {len(text):,} "
        f"bytes: {problem}); nothing was written"
    )


def _number(env, name: str, default: float) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ViewcastError(f"${name}={text!r}: not a number") from None
    if value < 0:
        raise ViewcastError(f"${name}={text!r}: must not be negative")
    return value
