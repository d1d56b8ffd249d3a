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


def _by_suffix(stored: set[str]) -> dict[str, list[str]]:
    """Stored series by what follows their first '/' ('' for a name without one): the series a
    file-named id `<stem><suffix>` could be under another prefix, found at once (a Kaggle store
    holds 145k names)."""
    found: dict[str, list[str]] = {}
    for name in stored:
        cut = name.find("/")
        found.setdefault(name[cut:] if cut >= 0 else "", []).append(name)
    return found


def _prefixes_fitting(by_suffix: dict[str, list[str]], suffixes: set[str]) -> list[str]:
    """Stored prefixes p for which some p + suffix is a stored series ('' suffix: p itself)."""
    return sorted({n[: len(n) - len(x)] for x in suffixes for n in by_suffix.get(x, [])})


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
        fits = _prefixes_fitting(_by_suffix(stored), {n[len(path.stem) :] for n in ids})
        hint = f"pass --name {fits[0]!r}" if len(fits) == 1 else "pass --name with the stored name"
        raise ViewcastError(
            f"{path}: none of its {len(ids)} series is in the store (named after the file: "
            f"{ids[0]!r}); {hint} to add its days to the stored series, or `viewcast ingest` it "
            "to start new ones"
        )


def repeats_stored(
    ws: Paths, files: Sequence[tuple[Path, str | None]], batches: Sequence[Observations]
) -> None:
    """Any ingest (`ingest`, `run`, `daily`): a new series named after its file (no --name)
    whose views equal a stored series' of the same value under another name on every one of at
    least MIN_SHARED_DAYS shared observed days (not all one number: silent series look alike)
    is the same export under another file name, and is refused. A new channel's export shares
    no such run of days with the stored ones, and goes in; a name given is the user's choice.
    Only the dev days are compared (the sealed test days stay unread)."""
    store, stored = _stored(ws)
    if not stored:
        return
    dev, by_suffix = None, _by_suffix(stored)
    for (path, name), batch in zip(files, batches, strict=True):
        ids = _file_named(path, name, batch)
        if name is not None or ids is None:  # a name given is the user's own choice
            continue
        for code, new in enumerate(ids):
            suffix = new[len(path.stem) :]
            twins = [t for t in by_suffix.get(suffix, []) if t != new]
            if new in stored or not twins:
                continue
            dev = _Dev(store.read_dev()) if dev is None else dev
            mine = batch.code == code
            found = dev.repeated(twins, batch.day[mine], batch.views[mine])
            if found is not None:
                twin, shared = found
                raise ViewcastError(
                    f"{path}: its series {new!r} repeats the stored {twin!r} day for day "
                    f"({shared} days compared: the same export under another file name); "
                    f"give --name {twin[: len(twin) - len(suffix)]!r} to add its days to the "
                    "stored series, or drop the stored one first"
                )


class _Dev:
    """The stored dev days, indexed once for the comparisons of one ingest."""

    SLICES = 64  # twins compared through their row ranges; more through one pass over the rows

    def __init__(self, table) -> None:
        self.table = table
        self.index = {str(n): i for i, n in enumerate(table.names)}
        self.starts, self.ends = table.bounds()

    def repeated(self, twins: list[str], day: np.ndarray, views: np.ndarray):
        """(twin, days compared) for the first twin whose observed dev days agree with
        (day, views) on at least MIN_SHARED_DAYS days, not all one number; else None."""
        t = self.table
        codes = np.array(sorted(self.index[n] for n in twins if n in self.index), np.int64)
        if not len(codes):
            return None  # twins of the sealed days only (too short to split)
        if len(codes) <= self.SLICES:
            rows = np.concatenate([np.arange(self.starts[c], self.ends[c]) for c in codes])
        else:
            rows = np.flatnonzero(np.isin(t.code, codes))
        order = np.argsort(day)
        day, views = day[order], views[order]
        at = np.minimum(np.searchsorted(day, t.day[rows]), len(day) - 1)
        shared = (day[at] == t.day[rows]) & ~t.imputed[rows]
        same = shared & (views[at] == t.views[rows])
        size = len(t.names)
        n_shared = np.bincount(t.code[rows][shared], minlength=size)
        n_same = np.bincount(t.code[rows][same], minlength=size)
        for c in codes:
            if n_shared[c] < MIN_SHARED_DAYS or n_same[c] != n_shared[c]:
                continue
            mine = rows[(t.code[rows] == c) & shared]
            if np.ptp(t.views[mine]) > 0:  # silent series are alike everywhere
                return str(t.names[c]), int(n_shared[c])
        return None
