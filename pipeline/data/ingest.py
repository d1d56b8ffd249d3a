"""CSV exports -> validated observations (series, day, views), whatever the format.

Formats, detected from the header (or forced with ``fmt``):

- ``youtube-totals``: ``Date,Views`` (one series, named by ``series`` or the file name);
- ``youtube-chart``: ``Date,<dimension>,Views`` (one series per dimension value);
- ``long``: ``series_id`` (or ``channel``), ``date``, ``views``;
- ``kaggle-wide``: ``Page,<date1>,<date2>,...`` with empty cells for missing days;
- ``kaggle-long``: ``Page,date,value``.

A ``Total`` row is skipped; Studio's table of totals (no days) and weekly or monthly totals are
refused (:mod:`pipeline.data.studio`). Metric columns beside ``Views`` are ignored; empty views
cells are missing days (filled by the store, flagged). Else: :class:`InputError`, file and line.
"""

from __future__ import annotations

import csv
import io
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.data import studio
from pipeline.data.errors import InputError

Format = Literal["auto", "youtube-totals", "youtube-chart", "long", "kaggle-wide", "kaggle-long"]
FORMATS = get_args(Format)
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%b %d, %Y", "%Y/%m/%d")
_NUMBER = r"^[0-9]+(\.[0-9]*)?$"
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Observations:
    """Observed daily views of one or more series: parallel arrays, one entry per (series, day)."""

    names: np.ndarray  # unique series ids (str); `code` indexes into it
    code: np.ndarray  # int32
    day: np.ndarray  # int32, days since 1970-01-01
    views: np.ndarray  # float64, >= 0, no NaN
    source: str = ""

    def __len__(self) -> int:
        return len(self.day)

    def series_id(self) -> np.ndarray:
        """The series id of each observation."""
        return self.names[self.code]


MAX_BYTES = 4 * 2**30  # an export larger than this needs --max-bytes
MAX_LINE = 2**22  # bytes in a line: a Kaggle-wide header of MAX_COLUMNS dates is 1.1 MB
MAX_COLUMNS = 100_000  # a Kaggle-wide file of 50 years of days fits
MAX_VIEWS = 1e12  # views a day: more is a damaged or hostile file, not a channel
FIRST_DAY = "2005-01-01"  # YouTube's first year: an export's dates lie after it ...
DAYS_AHEAD = 366  # ... and at most a year after today (unless --allow-dates)
WIDE_DATES = ("1900-01-01", "2100-12-31")  # --allow-dates: still bounded, so memory is too


def date_bounds(allow_dates: bool = False) -> tuple[int, int]:
    """The first and last day (days since 1970-01-01) an export may hold."""
    if allow_dates:
        lo, hi = (np.datetime64(d, "D") for d in WIDE_DATES)
    else:
        lo, hi = np.datetime64(FIRST_DAY, "D"), np.datetime64("today", "D") + DAYS_AHEAD
    return int(lo.astype(np.int64)), int(hi.astype(np.int64))


def read_views(
    path: str | Path,
    series: str | None = None,
    fmt: str = "auto",
    allow_dates: bool = False,
    max_bytes: int = MAX_BYTES,
) -> Observations:
    """Read one export into validated observations; raise InputError on anything off."""
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    raw = _read_bytes(path, max_bytes)
    if fmt == "kaggle-wide" or (fmt == "auto" and _wide_header(_header(path, raw))):
        return _read_wide(path, raw, date_bounds(allow_dates))
    table = _parse_csv(path, raw)
    header = [name.strip() for name in table.column_names]
    lowered = studio.english([name.lower() for name in header])
    fmt = _detect(path, lowered, table) if fmt == "auto" else fmt
    if table.num_rows == 0:
        raise InputError(path, "no data rows below the header")
    reader = _youtube if fmt.startswith("youtube") else _long  # kaggle-wide was read above
    series_ids, days, views, rows = reader(path, raw, table, lowered, series)
    _check_bounds(path, days, date_bounds(allow_dates), lambda i: _line_of(raw, int(rows[i])))
    if (coarse := studio.not_daily(days)) is not None:
        raise InputError(path, coarse)
    return _assemble(path, raw, series_ids, days, views, rows)


