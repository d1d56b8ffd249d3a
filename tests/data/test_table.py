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


def test_arrow_columns_become_numpy_as_to_numpy_gives_them() -> None:
    """Chunked, sliced, boolean and null-holding columns: the same values and types as pyarrow's
    own `to_numpy`, which imports pandas."""
    import pyarrow as pa

    from pipeline.data.table import arrow_numpy

    columns = [
        pa.chunked_array([pa.array([1.5, 2.5]), pa.array([3.5])]),
        pa.chunked_array([pa.array([4, 5, 6], pa.int32())]),
        pa.chunked_array([], pa.float64()),
        pa.array([7, 8, 9, 10], pa.int64()).slice(1, 2),
        pa.chunked_array([pa.array([True, False]), pa.array([True])]),
        pa.array([1.0, None, 3.0]),
    ]
    for column in columns:
        got, want = arrow_numpy(column), column.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_reading_the_store_imports_no_pandas(tmp_path) -> None:
    """`viewcast features` and every other reader of the store without MLflow pay no 0.2 s for
    pandas (pyarrow's to_numpy imports it); the table comes back as written."""
    import subprocess
    import sys

    from pipeline.data.table import ViewsTable, _write_table

    path = tmp_path / "dev.parquet"
    table = ViewsTable(
        np.array(["a", "b"], dtype=object),
        np.array([0, 0, 1], np.int32),
        np.array([10, 11, 10], np.int32),
        np.array([1.0, 2.0, 3.0]),
        np.array([False, True, False]),
    )
    _write_table(table, path)
    code = (
        "import sys\n"
        "from pipeline.data.table import _read_table\n"
        f"t = _read_table(__import__('pathlib').Path({str(path)!r}))\n"
        "print('pandas' in sys.modules, list(t.names), t.code.tolist(), t.day.tolist(),"
        " t.views.tolist(), t.imputed.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == (
        "False ['a', 'b'] [0, 0, 1] [10, 11, 10] [1.0, 2.0, 3.0] [False, True, False]"
    )
