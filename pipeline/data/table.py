"""The views table: one row per (series, day), merged, completed to a daily index, filled, and
read or written as Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.atomic import fsync
from pipeline.data.errors import ViewcastError, first_line
from pipeline.data.ingest import Observations

Fill = Literal["linear", "ffill", "zero"]  # missing days: interpolated, carried, or zero
FILL_RULES = get_args(Fill)


@dataclass(frozen=True)
class ViewsTable:
    """Daily views sorted by (series, day); `imputed` flags the days no export gave."""

    names: np.ndarray  # series ids (str), sorted; `code` indexes into it
    code: np.ndarray  # int32
    day: np.ndarray  # int32, days since 1970-01-01
    views: np.ndarray  # float64
    imputed: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.day)

    def take(self, mask: np.ndarray) -> ViewsTable:
        """The rows where `mask` holds, with the same series names."""
        return ViewsTable(
            self.names, self.code[mask], self.day[mask], self.views[mask], self.imputed[mask]
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Row offsets [start, end) of each series code (empty series have start == end)."""
        edges = np.searchsorted(self.code, np.arange(len(self.names) + 1))
        return edges[:-1], edges[1:]


def merge(
    old: ViewsTable | None, batches: Sequence[Observations], fill: str = "linear"
) -> ViewsTable:
    """Stored observed days + new exports (later wins) -> a complete, gap-filled daily table."""
    if fill not in FILL_RULES:
        raise ViewcastError(f"unknown fill rule {fill!r} (choose from {', '.join(FILL_RULES)})")
    parts = []
    if old is not None:
        observed = ~old.imputed
        parts.append((old.names, old.code[observed], old.day[observed], old.views[observed]))
    parts += [(b.names, b.code, b.day, b.views) for b in batches]
    if len(parts) == 1:  # one export into an empty store: already sorted and unique
        names, code, day, views = parts[0]
        text = names.astype(str)
        if np.all(text[:-1] < text[1:]):  # codes already in the store's (sorted-name) order
            return complete_daily(names, code.astype(np.int32), day.astype(np.int32), views, fill)
    names = np.unique(np.concatenate([p[0] for p in parts]).astype(str)).astype(object)
    code = np.concatenate([np.searchsorted(names, p[0].astype(str))[p[1]] for p in parts])
    day = np.concatenate([p[2] for p in parts]).astype(np.int32)
    views = np.concatenate([p[3] for p in parts]).astype(np.float64)
    priority = np.concatenate([np.full(len(p[2]), i, np.int32) for i, p in enumerate(parts)])
    # sort by (series, day, priority) and keep the last of each (series, day): newer exports win
    order = np.lexsort((priority, day, code))
    code, day, views = code[order].astype(np.int32), day[order], views[order]
    last = np.ones(len(day), bool)
    last[:-1] = (code[1:] != code[:-1]) | (day[1:] != day[:-1])
    code, day, views = code[last], day[last], views[last]
    return complete_daily(names, code, day, views, fill)


def complete_daily(
    names: np.ndarray, code: np.ndarray, day: np.ndarray, views: np.ndarray, fill: str
) -> ViewsTable:
    """Observed (series, day) rows sorted and unique -> one row per day from first to last."""
    present = np.unique(code)
    first = np.zeros(len(names), np.int64)
    last = np.full(len(names), -1, np.int64)
    starts = np.searchsorted(code, present)
    ends = np.searchsorted(code, present, side="right") - 1
    first[present], last[present] = day[starts], day[ends]
    lengths = last - first + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    full_code = np.repeat(np.arange(len(names), dtype=np.int32), lengths)
    # int32 arithmetic in place: a Kaggle-sized table (111M days) stays a few arrays big
    full_day = np.arange(total, dtype=np.int32)
    full_day += np.repeat((first - offsets[:-1]).astype(np.int32), lengths)
    full_views = np.full(total, np.nan)
    small = np.int32 if total < 2**31 else np.int64
    where = offsets[:-1].astype(small)[code]
    where += day
    where -= first.astype(small)[code]
    full_views[where] = views
    del where
    imputed = np.isnan(full_views)
    return ViewsTable(
        names, full_code, full_day, fill_gaps(full_views, fill, out=full_views), imputed
    )