# --- reading bytes and CSV --------------------------------------------------------------------


def _check_file(path: Path, max_bytes: int) -> None:
    """A regular file (not a device, a pipe or /dev/zero behind a link) of a bounded size."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(path, "is a folder, not a CSV file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "not a regular file (a device or a pipe?)")
    if info.st_size > max_bytes:
        raise InputError(
            path, f"{info.st_size:,} bytes, over the limit of {max_bytes:,} (--max-bytes raises it)"
        )


def _check_shape(path: Path, raw: bytes) -> None:
    """Bounded columns and lines, so a hostile file gets a clear line, not a parser's error."""
    header = raw.split(b"\n", 1)[0]
    if header.count(b",") + 1 > MAX_COLUMNS:
        columns = header.count(b",") + 1
        raise InputError(path, f"{columns:,} columns in the header (at most {MAX_COLUMNS:,})", 1)
    length, number = _longest_line(raw)
    if length > MAX_LINE:
        raise InputError(path, f"a line of {length:,} bytes (at most {MAX_LINE:,})", number)


def _longest_line(raw: bytes, chunk: int = 2**26) -> tuple[int, int]:
    """The longest line's length in bytes and its number, with NumPy in 64 MB chunks (fast on
    a 400 MB export, and bounded in memory)."""
    data = np.frombuffer(raw, np.uint8)
    longest, where, lines, previous = 0, 1, 0, -1  # previous: the last newline seen
    for lo in range(0, len(data), chunk):
        ends = np.flatnonzero(data[lo : lo + chunk] == 10) + lo
        bounds = np.concatenate([[previous], ends, [min(lo + chunk, len(data))]])
        lengths = np.diff(bounds) - 1
        lengths[-1] += 1  # the piece after the chunk's last newline has no newline in it yet
        i = int(np.argmax(lengths[:-1])) if len(ends) else -1
        if len(ends) and lengths[i] > longest:
            longest, where = int(lengths[i]), lines + i + 1
        lines += len(ends)
        previous = int(ends[-1]) if len(ends) else previous
    tail = len(data) - previous - 1  # the last line, without a newline after it
    if tail > longest:
        longest, where = tail, lines + 1
    return longest, where


