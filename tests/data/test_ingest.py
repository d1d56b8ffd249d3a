"""Every export format, read from real files in data/raw (or files derived from them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.errors import InputError
from pipeline.data.ingest import read_views


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def _series(obs, name: str) -> pd.Series:
    mask = obs.series_id() == name
    return pd.Series(obs.views[mask], index=obs.day[mask])


def test_youtube_totals_one_series_named_by_option_or_file(raw: Path) -> None:
    obs = read_views(raw / "codingtrain-2021" / "Totals.csv", series="codingtrain")
    assert list(obs.names) == ["codingtrain"]
    assert len(obs) == 365
    assert obs.day[0] == _day("2020-12-31") and obs.day[-1] == _day("2021-12-30")
    assert obs.views[:3].tolist() == [31964, 37509, 43579]
    assert list(read_views(raw / "codingtrain-2021" / "Totals.csv").names) == ["Totals"]


def test_youtube_chart_one_series_per_dimension_value(raw: Path) -> None:
    obs = read_views(raw / "codingtrain-2021" / "Chart data.csv", series="ct")
    assert len(obs.names) == 201 and len(obs) == 201 * 365
    # "NA" is Namibia, not a missing value
    assert "ct/NA" in set(obs.names)
    assert _series(obs, "ct/AD").iloc[:3].tolist() == [0, 0, 11]
    sources = read_views(raw / "wholebrainhealth" / "Chart_data.csv")
    assert len(sources.names) == 13 and len(sources) == 13 * 803
    assert "Chart_data/YouTube search" in set(sources.names)


def test_kaggle_long_sample(raw: Path) -> None:
    obs = read_views(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv")
    assert len(obs.names) == 10 and len(obs) == 5500
    gray = _series(obs, "Death_of_Freddie_Gray_en.wikipedia.org_mobile-web_all-agents")
    assert gray.iloc[:3].tolist() == [791, 704, 903]


def test_wikipedia_views_keep_their_gaps(raw: Path) -> None:
    obs = read_views(raw / "wikipedia-peyton-manning" / "views.csv", series="peyton")
    span = int(obs.day[-1] - obs.day[0] + 1)
    assert len(obs) == 2905 and span - len(obs) == 59


def test_kaggle_wide_empty_cells_are_missing_days(raw: Path, tmp_path: Path) -> None:
    long = pd.read_csv(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv")
    wide = long.pivot(index="Page", columns="date", values="value")
    first_page, third_day = wide.index[0], wide.columns[2]
    wide.loc[first_page, third_day] = np.nan
    path = tmp_path / "train_1.csv"
    wide.reset_index().to_csv(path, index=False)
    obs = read_views(path)
    assert len(obs.names) == 10 and len(obs) == 5500 - 1
    got = _series(obs, first_page)
    assert _day(third_day) not in got.index
    expected = long[long.Page == first_page].set_index("date")["value"].drop(third_day)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_kaggle_wide_streams_in_blocks_to_the_same_observations(
    raw: Path, tmp_path: Path, monkeypatch
) -> None:
    """Pages and date columns in any order, read in many small blocks and gathered a few pages
    at a time, give exactly the long file's observations; a page listed twice with other
    values is refused like in a long file."""
    import pipeline.data.ingest as ingest

    long = pd.read_csv(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv")
    wide = long.pivot(index="Page", columns="date", values="value")
    wide = wide.iloc[::-1, np.random.default_rng(0).permutation(wide.shape[1])]
    wide.iloc[3, 5] = np.nan
    path = tmp_path / "train_1.csv"
    wide.reset_index().to_csv(path, index=False)
    monkeypatch.setattr(ingest, "WIDE_BLOCK", 16384)  # a block of a few pages
    monkeypatch.setattr(ingest, "_wide_observations", _small_chunks(ingest._wide_observations))
    got = read_views(path)
    expected = read_views(raw / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv")
    assert len(got) == len(expected) - 1
    assert list(got.names) == sorted(expected.names), "pages sorted, so codes are too"
    assert np.all(np.diff(got.code) >= 0) and np.all(np.diff(got.day)[np.diff(got.code) == 0] > 0)
    as_frame = lambda o: pd.DataFrame(  # noqa: E731
        {"page": o.names[o.code].astype(str), "day": o.day, "views": o.views}
    )
    want = as_frame(expected)
    want = want[~((want.page == wide.index[3]) & (want.day == _day(wide.columns[5])))]
    pd.testing.assert_frame_equal(
        as_frame(got),
        want.sort_values(["page", "day"]).reset_index(drop=True),
        check_dtype=False,
    )

    twice = pd.concat([wide.iloc[:2], wide.iloc[:1] + 1]).reset_index()
    twice.to_csv(path, index=False)
    with pytest.raises(InputError, match="listed twice for series"):
        read_views(path)


def _small_chunks(gather):
    return lambda path, pages, days, matrix: gather(path, pages, days, matrix, chunk=3)


def test_generic_long_with_channel_column(raw: Path, tmp_path: Path) -> None:
    totals = pd.read_csv(raw / "codingtrain-2021" / "Totals.csv")
    path = tmp_path / "long.csv"
    pd.DataFrame({"channel": "ct", "date": totals.Date, "views": totals.Views}).to_csv(
        path, index=False
    )
    obs = read_views(path)
    assert list(obs.names) == ["ct"] and obs.views.sum() == totals.Views.sum()


def test_bom_crlf_unsorted_quoted_thousands_and_total_row(raw: Path, tmp_path: Path) -> None:
    totals = pd.read_csv(raw / "codingtrain-2021" / "Totals.csv")
    rows = [f'{d},"{v:,}"' for d, v in zip(totals.Date, totals.Views, strict=True)]
    rows = rows[::-1]  # newest first, as some exports are
    text = "\r\n".join(["Date,Views", f'Total,"{totals.Views.sum():,}"', *rows]) + "\r\n"
    path = tmp_path / "Table data.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    obs = read_views(path, series="ct")
    assert len(obs) == 365
    np.testing.assert_array_equal(obs.views, totals.Views.to_numpy())
    assert obs.day[0] == _day("2020-12-31")


def test_a_videos_id_names_its_series_not_its_title(tmp_path: Path) -> None:
    """YouTube Studio's per-video chart: Content (the id) keys the series; the title and the
    publish time beside it are labels, so a video renamed between exports stays one series."""
    head = "Date,Content,Video title,Video publish time,Duration,Views\n"
    first = tmp_path / "week1.csv"
    first.write_text(
        head + '2021-01-01,dQw4w9WgXcQ,"Live, part 1 / 2","Jan 1, 2021",212,"1,200"\n'
        '2021-01-01, -abc_DEF12,Snake,"Mar 3, 2021",1800,7\n'
    )
    obs = read_views(first, series="ch")
    assert sorted(obs.names) == ["ch/-abc_DEF12", "ch/dQw4w9WgXcQ"]
    assert _series(obs, "ch/dQw4w9WgXcQ").tolist() == [1200]
    renamed = tmp_path / "week2.csv"
    renamed.write_text(head + '2021-01-02,dQw4w9WgXcQ,New title,"Jan 1, 2021",212,900\n')
    assert list(read_views(renamed, series="ch").names) == ["ch/dQw4w9WgXcQ"]
    # without its id column a title is a dimension like any other
    titles = tmp_path / "titles.csv"
    titles.write_text("Date,Video title,Views\n2021-01-01,Snake,3\n2021-01-01,Live,4\n")
    assert sorted(read_views(titles, series="ch").names) == ["ch/Live", "ch/Snake"]


def test_numeric_metric_columns_are_not_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "Totals.csv"
    path.write_text("Date,Views,Watch time (hours)\n2021-01-01,10,1.5\n2021-01-02,12,2.0\n")
    obs = read_views(path, series="ch")
    assert list(obs.names) == ["ch"] and obs.views.tolist() == [10, 12]


def test_identical_duplicate_rows_collapse(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Date,Views\n2021-01-01,5\n2021-01-02,6\n2021-01-01,5\n")
    assert read_views(path).views.tolist() == [5, 6]


def test_blank_lines_do_not_shift_reported_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Date,Views\n2021-01-01,5\n\n2021-01-02,oops\n")
    with pytest.raises(InputError) as err:
        read_views(path)
    assert err.value.line == 4


def test_the_longest_line_is_found_across_chunks() -> None:
    from pipeline.data.ingest import _longest_line

    rng = np.random.default_rng(0)
    for _ in range(200):
        raw = bytes(rng.choice([ord("a"), 10], size=int(rng.integers(0, 60)), p=[0.8, 0.2]))
        lines = raw.split(b"\n")
        longest = max(len(line) for line in lines)
        expected = (longest, 1 + [len(line) for line in lines].index(longest))
        assert _longest_line(raw, chunk=int(rng.integers(1, 9))) == expected, raw
