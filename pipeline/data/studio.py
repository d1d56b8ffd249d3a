"""YouTube Studio's export files: which of them hold days, which columns only label a series.

An export from Studio's Advanced mode unzips to three CSV files: `Totals.csv` (one row a day),
`Chart data.csv` (one row a day and dimension value: a video, a country, a traffic source) and
`Table data.csv` (one row per dimension value over the whole period, under a `Total` row: no
days). The first two are series; the third is a summary that `ingest` leaves out of a set of files
(and refuses alone, saying which file to give instead). Studio's chart can also be shown, and
exported, by week or by month: such totals are refused, not spread over the days between them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

# a dimension described by more columns: `Content` (the video id) comes with the video's title and
# publish time; a title can change between two exports, the id does not (German: `Videos`)
LABELS = {
    "content": ("video title", "video publish time"),
    "videos": ("videotitel", "veröffentlichungszeitpunkt des videos"),
}
# Studio names the columns in its interface's language: Date and Views as German, French,
# Portuguese, Spanish and Italian exports name them (a file with the English name keeps it)
LOCAL = {"datum": "date", "data": "date", "fecha": "date", "aufrufe": "views", "vues": "views"}
LOCAL |= dict.fromkeys(("visualizações", "visualizaciones", "visualizzazioni"), "views")
TABLE = "YouTube Studio's table of totals (one row per video or dimension value, no days)"
TABLE_HINT = f"{TABLE}: ingest the Totals.csv or Chart data.csv of the same export"
_HEAD_BYTES = 65536


def english(lowered: list[str]) -> list[str]:
    """A lower-cased header with Studio's localized Date and Views columns named in English (a
    name whose English one is already there stays: `data` beside `date` is another column)."""
    return [n if LOCAL.get(n, n) in lowered else LOCAL.get(n, n) for n in lowered]


def label_columns(lowered: list[str]) -> set[str]:
    """The (lower-cased) columns that label a dimension whose id column is in the header."""
    return {label for key, names in LABELS.items() if key in lowered for label in names}


def is_table(lowered: list[str], first_cell: str) -> bool:
    """Studio's table of totals: a Views column, no Date column, and `Total` as the first row."""
    return "views" in lowered and "date" not in lowered and first_cell.strip().lower() == "total"


def table_of_totals(path: Path) -> bool:
    """Whether the file is Studio's table of totals (its first two lines say so; anything but a
    regular file that reads is not: ingest's own checks name its problem, and a pipe is never
    opened here, where reading it would wait for a writer)."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return False
    lines = head.decode("utf-8-sig", errors="replace").splitlines()[:2]
    if len(lines) < 2:
        return False
    header, first = (next(csv.reader([line]), []) for line in lines)
    return is_table(english([name.strip().lower() for name in header]), first[0] if first else "")


def not_daily(days: np.ndarray) -> str | None:
    """Why an export's dates (days since 1970) are not daily views, or None: its distinct dates
    a median of 7 or more days apart are weekly or monthly totals (a day or a few missing here
    and there are gaps the store fills)."""
    distinct = np.unique(days)
    if len(distinct) < 3:
        return None
    gap = float(np.median(np.diff(distinct)))
    if gap < 7:
        return None
    return (
        f"its dates are {gap:g} days apart (median): weekly or monthly totals, not daily views "
        "(export them by day)"
    )