def _read_bytes(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    _check_file(path, max_bytes)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a CSV file") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror}") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError(path, "UTF-16 text: save the export as a UTF-8 CSV file")
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    head = raw[:_SNIFF_BYTES]
    if not raw.strip():
        raise InputError(path, "empty file")
    if b"\x00" in head:
        raise InputError(path, "binary data, not a CSV file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            raise InputError(path, "not UTF-8 text (binary data?)") from None
    if head.lstrip()[:1] == b"<":
        raise InputError(path, "an HTML page, not a CSV export (did the download fail?)")
    _check_shape(path, raw)
    return raw


def _header(path: Path, raw: bytes) -> list[str]:
    """The header's column names, as the CSV reader splits them (two at least)."""
    end = raw.find(b"\n")  # not raw.split: that copies the rest of a file of gigabytes
    line = raw[: end if end >= 0 else len(raw)].decode("utf-8", errors="replace").rstrip("\r")
    names = next(csv.reader([line]), [])
    if len(names) < 2:  # Excel's "CSV" in many locales is ';'-separated (and 1.234 a thousand)
        sep = next((s for s in ";\t|" if s in line), None)
        hint = f" ({sep!r}-separated: save it as comma-separated CSV)" if sep else ""
        raise InputError(path, f"not a CSV export: the header has one column{hint}", line=1)
    return names


def _wide_header(names: list[str]) -> bool:
    lowered = [name.strip().lower() for name in names]
    return lowered[0] == "page" and "date" not in lowered


def _parse_csv(path: Path, raw: bytes) -> pa.Table:
    names = _header(path, raw)
    try:
        return pacsv.read_csv(
            io.BytesIO(raw),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as err:
        message = str(err).splitlines()[0].removeprefix("CSV parse error: ")
        raise InputError(path, f"malformed CSV: {message}", line=_ragged_line(raw)) from None


def _ragged_line(raw: bytes) -> int | None:
    """The first line whose field count differs from the header's (slow; error path only)."""
    text = io.StringIO(raw.decode("utf-8", errors="replace"), newline="")
    reader = csv.reader(text)
    width = len(next(reader))
    for fields in reader:
        if fields and len(fields) != width:
            return reader.line_num
    return None


def _line_of(raw: bytes, row: int) -> int:
    """The 1-based file line of data row `row` (blank lines are skipped by the reader)."""
    seen = -1
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if number == 1 or not line.strip(b"\r"):
            continue
        seen += 1
        if seen == row:
            return number
    return number


# --- format detection -------------------------------------------------------------------------


def _detect(path: Path, lowered: list[str], table: pa.Table) -> str:
    cols = set(lowered)
    if lowered[0] == "page" and "date" not in cols:
        return "kaggle-wide"
    if "page" in cols and "date" in cols:
        return "kaggle-long"
    if ({"series_id", "channel"} & cols) and "date" in cols:
        return "long"
    if "date" in cols and "views" in cols:
        return "youtube-chart" if _dimensions(table, lowered) else "youtube-totals"
    if table.num_rows and studio.is_table(lowered, str(table.column(0)[0].as_py())):
        raise InputError(path, studio.TABLE_HINT, line=2)
    missing = [name for name in ("date", "views") if name not in cols]
    raise InputError(
        path, f"no {' or '.join(missing)} column (header: {', '.join(table.column_names)})", line=1
    )


def _dimensions(table: pa.Table, lowered: list[str]) -> list[int]:
    """Columns beside Date and Views that name a series (not numeric metrics like watch time,
    nor the labels of a dimension whose id column is there: a video's title beside its id)."""
    labels = studio.label_columns(lowered)
    out = []
    for i, name in enumerate(lowered):
        if name in ("date", "views") or name in labels:
            continue
        values = pc.utf8_trim_whitespace(table.column(i))
        values = pc.replace_substring(values, ",", "")
        numeric = pc.or_(pc.equal(values, ""), pc.match_substring_regex(values, _NUMBER))
        if not pc.all(numeric).as_py():
            out.append(i)
    return out


def _column(path: Path, lowered: list[str], *names: str) -> int:
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise InputError(path, f"no {names[0]} column (header: {', '.join(lowered)})", line=1)


# --- the readers: each returns (series ids, days, views, data row numbers) ------------------


def _youtube(path: Path, raw: bytes, table: pa.Table, lowered: list[str], series: str | None):
    date_col = table.column(_column(path, lowered, "date"))
    keep = pc.invert(pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(date_col)), "total"))
    rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
    table = table.filter(keep)
    days = _parse_days(path, raw, table.column(_column(path, lowered, "date")), rows)
    views = _parse_views(path, raw, table.column(_column(path, lowered, "views")), rows)
    prefix = series or path.stem
    dims = _dimensions(table, lowered)
    if not dims:
        ids = pa.array([prefix] * table.num_rows, pa.string())
    else:
        parts = [pc.utf8_trim_whitespace(table.column(i)) for i in dims]
        ids = pc.binary_join_element_wise(pa.scalar(prefix), *parts, "/")
    return ids, days, views, rows


def _long(path: Path, raw: bytes, table: pa.Table, lowered: list[str], series: str | None):
    rows = np.arange(table.num_rows)
    ids = _series_ids(
        path, raw, table.column(_column(path, lowered, "series_id", "channel", "page"))
    )
    days = _parse_days(path, raw, table.column(_column(path, lowered, "date")), rows)
    views = _parse_views(path, raw, table.column(_column(path, lowered, "views", "value")), rows)
    return ids, days, views, rows


WIDE_BLOCK = 2**24  # bytes parsed at a time by the streaming wide reader (4x MAX_LINE: a line fits)


