"""Wikimedia's pageviews REST API: an article's daily views (per-article endpoint, no key).

GET {base}/metrics/pageviews/per-article/{project}/{access}/{agent}/{article}/daily/{start}/{end}
answers {"items": [{"article", "timestamp": "YYYYMMDD00", "views", ...}, ...]}. The API's habits,
which `fetch` follows:

- data start on 2015-07-01; a pageviews day is final once it is there (never revised);
- a day with no views is absent from the answer: inside the days answered it is a zero, not a gap;
- a range with no data at all is a 404: on an incremental pull, nothing new yet; on a first pull,
  no such article (or no views recorded for it);
- yesterday may not be loaded until later today: days after the last one answered are asked for
  again next time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlparse

import numpy as np

from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import Observations
from pipeline.sources.answers import day_number, iso, observations, views_value
from pipeline.sources.http import Client
from pipeline.sources.registry import Source

DEFAULT_BASE = "https://wikimedia.org/api/rest_v1"
BASE_ENV = "VIEWCAST_WIKIMEDIA_URL"
FIRST_DAY = "2015-07-01"  # the per-article endpoint's first day
Access = Literal["all-access", "desktop", "mobile-app", "mobile-web"]
Agent = Literal["all-agents", "user", "spider", "automated"]


@dataclass(frozen=True)
class Fetched:
    """What one pull brought: the observations and the last day that is final now."""

    observations: Observations
    final_through: int


def article_title(text: str, project: str) -> tuple[str, str]:
    """(project, title) from a title as a reader writes it ("R (programming language)") or an
    article's URL (https://de.m.wikipedia.org/wiki/K%C3%B6ln: the URL's project wins). Spaces
    become underscores; the first letter is capitalised, as MediaWiki does (not on Wiktionary)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        url = urlparse(text)
        host = url.hostname or ""
        parts = [p for p in host.removesuffix(".org").split(".") if p != "m"]
        if len(parts) < 2:
            raise ViewcastError(f"{text}: not a wiki article's URL (no project in {host!r})")
        project = ".".join(parts)
        if url.path.startswith("/wiki/"):
            text = unquote(url.path.removeprefix("/wiki/"))
        else:
            text = parse_qs(url.query).get("title", [""])[0]
    title = text.replace(" ", "_").strip("_")
    if not title:
        raise ViewcastError(f"{text!r}: no article title")
    if "wiktionary" not in project:
        title = title[0].upper() + title[1:]
    return project, title


def source(
    article: str,
    project: str = "en.wikipedia",
    access: Access = "all-access",
    agent: Agent = "user",
    name: str | None = None,
    base_url: str | None = None,
) -> Source:
    """The source of one article; its series is named after the title as in its URL
    ("R_(programming_language)") unless `name` says otherwise."""
    project, title = article_title(article, project)
    params = {"project": project, "access": access, "agent": agent, "article": title}
    return Source("wikipedia", name or title, params, base_url)


def fetch(client: Client, src: Source, until: int) -> Fetched | None:
    """The days after the source's last final day up to `until` (days since 1970-01-01); None
    when there is nothing new yet."""
    first_pull = src.final_through is None
    start = day_number(FIRST_DAY) if first_pull else day_number(src.final_through) + 1
    if start > until:
        return None
    p = src.params
    base = (src.base_url or os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")
    url = (
        f"{base}/metrics/pageviews/per-article/{p['project']}/{p['access']}/{p['agent']}/"
        f"{quote(p['article'], safe='')}/daily/{_stamp(start)}/{_stamp(until)}"
    )
    answer = client.get_json(url, src.label)
    if answer.status == 404:
        if not first_pull:
            return None
        raise ViewcastError(
            f"{src.label}: no such article, or no views recorded for it since {FIRST_DAY} "
            f"({_detail(answer.body) or 'HTTP 404'})"
        )
    if answer.status != 200:
        hint = "; Wikimedia refuses clients without a contact: set VIEWCAST_CONTACT" * (
            answer.status == 403
        )
        raise ViewcastError(
            f"{src.label}: refused (HTTP {answer.status}: {_detail(answer.body)}){hint}"
        )
    days, views = _items(answer.body, src.label)
    if not days:
        if not first_pull:
            return None
        raise ViewcastError(f"{src.label}: the answer holds no day")
    found = observations(src.name, days, views, src.label, start, until)
    last = int(found.day[-1])
    # absent days are zeros: from the first day asked (the first answered on a first pull)
    begin = int(found.day[0]) if first_pull else start
    every = np.arange(begin, last + 1, dtype=np.int32)
    full = np.zeros(len(every))
    full[found.day - begin] = found.views
    filled = Observations(found.names, np.zeros(len(every), np.int32), every, full, found.source)
    return Fetched(filled, last)


def _items(body: object, what: str) -> tuple[list[int], list[float]]:
    """Days and views of the answer's items; one line for any item that is off."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ViewcastError(f"{what}: malformed answer (no list of items)")
    days, views = [], []
    for item in items:
        stamp = item.get("timestamp") if isinstance(item, dict) else None
        try:
            day = day_number(stamp)
        except (AttributeError, TypeError, ValueError):
            raise ViewcastError(
                f"{what}: malformed answer (an item's timestamp is {stamp!r})"
            ) from None
        days.append(day)
        views.append(views_value(item.get("views"), what, iso(day)))
    return days, views


def _detail(body: object) -> str:
    """Wikimedia's error explanation ("detail", else "title"), one line."""
    if isinstance(body, dict):
        text = body.get("detail") or body.get("title") or ""
        return " ".join(str(text).split())[:200]
    return ""


def _stamp(day: int) -> str:
    return iso(day).replace("-", "")
