"""The on-disk store: a complete daily table per series, split by time, written atomically.

Layout (under ``<home>/data/store``)::

    CURRENT                     the name of the live generation, replaced atomically (rename)
    gen-000007/dev.parquet      training + validation days: the only rows features/training can open
    gen-000007/sealed.parquet   test days (and any after them): opened only by ingest and scoring
    gen-000007/splits.json      the split boundaries, fixed when a series is first long enough
    gen-000007/manifest.json    the fill rule and per-series counts, for `viewcast status`

A write builds a whole new generation folder and then swaps CURRENT, so a crash or a refused file
leaves the store exactly as it was; an ingest that changes nothing writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.data.atomic import write_text
from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import Observations
from pipeline.data.lock import workspace_lock
from pipeline.data.table import (
    ViewsTable,
    _damaged_ok,
    _day,
    _iso,
    _read_table,
    _write_table,
    concat,
    diff,
    merge,
)
from pipeline.data.workspace import DEFAULT_TEST_DAYS, DEFAULT_VAL_DAYS, Paths

DEV_FILE, SEALED_FILE, SPLITS_FILE, MANIFEST_FILE = (
    "dev.parquet",
    "sealed.parquet",
    "splits.json",
    "manifest.json",
)


@dataclass(frozen=True)
class SeriesSplit:
    """Day numbers (days since 1970-01-01) where each period of one series starts or ends."""

    val_start: int
    test_start: int
    private_start: int
    test_end: int


@dataclass(frozen=True)
class Splits:
    """Kaggle-style time splits, per series: train < val < test (public, then private)."""

    test_days: int = DEFAULT_TEST_DAYS
    val_days: int = DEFAULT_VAL_DAYS
    series: dict[str, SeriesSplit] = field(default_factory=dict)

    def test_start(self, names: np.ndarray) -> np.ndarray:
        """First test day of each named series; unsplit series are sealed whole (min int)."""
        lo = np.iinfo(np.int32).min
        return np.array(
            [self.series[n].test_start if n in self.series else lo for n in names], np.int64
        )

    def to_json(self) -> str:
        payload = {
            "test_days": self.test_days,
            "val_days": self.val_days,
            "series": {
                name: {k: _iso(v) for k, v in asdict(s).items()}
                for name, s in sorted(self.series.items())
            },
        }
        return json.dumps(payload, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Splits:
        payload = json.loads(text)
        series = {
            name: SeriesSplit(**{k: _day(v) for k, v in bounds.items()})
            for name, bounds in payload["series"].items()
        }
        return cls(payload["test_days"], payload["val_days"], series)


@dataclass(frozen=True)
class IngestReport:
    """What one ingest changed, per series."""

    added: dict[str, int]
    updated: dict[str, int]
    imputed: dict[str, int]
    newly_split: list[str]
    unsplit: list[str]
    changed: bool
    kept_splits: tuple[int, int] | None = None  # (test, val) days kept over other options


# --- pure table operations --------------------------------------------------------------------


def fix_splits(table: ViewsTable, splits: Splits) -> tuple[Splits, list[str], list[str]]:
    """Give boundaries to series long enough for them; boundaries already fixed never move."""
    series = dict(splits.series)
    newly, unsplit = [], []
    starts, ends = table.bounds()
    for i, name in enumerate(table.names):
        if name in series or starts[i] == ends[i]:
            continue
        first, last = int(table.day[starts[i]]), int(table.day[ends[i] - 1])
        if last - first + 1 <= splits.test_days + splits.val_days:
            unsplit.append(name)
            continue
        test_start = last - splits.test_days + 1
        series[name] = SeriesSplit(
            val_start=test_start - splits.val_days,
            test_start=test_start,
            private_start=test_start + (splits.test_days + 1) // 2,
            test_end=last,
        )
        newly.append(name)
    return Splits(splits.test_days, splits.val_days, series), newly, unsplit


# --- the store on disk ------------------------------------------------------------------------


class Store:
    """The workspace's views store. Training-side code calls only `read_dev` and `read_splits`."""

    def __init__(self, ws: Paths) -> None:
        self.ws = ws
        self.root = ws.store

    def generation(self) -> Path | None:
        """The live generation folder, or None before the first ingest."""
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        name = pointer.read_text(errors="replace").strip()
        if not (name.startswith("gen-") and (self.root / name).is_dir()):
            raise ViewcastError(
                f"{pointer}: names {name[:40]!r}, which is not a generation here; "
                "run `viewcast check`"
            )
        return self.root / name

    def require(self) -> Path:
        gen = self.generation()
        if gen is None:
            raise ViewcastError(f"no data in {self.root}: run `viewcast ingest FILE` first")
        return gen

    def read_dev(self) -> ViewsTable:
        """Training and validation days of every split series; never a test day."""
        return _read_table(self.require() / DEV_FILE)

    def dev_days(self) -> int:
        """How many dev days the store holds (read from the file's footer, not its data)."""

        def rows(path: Path) -> int:
            with pq.ParquetFile(path) as parquet:
                return parquet.metadata.num_rows

        return _damaged_ok(self.require() / DEV_FILE, rows)  # a damaged file: one line

    def read_sealed(self) -> ViewsTable:
        """Test days and later. Only ingest (to merge) and the scoring path may call this."""
        return _read_table(self.require() / SEALED_FILE)

    def read_all(self) -> ViewsTable:
        """Every day, dev and sealed together: for scoring, and for refit and forecasts, which
        come after the test is finalized or only predict days after the data."""
        return concat(self.read_dev(), self.read_sealed())

    def read_splits(self) -> Splits:
        gen = self.generation()
        if gen is None:
            return Splits()
        return _damaged_ok(gen / SPLITS_FILE, lambda p: Splits.from_json(p.read_text()))

    def read_manifest(self) -> dict:
        return _damaged_ok(self.require() / MANIFEST_FILE, lambda p: json.loads(p.read_text()))

    def ingest(
        self,
        batches: Sequence[Observations],
        fill: str = "linear",
        test_days: int = DEFAULT_TEST_DAYS,
        val_days: int = DEFAULT_VAL_DAYS,
    ) -> IngestReport:
        """Merge validated observations; write a new generation only if anything changed.
        `test_days`/`val_days` fix the splits of a new store; an existing one keeps its own
        (the report's `kept_splits` says so when they differ)."""
        if test_days < 2 or val_days < 1:
            raise ViewcastError("--test-days must be at least 2 and --val-days at least 1")
        with workspace_lock(self.ws):  # one writer: two ingests at once would lose one's data
            return self._ingest(batches, fill, test_days, val_days)

    def _ingest(self, batches, fill: str, test_days: int, val_days: int) -> IngestReport:
        gen = self.generation()
        old = concat(self.read_dev(), self.read_sealed()) if gen is not None else None
        splits = self.read_splits() if gen is not None else Splits(test_days, val_days)
        old_fill = self.read_manifest()["fill"] if gen is not None else fill
        table = merge(old, batches, fill)
        splits, newly, unsplit = fix_splits(table, splits)
        added, updated = diff(old, table)
        imputed = np.bincount(table.code[table.imputed], minlength=len(table.names))
        added = {k: v for k, v in added.items() if v}
        updated = {k: v for k, v in updated.items() if v}
        changed = old is None or bool(added or updated or newly) or fill != old_fill
        kept = gen is not None and (splits.test_days, splits.val_days) != (test_days, val_days)
        report = IngestReport(
            added=added,
            updated=updated,
            imputed={str(n): int(c) for n, c in zip(table.names, imputed, strict=True) if c},
            newly_split=newly,
            unsplit=unsplit,
            changed=changed,
            kept_splits=(splits.test_days, splits.val_days) if kept else None,
        )
        if changed:
            self._write(table, splits, fill)
        return report

    def require_series(self, names: Sequence[str]) -> set[str]:
        """The names, each a stored series; the first unknown one is a one-line error."""
        unknown = sorted(set(names) - set(self.read_manifest()["series"]))
        if unknown:
            raise ViewcastError(
                f"no series {unknown[0]!r} in the store (`viewcast status` lists them)"
            )
        return set(names)

    def drop(self, names: Sequence[str]) -> list[str]:
        """Take series out of the store in one new generation (atomic: a crash leaves the old
        one); the series left. An unknown name is refused before anything is written."""
        with workspace_lock(self.ws):
            manifest, gone = self.read_manifest(), self.require_series(names)
            table = concat(self.read_dev(), self.read_sealed())
            rows = ~np.isin(table.names.astype(str), list(gone))[table.code]
            splits = self.read_splits()
            kept = {k: v for k, v in splits.series.items() if k not in gone}
            left = Splits(splits.test_days, splits.val_days, kept)
            self._write(table.take(rows), left, manifest["fill"])
            return sorted(set(manifest["series"]) - gone)

    def _write(self, table: ViewsTable, splits: Splits, fill: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._drop_orphans()
        sealed = table.day >= splits.test_start(table.names)[table.code]
        manifest = {"fill": fill, "series": _series_summary(table, splits)}
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=self.root))
        tmp.chmod(0o755)
        try:
            _write_table(table.take(~sealed), tmp / DEV_FILE)
            _write_table(table.take(sealed), tmp / SEALED_FILE)
            write_text(tmp / SPLITS_FILE, splits.to_json())
            manifest["checksums"] = {  # `viewcast check` verifies them
                name: hashlib.sha256((tmp / name).read_bytes()).hexdigest()
                for name in (DEV_FILE, SEALED_FILE, SPLITS_FILE)
            }
            write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1, ensure_ascii=False))
            current = self.generation()
            number = int(current.name.split("-")[1]) + 1 if current is not None else 1
            final = self.root / f"gen-{number:06d}"
            os.replace(tmp, final)
            fsync_dir(self.root)  # the new generation is on disk before CURRENT names it
            write_text(self.root / "CURRENT", final.name)  # the commit point
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for stale in self.root.glob("*gen-*"):  # older generations and crashed leftovers
            if stale.name != final.name:
                shutil.rmtree(stale, ignore_errors=True)

    def _drop_orphans(self) -> None:
        """Remove what a crashed write left (a temp folder, or a generation renamed into place
        that CURRENT never named): the writer holds the lock, so no one else is writing."""
        current = self.generation()
        for stale in self.root.glob("*gen-*"):
            if current is None or stale.name != current.name:
                shutil.rmtree(stale, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _series_summary(table: ViewsTable, splits: Splits) -> dict[str, dict]:
    starts, ends = table.bounds()
    summary = {}
    for i, name in enumerate(table.names):
        if starts[i] == ends[i]:
            continue
        split = splits.series.get(name)
        summary[str(name)] = {
            "first": _iso(int(table.day[starts[i]])),
            "last": _iso(int(table.day[ends[i] - 1])),
            "days": int(ends[i] - starts[i]),
            "imputed": int(table.imputed[starts[i] : ends[i]].sum()),
            "val_start": _iso(split.val_start) if split else None,
            "test_start": _iso(split.test_start) if split else None,
            "private_start": _iso(split.private_start) if split else None,
            "test_end": _iso(split.test_end) if split else None,
        }
    return summary