def _read_wide(path: Path, raw: bytes, bounds: tuple[int, int]) -> Observations:
    """A Kaggle-wide file (``Page,<date>,...``), streamed in blocks of about 16 MB: each block's
    cells are parsed at once into a (pages, days) float matrix, so no long table of 116M string
    cells or repeated page names is ever built (the competition's 145,063 x 803 file fits in a
    few GB). Pages and date columns are then sorted, which gives the (series, day) order."""
    raw_names = _header(path, raw)
    names = [name.strip() for name in raw_names]
    header = pa.array(names[1:], pa.string())
    days = _parse_days(path, raw, header, np.zeros(len(header), dtype=np.int64), line=1)
    _check_bounds(path, days, bounds, lambda i: 1)
    if (coarse := studio.not_daily(days)) is not None:  # the header's dates: before any row
        raise InputError(path, coarse, line=1)
    options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in raw_names}, strings_can_be_null=False
    )
    capacity = raw.count(b"\n") + 1  # data rows are at most the lines: fill one matrix in place
    matrix = np.empty((capacity, len(header)))
    ids, done = [], 0
    try:
        reader = pacsv.open_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(block_size=WIDE_BLOCK),
            convert_options=options,
        )
        for batch in reader:
            n = batch.num_rows
            cells = pa.chunked_array([batch.column(j) for j in range(1, batch.num_columns)])
            rows = np.tile(np.arange(done, done + n), len(header))
            matrix[done : done + n] = _parse_views(path, raw, cells, rows).reshape(-1, n).T
            ids.append(_series_ids(path, raw, batch.column(0), first_row=done))
            done += n
    except pa.ArrowInvalid as err:
        message = str(err).splitlines()[0].removeprefix("CSV parse error: ")
        raise InputError(path, f"malformed CSV: {message}", line=_ragged_line(raw)) from None
    if not done:
        raise InputError(path, "no data rows below the header")
    pages = np.concatenate([block.to_numpy(zero_copy_only=False) for block in ids]).astype(str)
    matrix = matrix[:done]
    if len(np.unique(pages)) < len(pages) or len(np.unique(days)) < len(days):
        # a page or a date twice: the general path checks that their values agree
        code = np.repeat(np.arange(done), len(days))
        ids_all = pa.array(pages[code])
        return _assemble(path, raw, ids_all, np.tile(days, done), matrix.reshape(-1), code)
    return _wide_observations(path, pages, days, matrix)


def _wide_observations(
    path: Path, pages: np.ndarray, days: np.ndarray, matrix: np.ndarray, chunk: int = 8192
) -> Observations:
    """(pages, days) views with NaN for empty cells -> observations sorted by (page, day),
    gathered a chunk of pages at a time (no second copy of the matrix)."""
    row_order, col_order = np.argsort(pages), np.argsort(days, kind="stable")
    counts = np.count_nonzero(~np.isnan(matrix), axis=1)[row_order]
    total = int(counts.sum())
    if not total:
        raise InputError(path, "no views in any row")
    code = np.repeat(np.arange(len(pages), dtype=np.int32), counts)
    day = np.empty(total, np.int32)
    views = np.empty(total)
    sorted_days, at = days[col_order].astype(np.int32), 0
    for lo in range(0, len(pages), chunk):
        block = matrix[row_order[lo : lo + chunk]][:, col_order]
        present = ~np.isnan(block)
        k = int(present.sum())
        day[at : at + k] = np.broadcast_to(sorted_days, block.shape)[present]
        views[at : at + k] = block[present]
        at += k
    return Observations(
        names=pages[row_order].astype(object), code=code, day=day, views=views, source=str(path)
    )


def _check_bounds(path: Path, days: np.ndarray, bounds: tuple[int, int], line_of) -> None:
    """Every day within the allowed dates, else one line naming the first one outside."""
    lo, hi = bounds
    outside = np.flatnonzero((days < lo) | (days > hi))
    if len(outside):
        day, first, last = (str(np.datetime64(int(d), "D")) for d in (days[outside[0]], lo, hi))
        raise InputError(
            path,
            f"date {day} outside {first}..{last} (--allow-dates widens it)",
            line=line_of(int(outside[0])),
        )


# --- parsing cells ----------------------------------------------------------------------------


