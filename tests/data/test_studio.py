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


def test_studio_exports_in_another_language_are_read_as_in_english(tmp_path: Path) -> None:
    """Studio names the columns in its interface's language (German `Gesamtwerte.csv`, French
    `Totaux.csv`, Portuguese `Totais.csv`): Date and Views are found under those names."""
    cases = {
        "Gesamtwerte.csv": "Datum,Aufrufe\n",
        "Totaux.csv": "Date,Vues\nTotal,21\n",  # the Total row is skipped as in English
        "Totais.csv": "Data,Visualizações\n",
        "Totales.csv": "Fecha,Visualizaciones\n",
        "Totali.csv": "Data,Visualizzazioni\n",
    }
    for name, head in cases.items():
        path = tmp_path / name
        path.write_text(head + "2021-01-01,10\n2021-01-02,11\n", encoding="utf-8")
        obs = read_views(path, series="ch")
        assert obs.views.tolist() == [10, 11] and list(obs.names) == ["ch"], name
    chart = tmp_path / "Diagrammdaten.csv"  # the per-video chart: `Videos` is the video id
    chart.write_text(
        "Datum,Videos,Videotitel,Veröffentlichungszeitpunkt des Videos,Dauer,Aufrufe\n"
        '2021-01-01,dQw4w9WgXcQ,Teil 1,"1. Jan. 2021",212,5\n'
        '2021-01-02,dQw4w9WgXcQ,Neuer Titel,"1. Jan. 2021",212,6\n',
        encoding="utf-8",
    )
    assert list(read_views(chart, series="ch").names) == ["ch/dQw4w9WgXcQ"]
    # an English name wins: `data` beside `date` is a column of its own (here a dimension)
    both = tmp_path / "both.csv"
    both.write_text("Date,Data,Views\n2021-01-01,a,1\n2021-01-01,b,2\n")
    assert sorted(read_views(both, series="ch").names) == ["ch/a", "ch/b"]
    assert studio.english(["datum", "aufrufe", "date"]) == ["datum", "views", "date"]
