"""Series named after their file: the checks that keep a re-export, saved under another file name,
from starting a second copy of series the store holds.

A YouTube Studio export names its series after the file (`Totals`, `<file>/<value>`) unless
--name is given. The same channel exported again as `Totals (1).csv` (a browser's rename) or
`2022-11-01.csv` (a dated export job) would become new series beside the stored ones: the store
would hold each series twice, the sweep would train on both, and once the test is finalized
neither can be dropped without --force. Both checks run after the exports are read and before
anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import Observations
from pipeline.data.store import Store
from pipeline.data.workspace import Paths

MIN_SHARED_DAYS = 28  # days a new series and a stored one must share to be called the same


def _file_named(path: Path, name: str | None, batch: Observations) -> list[str] | None:
    """The batch's series ids when they are all named after `name` or the file, else None
    (formats whose ids come from the data: long, Kaggle)."""
    prefix = name or path.stem
    ids = [str(n) for n in batch.names]
    return ids if all(n == prefix or n.startswith(f"{prefix}/") for n in ids) else None


def _stored(ws: Paths) -> tuple[Store, set[str]]:
    store = Store(ws)
    if store.generation() is None:
        return store, set()
    return store, set(store.read_manifest()["series"])


def _prefixes_fitting(stored: set[str], suffixes: set[str]) -> list[str]:
    """Stored prefixes p for which some p + suffix is a stored series ('' suffix: p itself)."""
    prefixes = sorted({s.split("/")[0] for s in stored})
    return [p for p in prefixes if {p + x for x in suffixes} & stored]


def named_after_file(
    ws: Paths, files: Sequence[tuple[Path, str | None]], batches: Sequence[Observations]
) -> None:
    """For `daily`, which adds days to the stored series: an export without --name whose series
    are all named after the file and none of them stored, while the store holds others, is
    refused. `viewcast ingest` adds new series on purpose; an empty workspace takes anything."""
    _, stored = _stored(ws)
    if not stored:
        return
    for (path, name), batch in zip(files, batches, strict=True):
        ids = _file_named(path, name, batch)
        if name is not None or ids is None or stored & set(ids):
            continue
        fits = _prefixes_fitting(stored, {n[len(path.stem) :] for n in ids})
        hint = f"pass --name {fits[0]!r}" if len(fits) == 1 else "pass --name with the stored name"
        raise ViewcastError(
            f"{path}: none of its {len(ids)} series is in the store (named after the file: "
            f"{ids[0]!r}); {hint} to add its days to the stored series, or `viewcast ingest` it "
            "to start new ones"
        )


def repeats_stored(
    ws: Paths, files: Sequence[tuple[Path, str | None]], batches: Sequence[Observations]
) -> None:
    """Any ingest (`ingest`, `run`, `daily`): a new series named after its file whose views
    equal a stored series' of the same value under another name on every one of at least
    MIN_SHARED_DAYS shared observed days (not all one number: silent series look alike) is the
    same export under another file name, and is refused. A new channel's export shares no such
    run of days with the stored ones, and goes in."""
    store, stored = _stored(ws)
    if not stored:
        return
    table = None
    for (path, name), batch in zip(files, batches, strict=True):
        ids = _file_named(path, name, batch)
        prefix = name or path.stem
        if ids is None:
            continue
        for code, new in enumerate(ids):
            suffix = new[len(prefix) :]
            twins = [p + suffix for p in _prefixes_fitting(stored, {suffix}) if p + suffix != new]
            if new in stored or not twins:
                continue
            table = store.read_dev() if table is None else table
            mine = batch.code == code
            for twin in twins:
                shared = _shared_days(table, twin, batch.day[mine], batch.views[mine])
                if shared:
                    prefix_of_twin = twin[: len(twin) - len(suffix)] if suffix else twin
                    raise ViewcastError(
                        f"{path}: its series {new!r} repeats the stored {twin!r} day for day "
                        f"({shared} days compared: the same export under another file name); "
                        f"give --name {prefix_of_twin!r} to add its days to the stored series, "
                        "or drop the stored one first"
                    )


def _shared_days(table, twin: str, day: np.ndarray, views: np.ndarray) -> int:
    """Observed days `twin` shares with (day, views) when the views agree on all of them and
    there are at least MIN_SHARED_DAYS, not all equal; 0 otherwise."""
    at = np.searchsorted(table.names.astype(str), twin)
    if at >= len(table.names) or str(table.names[at]) != twin:
        return 0  # a series of the sealed days only (too short to split)
    starts, ends = table.bounds()
    rows = slice(starts[at], ends[at])
    stored_day, stored_views = table.day[rows], table.views[rows]
    observed = ~table.imputed[rows]
    common, mine, theirs = np.intersect1d(day, stored_day[observed], return_indices=True)
    if len(common) < MIN_SHARED_DAYS:
        return 0
    a, b = views[mine], stored_views[observed][theirs]
    if np.ptp(a) == 0 or not np.array_equal(a, b):
        return 0
    return len(common)