def _series_ids(path: Path, raw: bytes, values: pa.Array, first_row: int = 0) -> pa.Array:
    """Trimmed series ids; an empty one raises (`first_row`: the data row of values[0])."""
    ids = pc.utf8_trim_whitespace(values)
    empty = np.flatnonzero(pc.equal(ids, "").to_numpy(zero_copy_only=False))
    if len(empty):
        raise InputError(path, "empty series id", line=_line_of(raw, first_row + int(empty[0])))
    return ids


def _parse_days(
    path: Path, raw: bytes, values: pa.Array, rows: np.ndarray, line: int | None = None
) -> np.ndarray:
    """Date cells -> int32 days since 1970-01-01; the first unparseable cell raises."""
    values = pc.utf8_trim_whitespace(values)
    parsed = None
    for fmt in DATE_FORMATS:
        attempt = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
        parsed = attempt if parsed is None else pc.coalesce(parsed, attempt)
        if parsed.null_count == 0:
            break
    if parsed.null_count:
        bad = int(np.flatnonzero(pc.is_null(parsed).to_numpy(zero_copy_only=False))[0])
        where = line if line is not None else _line_of(raw, int(rows[bad]))
        text = values[bad].as_py()
        problem = (
            "missing date" if text == "" else f"unparseable date {text!r} (expected YYYY-MM-DD)"
        )
        raise InputError(path, problem, line=where)
    seconds = pc.cast(pc.cast(parsed, pa.timestamp("s")), pa.int64()).to_numpy()
    return (seconds // 86400).astype(np.int32)


def _parse_views(path: Path, raw: bytes, values: pa.Array, rows: np.ndarray) -> np.ndarray:
    """Views cells -> float64 (NaN for empty cells: missing days); '1,200' reads as 1200."""
    values = pc.replace_substring(pc.utf8_trim_whitespace(values), ",", "")
    empty = pc.equal(values, "")
    ok = pc.or_(empty, pc.match_substring_regex(values, _NUMBER))
    if not pc.all(ok).as_py():
        bad = int(np.flatnonzero(pc.invert(ok).to_numpy(zero_copy_only=False))[0])
        text = values[bad].as_py()
        try:
            problem = f"negative views {text}" if float(text) < 0 else f"non-numeric views {text!r}"
        except ValueError:
            problem = f"non-numeric views {text!r}"
        raise InputError(path, problem, line=_line_of(raw, int(rows[bad])))
    numbers = pc.cast(pc.if_else(empty, None, values), pa.float64())
    out = numbers.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    huge = np.flatnonzero(~np.isnan(out) & ~(out <= MAX_VIEWS))  # inf too
    if len(huge):
        text = values[int(huge[0])].as_py()
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"
        raise InputError(
            path,
            f"views {shown} above the ceiling of {MAX_VIEWS:.0e} a day",
            line=_line_of(raw, int(rows[huge[0]])),
        )
    return out


# --- assembling -------------------------------------------------------------------------------


def _assemble(
    path: Path, raw: bytes, ids: pa.Array, days: np.ndarray, views: np.ndarray, rows: np.ndarray
) -> Observations:
    """Dictionary-encode ids, drop empty cells, sort, and refuse conflicting duplicates."""
    encoded = pc.dictionary_encode(ids)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    present = ~np.isnan(views)
    code, days, views, rows = code[present], days[present], views[present], rows[present]
    if len(views) == 0:
        raise InputError(path, "no views in any row")
    order = np.lexsort((days, code))
    code, days, views, rows = code[order], days[order], views[order], rows[order]
    same = (code[1:] == code[:-1]) & (days[1:] == days[:-1])
    if same.any():
        clash = np.flatnonzero(same & (views[1:] != views[:-1]))
        if len(clash):
            i = int(clash[0])
            date = np.datetime64(int(days[i]), "D")
            first, second = sorted((_line_of(raw, int(rows[i])), _line_of(raw, int(rows[i + 1]))))
            raise InputError(
                path,
                f"{date} is listed twice for series {names[code[i]]!r} with different views "
                f"({views[i]:g} and {views[i + 1]:g}, also on line {second})",
                line=first,
            )
        keep = np.concatenate([[True], ~same])
        code, days, views = code[keep], days[keep], views[keep]
    return Observations(names=names, code=code, day=days, views=views, source=str(path))
