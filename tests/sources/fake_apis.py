"""A real local HTTP server answering as Wikimedia's pageviews API, the YouTube Analytics API and
Google's OAuth token endpoint do (their documented JSON), with faults on demand. It also answers
as an HTTP proxy: a request for an absolute URL is served as if the proxy had forwarded it.

Documented formats:
- pageviews per-article: https://doc.wikimedia.org/generated-data-platform/aqs/analytics-api/
  reference/page-views.html ({"items": [{"project", "article", "granularity", "timestamp":
  "YYYYMMDD00", "access", "agent", "views"}]}; 404 {"type", "title": "Not found.", "detail"}).
- reports.query: https://developers.google.com/youtube/analytics/reference/reports/query
  ({"kind": "youtubeAnalytics#resultTable", "columnHeaders": [...], "rows": [[day, views]]}).
- the token endpoint: RFC 6749 sections 4.1.3, 5.1, 5.2 and 6 (invalid_grant on a revoked token).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

SCOPE = "https://www.googleapis.com/auth/yt-analytics.readonly"


@dataclass
class Fault:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a timeout)


@dataclass
class FakeApis:
    """The APIs' data and state; `faults[prefix]` are served first, one per request."""

    articles: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # title -> {YYYY-MM-DD: views}
    channel: dict[str, float] = field(default_factory=dict)  # {YYYY-MM-DD: views} of MINE
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    seen: list[dict] = field(default_factory=list)  # every request: method, path, query, headers
    issued: int = 0

    def fault(self, prefix: str, *faults: Fault) -> None:
        self.faults.setdefault(prefix, []).extend(faults)

    def requests_to(self, prefix: str) -> list[dict]:
        return [r for r in self.seen if r["path"].startswith(prefix)]

    def new_access_token(self) -> str:
        self.issued += 1
        token = f"ya29.fake-access-{self.issued}"
        self.access_tokens.add(token)
        return token

    # --- the APIs -------------------------------------------------------------------------------

    def pageviews(self, parts: list[str]) -> tuple[int, object]:
        # per-article/{project}/{access}/{agent}/{article}/daily/{start}/{end}
        project, access, agent, article, _, start, end = parts
        first, last = _day(start), _day(end)
        views = self.articles.get(unquote(article), {})
        items = [
            {
                "project": project,
                "article": unquote(article),
                "granularity": "daily",
                "timestamp": day.replace("-", "") + "00",
                "access": access,
                "agent": agent,
                "views": n,
            }
            for day, n in sorted(views.items())
            if first <= day <= last and n > 0  # a day with no views is not in the answer
        ]
        if not items:
            return 404, {
                "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
                "title": "Not found.",
                "method": "get",
                "detail": "The date(s) you used are valid, but we either do not have data for "
                "those date(s), or the project you asked for is not loaded yet.",
                "uri": "/analytics.wikimedia.org/v1/pageviews/per-article/...",
            }
        return 200, {"items": items}

    def reports(self, query: dict, headers) -> tuple[int, object]:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access_tokens:
            return 401, {
                "error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Invalid Credentials", "reason": "authError"}],
                    "status": "UNAUTHENTICATED",
                }
            }
        if query.get("ids") != ["channel==MINE"] or query.get("metrics") != ["views"]:
            return 400, {"error": {"code": 400, "message": f"Invalid query {query}"}}
        first, last = query["startDate"][0], query["endDate"][0]
        rows = [[d, v] for d, v in sorted(self.channel.items()) if first <= d <= last]
        body = {
            "kind": "youtubeAnalytics#resultTable",
            "columnHeaders": [
                {"name": "day", "columnType": "DIMENSION", "dataType": "STRING"},
                {"name": "views", "columnType": "METRIC", "dataType": "INTEGER"},
            ],
        }
        return 200, body | ({"rows": rows} if rows else {})

    def token(self, form: dict) -> tuple[int, object]:
        grant = form.get("grant_type", [""])[0]
        if grant == "refresh_token" and form.get("refresh_token", [""])[0] in self.refresh_tokens:
            return 200, self._tokens(refresh=None)
        if grant == "authorization_code" and form.get("code", [""])[0] in self.codes:
            self.codes.discard(form["code"][0])
            refresh = f"1//fake-refresh-{self.issued + 1}"
            self.refresh_tokens.add(refresh)
            return 200, self._tokens(refresh=refresh)
        return 400, {
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked.",
        }

    def _tokens(self, refresh: str | None) -> dict:
        out = {
            "access_token": self.new_access_token(),
            "expires_in": 3599,
            "scope": SCOPE,
            "token_type": "Bearer",
        }
        return out | ({"refresh_token": refresh} if refresh else {})


def _day(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"


def serve(apis: FakeApis) -> tuple[ThreadingHTTPServer, str]:
    """Start the server on a free port; (server, its root URL)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(parse_qs(self.rfile.read(length).decode()))

        def _answer(self, form: dict | None) -> None:
            url = urlparse(self.path)  # absolute when we are asked as a proxy
            apis.seen.append(
                {
                    "method": self.command,
                    "path": url.path,
                    "proxied": bool(url.netloc),
                    "host": url.netloc,
                    "query": parse_qs(url.query),
                    "headers": dict(self.headers),
                }
            )
            for prefix, queue in apis.faults.items():
                if url.path.startswith(prefix) and queue:
                    fault = queue.pop(0)
                    time.sleep(fault.delay)
                    return self._send(fault.status, fault.body, fault.headers)
            status, body = 404, {"error": "no such endpoint"}
            if url.path.startswith("/wikimedia/metrics/pageviews/per-article/"):
                parts = url.path.removeprefix("/wikimedia/metrics/pageviews/per-article/").split(
                    "/"
                )
                status, body = apis.pageviews(parts)
            elif url.path == "/youtube/reports":
                status, body = apis.reports(parse_qs(url.query), self.headers)
            elif url.path == "/token" and form is not None:
                status, body = apis.token(form)
            self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _send(self, status: int, body: bytes, headers: dict) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def daily_views(first: str, last: str, seed: int, zeros: float = 0.02) -> dict[str, int]:
    """A seeded series of daily views with a weekly rhythm and a few zero days."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64(first), np.datetime64(last) + 1)
    level = 800 * (1 + 0.3 * np.sin(2 * np.pi * np.arange(len(days)) / 7))
    views = rng.poisson(level).astype(int)
    views[rng.random(len(days)) < zeros] = 0
    return {str(d): int(v) for d, v in zip(days, views, strict=True)}
