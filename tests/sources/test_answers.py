"""Checks every pulled value passes: numbers, signs, ceilings, days asked, duplicates."""

from __future__ import annotations

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.sources.answers import day_number, iso, observations, views_value


def test_days_read_both_ways_the_apis_write_them():
    assert day_number("2015-07-01") == day_number("20150701") == day_number("2015070100")
    assert iso(day_number("2024-02-29")) == "2024-02-29"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "not a number"),
        ("5", "not a number"),
        (None, "not a number"),
        (-1, "negative"),
        (float("nan"), "out of range"),
        (float("inf"), "out of range"),
        (1e13, "out of range"),
    ],
)
def test_views_must_be_counts(value, problem):
    with pytest.raises(ViewcastError, match=problem):
        views_value(value, "src", "2020-01-01")
    assert views_value(7, "src", "2020-01-01") == 7.0


def test_observations_are_sorted_unique_and_inside_the_days_asked():
    lo, hi = day_number("2020-01-01"), day_number("2020-01-10")
    obs = observations("s", [hi, lo, lo], [2.0, 1.0, 1.0], "src", lo, hi)
    assert obs.day.tolist() == [lo, hi] and obs.views.tolist() == [1.0, 2.0]
    assert list(obs.names) == ["s"] and obs.code.tolist() == [0, 0]
    with pytest.raises(ViewcastError, match="twice, with different views"):
        observations("s", [lo, lo], [1.0, 2.0], "src", lo, hi)
    with pytest.raises(ViewcastError, match="holds 2020-01-11, outside the days asked"):
        observations("s", [hi + 1], [1.0], "src", lo, hi)