def fill_gaps(values: np.ndarray, rule: str, out: np.ndarray | None = None) -> np.ndarray:
    """Fill NaN days: linear interpolation between neighbours, last value carried, or zero
    (into `out`, which may be `values` itself; a copy by default).

    Series are concatenated but each starts and ends on an observed day, so filling the whole
    array at once never mixes two series.
    """
    gaps = np.isnan(values)
    if not gaps.any():
        return values if out is None else out
    out = values.copy() if out is None else out
    if rule == "zero":
        out[gaps] = 0.0
        return out
    # the last observed position at or before each day (int32: 4 bytes a day)
    before = np.arange(len(values), dtype=np.int32)
    before[gaps] = 0
    np.maximum.accumulate(before, out=before)
    at = np.flatnonzero(gaps)
    prev = before[at]
    del before
    if rule == "ffill":
        out[at] = values[prev]
        return out
    after = np.arange(len(values), dtype=np.int32)  # the first observed position at or after
    after[gaps] = len(values) - 1
    after = np.minimum.accumulate(after[::-1])[::-1]
    nxt = after[at]
    del after
    lo, hi = values[prev], values[nxt]
    out[at] = lo + (hi - lo) * (at - prev) / (nxt - prev)
    return out


def diff(old: ViewsTable | None, new: ViewsTable) -> tuple[dict[str, int], dict[str, int]]:
    """Days added and days whose views (or imputed flag) changed, per series."""
    added = {str(n): 0 for n in new.names}
    updated = {str(n): 0 for n in new.names}
    if old is None:
        counts = np.bincount(new.code, minlength=len(new.names))
        return dict(zip(added, counts.tolist(), strict=True)), updated
    old_in_new = np.searchsorted(new.names, old.names.astype(str))[old.code]
    starts, _ = new.bounds()
    first = new.day[np.minimum(starts, len(new) - 1)]
    pos = starts[old_in_new] + old.day - first[old_in_new]
    changed = (new.views[pos] != old.views) | (new.imputed[pos] != old.imputed)
    was_there = np.zeros(len(new), bool)
    was_there[pos] = True
    add_counts = np.bincount(new.code[~was_there], minlength=len(new.names))
    upd_counts = np.bincount(old_in_new[changed], minlength=len(new.names))
    for i, name in enumerate(new.names):
        added[str(name)], updated[str(name)] = int(add_counts[i]), int(upd_counts[i])
    return added, updated


def concat(a: ViewsTable, b: ViewsTable) -> ViewsTable:
    """Two tables as one (series, day)-sorted table over the union of their series."""
    names = np.unique(np.concatenate([a.names, b.names]).astype(str)).astype(object)
    code_a, code_b = (np.searchsorted(names, t.names.astype(str))[t.code] for t in (a, b))
    count_a = np.bincount(code_a, minlength=len(names))
    count_b = np.bincount(code_b, minlength=len(names))
    in_a, in_b = count_a > 0, count_b > 0  # each table is sorted by (series, day)
    last_a = a.day[(np.cumsum(count_a) - 1)[in_a]]
    first_b = b.day[(np.cumsum(count_b) - count_b)[in_b]]
    both = in_a & in_b
    if np.all(last_a[both[in_a]] < first_b[both[in_b]]):
        # dev, then sealed: each series' days in `a` precede those in `b`, so every row's place
        # follows from the counts (linear time, no sort of 100M rows)
        return _interleave(names, (a, b), (code_a, code_b), (count_a, count_b))
    code = np.concatenate([code_a, code_b]).astype(np.int32)
    day = np.concatenate([a.day, b.day])
    order = np.lexsort((day, code))
    return ViewsTable(
        names,
        code[order],
        day[order],
        np.concatenate([a.views, b.views])[order],
        np.concatenate([a.imputed, b.imputed])[order],
    )


def _interleave(names, tables, codes, counts) -> ViewsTable:
    """Series by series, the rows of tables[0] then those of tables[1] (each sorted)."""
    total = counts[0] + counts[1]
    start = np.concatenate([[0], np.cumsum(total)[:-1]])  # each series' first row in the result
    size = int(total.sum())
    out_code = np.repeat(np.arange(len(names), dtype=np.int32), total)
    out = {
        "day": np.empty(size, np.int32),
        "views": np.empty(size, np.float64),
        "imputed": np.empty(size, bool),
    }
    skip = np.zeros(len(names), np.int64)  # rows of the series already placed
    for table, code, count in zip(tables, codes, counts, strict=True):
        own_start = np.concatenate([[0], np.cumsum(count)[:-1]])
        place = np.arange(len(code), dtype=np.int64)
        place += (start + skip - own_start)[code]
        for key, values in out.items():
            values[place] = getattr(table, key)
        skip += count
        del place
    return ViewsTable(names, out_code, out["day"], out["views"], out["imputed"])


