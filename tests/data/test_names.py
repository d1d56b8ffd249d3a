"""Series named after their file: a re-export under another file name is refused before it is
written (ingest, run, daily), and `daily` refuses an export whose file-named series are all new."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import jobs
from pipeline.data import names
from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import read_views
from pipeline.data.names import named_after_file
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from tests.conftest import invoke, snapshot, synthetic_views, write_totals


def _chart(path: Path, days: int, start: str = "2022-01-01", silent: bool = False) -> Path:
    """A YouTube Studio chart export (Date,Traffic source,Views) of two traffic sources, the
    first `days` of the same 400; with `silent` a third whose views are all zero."""

    dates = pd.date_range(start, periods=days).strftime("%Y-%m-%d")
    views = {"Search": synthetic_views(400, seed=5), "Direct": synthetic_views(400, seed=6)}
    if silent:
        views["Playlists"] = np.zeros(days)
    rows = [(d, src, int(v[i])) for i, d in enumerate(dates) for src, v in views.items()]
    pd.DataFrame(rows, columns=["Date", "Traffic source", "Views"]).to_csv(path, index=False)
    return path


def test_a_reexport_under_another_file_name_is_not_a_second_copy(home: Path, cli) -> None:
    """The same channel exported again as `full.csv` would store every traffic source twice
    (`early/Search` and `full/Search`): refused before anything is written, by `ingest` and by
    `run`, naming the --name that adds its days to the stored series instead."""

    ws = Paths(home)
    early = _chart(home.parent / "early.csv", 200, silent=True)
    assert cli("ingest", early).exit_code == 0
    full = _chart(home.parent / "full.csv", 230, silent=True)
    data = snapshot(ws.data)
    line = (
        f"viewcast: error: {full}: its series 'full/Search' repeats the stored 'early/Search' "
        "day for day (140 days compared: the same export under another file name); give --name "
        "'early' to add its days to the stored series, or drop the stored one first\n"
    )
    for command in ("ingest", "run"):
        refused = cli(command, full)
        assert refused.exit_code == 2 and refused.stderr == line, refused.output
        assert snapshot(ws.data) == data, "nothing written"
    blank = cli("run", full, "--name", " ")  # run passes --name on to the ingest
    assert blank.exit_code == 2 and "--name must not be empty" in blank.stderr
    done = cli("ingest", full, "--name", "early", "--json")
    assert done.exit_code == 0, done.output
    assert sorted(Store(ws).read_manifest()["series"]) == [
        "early/Direct",
        "early/Playlists",
        "early/Search",
    ]


def test_new_series_that_share_no_views_with_the_stored_ones_go_in(home: Path, cli) -> None:
    """Another channel's export, a series that repeats a stored one on fewer than 28 days, and
    a silent series (all zeros: alike everywhere) are new series, not copies."""

    ws = Paths(home)
    assert cli("ingest", _chart(home.parent / "early.csv", 200)).exit_code == 0
    other = home.parent / "other.csv"
    _chart(other, 230, start="2022-03-01")  # other views on early's days
    assert cli("ingest", other).exit_code == 0
    assert cli("ingest", _chart(home.parent / "short.csv", 27)).exit_code == 0  # 27 days alike
    quiet = write_totals(home.parent / "quiet.csv", np.zeros(200), start="2022-01-01")
    again = write_totals(home.parent / "quiet (1).csv", np.zeros(200), start="2022-01-01")
    assert cli("ingest", quiet).exit_code == 0 and cli("ingest", again).exit_code == 0
    names = Store(ws).read_manifest()["series"]
    assert {"other/Search", "short/Search", "quiet", "quiet (1)"} <= set(names)


@pytest.mark.parametrize("slices", [64, 0])
def test_a_copy_of_one_stored_series_among_many_is_found(home: Path, monkeypatch, slices) -> None:
    """70 stored series and a Totals export repeating one of them: found by row ranges (few
    twins) and by one pass over the rows (many), the same series either way."""

    monkeypatch.setattr(names._Dev, "SLICES", slices)
    ws = Paths(home)
    dates = pd.date_range("2022-01-01", periods=150).strftime("%Y-%m-%d")
    views = {f"s{i:02d}": synthetic_views(150, seed=100 + i).astype(int) for i in range(70)}
    rows = [(n, d, v[j]) for n, v in views.items() for j, d in enumerate(dates)]
    long = home.parent / "panel.csv"
    pd.DataFrame(rows, columns=["series_id", "date", "views"]).to_csv(long, index=False)
    jobs.ingest(ws, [(long, None)])
    copy = home.parent / "copy.csv"
    write_totals(copy, views["s42"][:100].astype(float), start="2022-01-01")
    with pytest.raises(ViewcastError, match=r"'copy' repeats the stored 's42' day for day \(90 "):
        jobs.ingest(ws, [(copy, None)])
    fresh = write_totals(home.parent / "fresh.csv", np.arange(100.0), start="2022-01-01")
    assert jobs.ingest(ws, [(fresh, None)]).report.added == {"fresh": 100}


def test_a_dated_chart_export_is_pointed_at_the_stored_prefix(tmp_path: Path):
    """A chart export's series are `<file name>/<value>`: a dated file name makes new ones. The
    refusal names the stored prefix whose values match; a file holding a stored series, or given
    --name, goes in; an empty store takes anything."""
    ws = Paths(tmp_path / "ws")
    first = _chart(tmp_path / "early.csv", 200)
    files = [(_chart(tmp_path / "day-2022-07-20.csv", 201), None)]
    batches = [read_views(path, name) for path, name in files]
    named_after_file(ws, files, batches)  # an empty workspace: nothing to add days to
    assert invoke(tmp_path / "ws", "ingest", first).exit_code == 0
    with pytest.raises(ViewcastError, match=r"2 series is in the store .*--name 'early'"):
        named_after_file(ws, files, batches)
    renamed = [(files[0][0], "early")]
    named_after_file(ws, renamed, [read_views(p, n) for p, n in renamed])
    same = [(first, None)]
    named_after_file(ws, same, [read_views(p, n) for p, n in same])
