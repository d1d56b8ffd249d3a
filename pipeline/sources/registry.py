"""The workspace's registered sources (data/sources.json): what each pulls into which series, the
last day it pulled and the last day that is final, and the revisions its provisional days got.

Written atomically, and only when something in it changed: pulling twice a day with nothing new
leaves the file (and the whole data/ folder) as it was.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from pipeline.data.atomic import write_text
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths

Kind = Literal["wikipedia", "youtube"]
KINDS = get_args(Kind)
FILE_VERSION = 1


@dataclass(frozen=True)
class Revision:
    """A provisional day re-pulled with other views: the newer value replaced the older."""

    day: str
    old: float
    new: float
    pulled: str  # UTC time of the pull, ISO 8601


@dataclass(frozen=True)
class Source:
    """One registered source: its kind, the series it fills and the API's parameters."""

    kind: Kind
    name: str  # the series id in the store
    params: dict[str, str]  # wikipedia: project, access, agent, article; youtube: channel
    base_url: str | None = None  # given with --base-url, kept for the next pulls
    last_day: str | None = None  # the last day pulled
    final_through: str | None = None  # days up to here are final: never asked for again
    revisions: tuple[Revision, ...] = field(default_factory=tuple)

    @property
    def key(self) -> tuple:
        """Two registrations of the same thing (kind and parameters) are one source."""
        return (self.kind, tuple(sorted(self.params.items())))

    @property
    def label(self) -> str:
        """How messages name it: `wikipedia en.wikipedia/Peyton_Manning`, `youtube MINE`."""
        if self.kind == "wikipedia":
            return f"wikipedia {self.params['project']}/{self.params['article']}"
        return f"youtube channel {self.params['channel']}"

    def to_json(self) -> dict:
        return asdict(self) | {"revisions": [asdict(r) for r in self.revisions]}

    @classmethod
    def from_json(cls, item: dict) -> Source:
        revisions = tuple(Revision(**r) for r in item.get("revisions", []))
        return cls(**(item | {"revisions": revisions}))


def load(ws: Paths) -> list[Source]:
    """The registered sources, in the order they were added ([] before the first pull)."""
    path = ws.sources
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != FILE_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, this viewcast reads {FILE_VERSION}")
        found = [Source.from_json(item) for item in raw["sources"]]
        bad = [s.kind for s in found if s.kind not in KINDS]
        if bad:
            raise ValueError(f"unknown kind {bad[0]!r}")
        return found
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ViewcastError(
            f"{path}: damaged ({err}); restore it or pull the sources again"
        ) from None


def save(ws: Paths, sources: list[Source]) -> bool:
    """Write the registry if it changed; whether it was written."""
    text = json.dumps(
        {"version": FILE_VERSION, "sources": [s.to_json() for s in sources]},
        indent=1,
        ensure_ascii=False,
    )
    path: Path = ws.sources
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


def register(known: list[Source], wanted: Source) -> tuple[list[Source], Source]:
    """`wanted` added to the registry, or the registered source it already is (its state kept;
    a new --base-url replaces the old). Another source filling the same series is refused."""
    for i, source in enumerate(known):
        if source.key == wanted.key:
            if wanted.name != source.name:
                raise ViewcastError(
                    f"{source.label} already fills series {source.name!r}; "
                    f"leave out --name or give {source.name!r}"
                )
            base = wanted.base_url or source.base_url
            updated = replace(source, base_url=base)
            return [*known[:i], updated, *known[i + 1 :]], updated
        if source.name == wanted.name:
            raise ViewcastError(
                f"series {wanted.name!r} is already filled by {source.label}; choose another --name"
            )
    return [*known, wanted], wanted


def updated(known: list[Source], source: Source) -> list[Source]:
    """The registry with `source` (matched by its key) replaced by this state."""
    return [source if s.key == source.key else s for s in known]
