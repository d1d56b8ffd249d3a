"""What the terminal shows and what --json prints: numbers, NaN as null, ids as ingested."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.data.workspace import Paths
from tests.conftest import synthetic_views, write_totals


@dataclass
class Result:
    path: Path
    mae: float
    counts: tuple
    nested: dict


def test_plain_makes_results_json_ready() -> None:
    found = show.plain(Result(Path("/tmp/x.csv"), math.nan, (np.int64(3), math.inf), {1: 2.5}))
    assert found == {"path": "/tmp/x.csv", "mae": None, "counts": [3, None], "nested": {"1": 2.5}}
    json.dumps(found, allow_nan=False)  # strict JSON: no NaN, no inf
    assert show.pick(Result(Path("a"), 1.5, (), {}), ("mae",)) == {"mae": 1.5}


def test_numbers_are_shown_with_separators_and_missing_as_a_dash() -> None:
    assert show.fmt(1234.56) == "1,234.6"
    assert show.fmt(None) == "-" and show.fmt(math.nan) == "-"


def test_forecast_rows_give_back_the_series_ids_as_ingested(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("series_id,date,forecast\n'=1+1,2021-01-01,5.0\nplain,2021-01-01,nan\n")
    assert show.csv_rows(path) == [
        {"series_id": "=1+1", "date": "2021-01-01", "forecast": 5.0},
        {"series_id": "plain", "date": "2021-01-01", "forecast": None},
    ]


def test_json_is_strict_a_non_finite_number_is_null(capsys) -> None:
    show.emit([{"mae": float("nan"), "eig": float("-inf"), "n": np.int64(3), "x": 1.5}])
    assert json.loads(capsys.readouterr().out) == [{"mae": None, "eig": None, "n": 3, "x": 1.5}]


def test_series_too_short_to_split_are_named_and_counted(tmp_path: Path, capsys) -> None:
    ws = Paths(tmp_path / "ws")
    short = [write_totals(tmp_path / f"s{i}.csv", synthetic_views(30, seed=i)) for i in range(7)]
    show.ingested(jobs.ingest(ws, [(short[0], "s0")]))
    assert "1 series too short to split is sealed until it is long enough: s0\n" in (
        capsys.readouterr().out
    )
    show.ingested(jobs.ingest(ws, [(path, f"s{i}") for i, path in enumerate(short)]))
    out = capsys.readouterr().out
    assert "7 series too short to split are sealed until they are long enough: " in out
    assert out.rstrip().endswith("s0, s1, s2, s3, s4 and 2 more")


def test_counts_of_days_are_singular_for_one(capsys) -> None:
    assert [show.days(n) for n in (0, 1, 2, 1200)] == ["0 days", "1 day", "2 days", "1,200 days"]
    show.windows(
        [
            {"window": 1, "train_rows": 680, "val_rows": 59},
            {"window": 7, "train_rows": 674, "val_rows": 59},
        ]
    )
    assert (
        capsys.readouterr().out == "lag windows (train/val rows): 1 day: 680/59, 7 days: 674/59\n"
    )
