"""The views table: fill rules and the sorted union of two tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.data.table import fill_gaps


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("linear", [1, 2, 3, 4, 10]), ("ffill", [1, 1, 1, 4, 10]), ("zero", [1, 0, 0, 4, 10])],
)
def test_fill_rules(rule: str, expected: list[float]) -> None:
    values = np.array([1, np.nan, np.nan, 4, 10])
    np.testing.assert_array_equal(fill_gaps(values, rule), expected)


@pytest.mark.parametrize("overlap", [False, True])
def test_concat_is_the_sorted_union(overlap: bool) -> None:
    """Dev then sealed (each series' days in a before those in b) takes the linear path; days
    that interleave take the sort; both give the (series, day)-sorted union of the rows."""
    from pipeline.data.table import concat

    rng = np.random.default_rng(11)
    for _ in range(20):
        a = _table(rng, ["p", "q", "r", "s"], 0, 40)
        b = _table(rng, ["q", "s", "t"], 20 if overlap else 40, 60)
        got = concat(a, b)
        frame = pd.DataFrame(
            {
                "name": np.concatenate([a.names[a.code], b.names[b.code]]).astype(str),
                "day": np.concatenate([a.day, b.day]),
                "views": np.concatenate([a.views, b.views]),
                "imputed": np.concatenate([a.imputed, b.imputed]),
            }
        ).sort_values(["name", "day"], kind="stable")
        assert list(got.names) == sorted(set(a.names) | set(b.names))
        np.testing.assert_array_equal(got.names[got.code].astype(str), frame["name"])
        np.testing.assert_array_equal(got.day, frame["day"])
        np.testing.assert_array_equal(got.views, frame["views"])
        np.testing.assert_array_equal(got.imputed, frame["imputed"])


def _table(rng, names, lo, hi):
    """A (series, day)-sorted ViewsTable over some of `names`, days in [lo, hi)."""
    from pipeline.data.table import ViewsTable

    chosen = np.sort(rng.choice(len(names), size=rng.integers(1, len(names) + 1), replace=False))
    rows = [(c, d) for c in chosen for d in np.sort(rng.choice(np.arange(lo, hi), 3, False))]
    code = np.array([c for c, _ in rows], np.int32)
    return ViewsTable(
        np.array(names, dtype=object),
        code,
        np.array([d for _, d in rows], np.int32),
        rng.random(len(rows)),
        rng.random(len(rows)) < 0.3,
    )
