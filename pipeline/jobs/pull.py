"""Pulling: fetch every source asked for (or registered), then write the store and the registry
once, under the workspace lock. A source that fails writes nothing of its own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.data.errors import ViewcastError
from pipeline.data.lock import workspace_lock
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.sources import oauth, registry, wikipedia, youtube
from pipeline.sources.http import Client
from pipeline.sources.registry import Revision

KEPT_REVISIONS = 1000  # per source: the newest are kept in data/sources.json


@dataclass(frozen=True)
class SourcePull:
    """One source's pull: what it brought and what it changed, or why it failed."""

    source: str  # its label: "wikipedia en.wikipedia/Foo"
    name: str  # the series it fills
    days: int = 0  # days in the answer (asked again: provisional ones included)
    last_day: str | None = None
    final_through: str | None = None
    revised: int = 0  # stored days whose views the answer changed
    nothing_new: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Pulled:
    """A pull: each source's outcome, the store's ingest report (None: nothing to write), and
    the first failure (the caller raises it after what succeeded is written)."""

    sources: list[SourcePull]
    report: object | None  # store.IngestReport
    failure: ViewcastError | None = None


def yesterday() -> int:
    """Yesterday in UTC (days since 1970-01-01): the last day an API may have."""
    today = dt.datetime.now(dt.UTC).date()
    return (today - dt.date(1970, 1, 1)).days - 1


def pull(
    ws: Paths,
    wanted: list | None = None,
    keep_going: bool = False,
    contact: str | None = None,
    client=None,
) -> Pulled:
    """Pull `wanted` sources (registering new ones), or every registered source. Every answer is
    fetched and checked before anything is written; then one store write and one registry
    write. Without `keep_going` the first failure is raised at once (nothing written); with it,
    the other sources are still pulled and the failure comes back in `Pulled.failure`.
    `contact` goes into the User-Agent (else $VIEWCAST_CONTACT)."""
    client = client or Client.from_env(contact)
    with workspace_lock(ws):
        known = registry.load(ws)
        if wanted is None:
            if not known:
                raise ViewcastError(
                    "no source registered: run `viewcast pull wikipedia ARTICLE` or "
                    "`viewcast pull youtube` first"
                )
            targets = known
        else:
            targets = []
            for source in wanted:
                known, source = registry.register(known, source)
                targets.append(source)
        outcomes, pulled, quiet, failure = [], [], [], None
        until = yesterday()
        for source in targets:
            try:
                fetched = _fetch(client, source, until, ws)
            except ViewcastError as err:
                if not keep_going:
                    raise
                failure = failure or err
                outcomes.append(SourcePull(source.label, source.name, error=str(err)))
            else:
                if fetched is None:
                    outcomes.append(SourcePull(source.label, source.name, nothing_new=True))
                    quiet.append(source)
                else:
                    pulled.append((source, fetched))
        batches = [fetched.observations for _, fetched in pulled]
        stored = _stored_views(Store(ws), {s.name for s, _ in pulled}) if batches else {}
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        states = list(quiet)
        for source, fetched in pulled:
            obs = fetched.observations
            revisions = _revisions(stored.get(source.name), obs, now)
            last, final = _iso(obs.day[-1]), _iso(fetched.final_through)
            kept = (*source.revisions, *revisions)[-KEPT_REVISIONS:]
            states.append(replace(source, last_day=last, final_through=final, revisions=kept))
            outcomes.append(
                SourcePull(source.label, source.name, len(obs), last, final, len(revisions))
            )
        report = Store(ws).ingest(batches) if batches else None
        # the registry after the store: a crash between the two re-asks days already stored,
        # which changes nothing (the same views), never the reverse
        for source in states:
            known = registry.updated(known, source)
        registry.save(ws, [s for s in known if _pulled(s, states)])
    order = {s.label: i for i, s in enumerate(targets)}
    outcomes.sort(key=lambda o: order.get(o.source, 0))
    return Pulled(outcomes, report, failure)


def _iso(day) -> str:
    return str(np.datetime64(int(day), "D"))


def _fetch(client, source, until: int, ws: Paths):
    if source.kind == "wikipedia":
        return wikipedia.fetch(client, source, until)
    return youtube.fetch(client, source, until, ws)


def _pulled(source, states) -> bool:
    """Keep a source in the registry once it has pulled something (a first pull that failed
    registers nothing)."""
    return source.final_through is not None or any(s.key == source.key for s in states)


def _stored_views(store, names: set[str]) -> dict[str, dict[int, float]]:
    """The named series' observed (not imputed) views by day, for spotting revisions (only
    those: a Kaggle-sized store holds 145k series)."""
    if store.generation() is None:
        return {}
    table = store.read_all()
    out: dict[str, dict[int, float]] = {}
    starts, ends = table.bounds()
    for i, name in enumerate(table.names):
        if str(name) not in names:
            continue
        rows = slice(starts[i], ends[i])
        seen = ~table.imputed[rows]
        out[str(name)] = dict(
            zip(table.day[rows][seen].tolist(), table.views[rows][seen].tolist(), strict=True)
        )
    return out


def _revisions(stored: dict[int, float] | None, obs, now: str) -> list:
    """Stored days the answer gives other views for: the newer value wins, recorded here."""
    if not stored:
        return []
    out = []
    for day, views in zip(obs.day.tolist(), obs.views.tolist(), strict=True):
        old = stored.get(day)
        if old is not None and old != views:
            out.append(Revision(_iso(day), old, views, now))
    return out


def authorize(ws: Paths, client_secrets: Path, browser: bool = True, ask=None) -> Path:
    """`viewcast auth youtube`: the OAuth flow; the token file's path (never its content)."""
    with workspace_lock(ws):
        return oauth.authorize(ws, client_secrets, browser, ask)


def sources(ws: Paths) -> list:
    """The registered sources (data/sources.json)."""
    return registry.load(ws)


def wikipedia_source(article: str, project: str, access: str, agent: str, name, base_url):
    return wikipedia.source(article, project, access, agent, name, base_url)


def youtube_source(channel: str, name, base_url):
    return youtube.source(channel, name, base_url)
