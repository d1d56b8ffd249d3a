"""A source's days and views -> validated observations of one series, or one line naming the
source, the day and the problem (the same checks as an ingested export's)."""

from __future__ import annotations

import math

import numpy as np

from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import MAX_VIEWS, Observations


def iso(day: int) -> str:
    """Days since 1970-01-01 -> YYYY-MM-DD."""
    return str(np.datetime64(int(day), "D"))


def day_number(text: str) -> int:
    """YYYY-MM-DD (or YYYYMMDD, with or without an hour) -> days since 1970-01-01."""
    text = text.strip()
    if len(text) >= 8 and text[:8].isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:8]}"
    return int(np.datetime64(text[:10], "D").astype(np.int64))


def views_value(value: object, what: str, day: str) -> float:
    """A views count from JSON: a number, not negative, finite, under the ceiling."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ViewcastError(f"{what}: views on {day} are not a number ({value!r})")
    if not math.isfinite(value) or value > MAX_VIEWS:
        raise ViewcastError(f"{what}: views on {day} out of range ({value!r})")
    if value < 0:
        raise ViewcastError(f"{what}: negative views on {day} ({value!r})")
    return float(value)


def observations(
    name: str, days: list[int], views: list[float], what: str, first: int, last: int
) -> Observations:
    """One series' pulled days, checked: inside [first, last] (what was asked) and each day
    once (twice with the same views is harmless; with different views the answer is damaged)."""
    day = np.asarray(days, np.int32)
    value = np.asarray(views, np.float64)
    outside = np.flatnonzero((day < first) | (day > last))
    if len(outside):
        raise ViewcastError(
            f"{what}: the answer holds {iso(day[outside[0]])}, outside the days asked "
            f"({iso(first)} to {iso(last)})"
        )
    order = np.argsort(day, kind="stable")
    day, value = day[order], value[order]
    same = day[1:] == day[:-1]
    clash = np.flatnonzero(same & (value[1:] != value[:-1]))
    if len(clash):
        twice = iso(day[clash[0]])
        raise ViewcastError(f"{what}: {twice} is in the answer twice, with different views")
    keep = np.concatenate([[True], ~same])
    day, value = day[keep], value[keep]
    return Observations(
        names=np.array([name], dtype=object),
        code=np.zeros(len(day), np.int32),
        day=day,
        views=value,
        source=what,
    )
