"""The YouTube Analytics API: a channel's daily views (reports.query, dimension day, metric views).

GET {base}/reports?ids=channel==MINE&startDate=...&endDate=...&metrics=views&dimensions=day
answers {"columnHeaders": [{"name": "day", ...}, {"name": "views", ...}], "rows": [["2024-01-31",
1234], ...]} ("rows" absent when there is no data). YouTube's last days are provisional: the
last PROVISIONAL_DAYS answered are asked for again by the next pull, and the newer value
replaces the older (recorded as a revision); days before them are final and never asked again.
"""

from __future__ import annotations

import os

from pipeline.data.errors import AuthError, ViewcastError
from pipeline.data.ingest import FIRST_DAY
from pipeline.data.workspace import Paths
from pipeline.sources import oauth
from pipeline.sources.answers import day_number, iso, observations, views_value
from pipeline.sources.http import Client
from pipeline.sources.registry import Source
from pipeline.sources.wikipedia import Fetched

DEFAULT_BASE = "https://youtubeanalytics.googleapis.com/v2"
BASE_ENV = "VIEWCAST_YOUTUBE_URL"
PROVISIONAL_DAYS = 3


def source(channel: str = "MINE", name: str | None = None, base_url: str | None = None) -> Source:
    """The source of one channel (MINE: the channel of the authorised account, else its UC...
    id); its series is named `youtube-<channel>` unless `name` says otherwise."""
    channel = channel.strip()
    if not channel or "=" in channel or "," in channel:
        raise ViewcastError(f"{channel!r}: a channel is MINE or its id (UC...)")
    return Source("youtube", name or f"youtube-{channel.lower()}", {"channel": channel}, base_url)


def fetch(client: Client, src: Source, until: int, ws: Paths) -> Fetched | None:
    """The days from the first provisional one (all days on a first pull) up to `until`; None
    when the answer holds no day after the final ones."""
    first_pull = src.final_through is None
    start = day_number(FIRST_DAY) if first_pull else day_number(src.final_through) + 1
    if start > until:
        return None
    base = (src.base_url or os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")
    params = {
        "ids": f"channel=={src.params['channel']}",
        "startDate": iso(start),
        "endDate": iso(until),
        "metrics": "views",
        "dimensions": "day",
        "sort": "day",
    }
    creds = oauth.credentials(ws)
    answer = client.get_json(f"{base}/reports", src.label, params, _bearer(creds))
    if answer.status == 401:  # expired early, or revoked: one refresh, then the verdict
        oauth.refresh(ws, creds)
        answer = client.get_json(f"{base}/reports", src.label, params, _bearer(creds))
    if answer.status in (401, 403):
        raise AuthError(
            f"{src.label}: refused (HTTP {answer.status}: {_message(answer.body)}); run "
            "`viewcast auth youtube --client-secrets FILE` again (with the channel's account)"
        )
    if answer.status != 200:
        raise ViewcastError(f"{src.label}: refused (HTTP {answer.status}: {_message(answer.body)})")
    days, views = _rows(answer.body, src.label)
    if first_pull:  # the days before the channel's first view say nothing about it
        while views and views[0] == 0:
            days, views = days[1:], views[1:]
    if not days:
        if not first_pull:
            return None
        raise ViewcastError(f"{src.label}: no views in the answer (a new or empty channel?)")
    found = observations(src.name, days, views, src.label, start, until)
    last = int(found.day[-1])
    final = max(last - PROVISIONAL_DAYS, start - 1)
    return Fetched(found, final)


def _bearer(creds) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.token}"}


def _rows(body: object, what: str) -> tuple[list[int], list[float]]:
    """Days and views from a reports.query answer (columns found by name)."""
    if not isinstance(body, dict) or not isinstance(body.get("columnHeaders"), list):
        raise ViewcastError(f"{what}: malformed answer (no columnHeaders)")
    names = [c.get("name") if isinstance(c, dict) else None for c in body["columnHeaders"]]
    if "day" not in names or "views" not in names:
        raise ViewcastError(f"{what}: malformed answer (columns {names}, not day and views)")
    at_day, at_views = names.index("day"), names.index("views")
    rows = body.get("rows") or []
    if not isinstance(rows, list):
        raise ViewcastError(f"{what}: malformed answer (rows is not a list)")
    days, views = [], []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(names):
            raise ViewcastError(f"{what}: malformed answer (a row {str(row)[:60]})")
        try:
            day = day_number(str(row[at_day]))
        except ValueError:
            raise ViewcastError(f"{what}: malformed answer (a day {row[at_day]!r})") from None
        days.append(day)
        views.append(views_value(row[at_views], what, iso(day)))
    return days, views


def _message(body: object) -> str:
    """Google's error message ({"error": {"code", "message", "errors"}}), one line."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return " ".join(str(body["error"].get("message", "")).split())[:200]
    return ""