def _write_table(table: ViewsTable, path: Path) -> None:
    used = np.unique(table.code)
    remap = np.full(len(table.names), -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    series = pa.DictionaryArray.from_arrays(
        pa.array(remap[table.code], pa.int32()), pa.array(table.names[used].astype(str))
    )
    arrow = pa.table(
        {
            "series_id": series,
            "date": pa.array(table.day, pa.int32()).cast(pa.date32()),
            "views": pa.array(table.views, pa.float64()),
            "imputed": pa.array(table.imputed, pa.bool_()),
        }
    )
    pq.write_table(arrow, path, compression="zstd")
    fsync(path)


def _damaged_ok(path: Path, read):
    """read(path), or one line naming a missing or damaged store file (no traceback)."""
    try:
        return read(path)
    except FileNotFoundError:
        raise ViewcastError(f"{path}: missing from the store; run `viewcast check`") from None
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as err:
        first = first_line(err)
        raise ViewcastError(f"{path}: damaged ({first}); run `viewcast check`") from None


def _read_table(path: Path) -> ViewsTable:
    return _damaged_ok(path, _parse_table)


def _parse_table(path: Path) -> ViewsTable:
    # ParquetFile, not pq.read_table: the latter goes through pyarrow.dataset, whose import
    # pulls in pandas (0.2 s of every command that reads the store, the daily forecast's too)
    with pq.ParquetFile(path, read_dictionary=["series_id"]) as parquet:
        arrow = parquet.read()
    dictionary, indices = _series_codes(arrow.column("series_id"))
    names = np.asarray(dictionary.to_pylist(), dtype=object)
    order = np.argsort(names.astype(str)) if len(names) else np.array([], np.int64)
    rank = np.empty(len(names), np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    code = rank[indices] if len(names) else np.array([])
    del indices
    columns = {}
    for name, kind in (("date", np.int32), ("views", np.float64), ("imputed", bool)):
        column = arrow.column(name)
        column = column.cast(pa.int32()) if name == "date" else column
        columns[name] = arrow_numpy(column).astype(kind, copy=False)
        arrow = arrow.drop_columns([name])  # each column's Arrow memory goes as soon as read
    del arrow
    pa.default_memory_pool().release_unused()  # and back to the system (Kaggle scale: GBs)
    return ViewsTable(names[order], code.astype(np.int32, copy=False), *columns.values())


def _series_codes(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The dictionary and every row's index into it. Each row group of a file this store wrote
    carries the same whole dictionary, so the indices are used as they are (unifying 781
    dictionaries of 145k pages took 11 s); other files are unified first."""
    if column.num_chunks == 0:
        return pa.array([], pa.string()), np.zeros(0, np.int32)
    first = column.chunk(0).dictionary
    if not all(chunk.dictionary.equals(first) for chunk in column.chunks):
        column = pa.table({"s": column}).unify_dictionaries().column("s")
        first = column.chunk(0).dictionary
    indices = np.concatenate([arrow_numpy(c.indices) for c in column.chunks])
    return first, indices


def arrow_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column's values as one NumPy array, without pandas: pyarrow's `to_numpy` imports pandas
    on its first call (0.2 s of every command that reads the store; `viewcast features` took
    0.80 s, now 0.52 s). DLPack hands over a null-free numeric chunk's buffer as it is
    (read-only), booleans through one byte each; chunks with nulls or other types go through
    `to_numpy`."""
    whole = column
    if isinstance(column, pa.ChunkedArray):  # one chunk as it is: no copy of a large column
        whole = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if whole.null_count == 0 and pa.types.is_boolean(whole.type):
        return np.from_dlpack(whole.cast(pa.uint8())).astype(bool)
    if whole.null_count == 0 and (
        pa.types.is_integer(whole.type) or pa.types.is_floating(whole.type)
    ):
        return np.from_dlpack(whole)
    return whole.to_numpy(zero_copy_only=False)


def _iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))
