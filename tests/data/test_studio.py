"""YouTube Studio's export folder: the table of totals is told from the files that hold days."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import studio
from pipeline.data.errors import InputError
from pipeline.data.ingest import read_views
from tests.conftest import synthetic_views, write_totals

TABLE = (
    "\ufeffContent,Video title,Video publish time,Duration,Views,Watch time (hours)\r\n"
    "Total,,,,800,10.5\r\n"
    'dQw4w9WgXcQ,"Live, part 1","Jan 1, 2021",212,400,5\r\n'
)


def test_the_table_of_totals_is_known_by_its_header_and_total_row(tmp_path: Path) -> None:
    table = tmp_path / "Table data.csv"
    table.write_text(TABLE, encoding="utf-8")
    assert studio.table_of_totals(table)
    totals = write_totals(tmp_path / "Totals.csv", synthetic_views(10))
    assert not studio.table_of_totals(totals)
    no_total = tmp_path / "other.csv"  # a Views column and no dates, but not Studio's table
    no_total.write_text("Content,Views\nabc,3\n")
    assert not studio.table_of_totals(no_total)
    assert not studio.table_of_totals(tmp_path / "missing.csv")
    assert studio.label_columns(["date", "content", "video title", "views"]) == {
        "video title",
        "video publish time",
    }
    assert studio.label_columns(["date", "video title", "views"]) == set()


def test_the_table_alone_is_refused_with_the_file_to_give_instead(tmp_path: Path) -> None:
    table = tmp_path / "Table data.csv"
    table.write_text(TABLE, encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_views(table)
    assert str(err.value) == (
        f"{table}:2: YouTube Studio's table of totals (one row per video or dimension value, "
        "no days): ingest the Totals.csv or Chart data.csv of the same export"
    )


def test_weekly_or_monthly_totals_are_refused_not_spread_over_days(tmp_path: Path) -> None:
    weekly = tmp_path / "weekly.csv"
    weeks = np.datetime64("2021-01-03") + 7 * np.arange(30)
    weekly.write_text("Date,Views\n" + "".join(f"{d},{7000 + i}\n" for i, d in enumerate(weeks)))
    with pytest.raises(InputError) as err:
        read_views(weekly)
    assert str(err.value) == (
        f"{weekly}: its dates are 7 days apart (median): weekly or monthly totals, not daily "
        "views (export them by day)"
    )
    months = np.array(["2021-01-01", "2021-02-01", "2021-03-01", "2021-04-01"], "datetime64[D]")
    assert "31 days apart" in studio.not_daily(months.astype(np.int64))
    # daily views with a few days missing are gaps the store fills, not a coarser export
    days = np.delete(np.arange(18_000, 18_100), [5, 6, 7, 40, 41, 90])
    assert studio.not_daily(days) is None
    assert studio.not_daily(np.array([18_000, 18_030])) is None, "two dates say nothing"
    long = tmp_path / "long.csv"  # every format: a DataFrame through the Python API is `long`
    long.write_text("series_id,date,views\n" + "".join(f"a,{d},1\n" for d in weeks))
    with pytest.raises(InputError, match="weekly or monthly totals"):
        read_views(long)
    wide = tmp_path / "train_weekly.csv"  # Kaggle-wide: the dates are the header's columns
    wide.write_text("Page," + ",".join(map(str, weeks)) + "\n" + "a" + ",7" * len(weeks) + "\n")
    with pytest.raises(InputError) as err:
        read_views(wide)
    assert str(err.value).startswith(f"{wide}:1: its dates are 7 days apart (median)")
    sparse = write_totals(tmp_path / "Totals.csv", synthetic_views(60))
    text = sparse.read_text().splitlines()
    sparse.write_text("\n".join(text[:1] + text[1::2]) + "\n")  # every other day: gaps
    assert len(read_views(sparse)) == 30


def test_a_pipe_beside_an_export_is_not_opened_to_look_for_a_table(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    found: list[bool] = []
    looking = threading.Thread(target=lambda: found.append(studio.table_of_totals(pipe)))
    looking.daemon = True  # opening a pipe waits for a writer: never here
    looking.start()
    looking.join(timeout=5)
    assert found == [False], "a pipe was opened (or the check is still waiting)"
