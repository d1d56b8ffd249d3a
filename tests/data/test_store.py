"""The store: idempotent re-ingest, revisions, gap filling, fixed time splits, sealed test rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.ingest import read_views
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from tests.conftest import snapshot, synthetic_views, write_totals


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def _views(store: Store, name: str) -> pd.Series:
    """All stored days of one series (dev and sealed), for assertions only."""
    frames = []
    for table in (store.read_dev(), store.read_sealed()):
        mask = table.names[table.code] == name
        frames.append(pd.Series(table.views[mask], index=table.day[mask]))
    return pd.concat(frames).sort_index()


def test_reingesting_the_same_files_leaves_the_store_identical(cli, home: Path, raw: Path) -> None:
    files = [raw / "wikipedia-kaggle10", raw / "wholebrainhealth" / "Chart_data.csv"]
    assert cli("ingest", *files).exit_code == 0
    before = snapshot(home / "data")
    result = cli("ingest", *files)
    assert result.exit_code == 0
    assert "store unchanged" in result.stdout
    assert snapshot(home / "data") == before


def test_newer_export_replaces_overlapping_days_and_reports_counts(
    cli, home: Path, tmp_path: Path
) -> None:
    views = synthetic_views(200, seed=1)
    cli("ingest", write_totals(tmp_path / "jan.csv", views[:150]), "--name", "ch")
    revised = views[100:].copy()
    revised[45:50] += 7  # YouTube revised days 145..149
    result = cli(
        "ingest", write_totals(tmp_path / "feb.csv", revised, "2021-04-11"), "--name", "ch"
    )
    assert result.exit_code == 0, result.output
    assert "50 days added, 5 updated" in result.stdout
    stored = _views(Store(Paths(home)), "ch")
    expected = views.copy()
    expected[145:150] += 7
    np.testing.assert_array_equal(stored.to_numpy(), expected)


def test_missing_days_are_interpolated_and_flagged(raw: Path, home: Path) -> None:
    store = Store(Paths(home))
    report = store.ingest([read_views(raw / "wikipedia-peyton-manning" / "views.csv", "pm")])
    assert report.imputed == {"pm": 59}
    dev = store.read_dev()
    obs = read_views(raw / "wikipedia-peyton-manning" / "views.csv", "pm")
    steps = np.diff(obs.day)
    i = int(np.flatnonzero(steps > 2)[0])  # the first gap of two or more missing days
    lo, hi = int(obs.day[i]), int(obs.day[i + 1])
    a, b = obs.views[i], obs.views[i + 1]
    gap = (dev.day > lo) & (dev.day < hi)
    assert dev.imputed[gap].all() and not dev.imputed[(dev.day == lo) | (dev.day == hi)].any()
    k = hi - lo
    np.testing.assert_allclose(dev.views[gap], a + (b - a) * np.arange(1, k) / k)
    manifest = store.read_manifest()
    assert manifest["fill"] == "linear" and manifest["series"]["pm"]["imputed"] == 59
    assert manifest["series"]["pm"]["days"] == 2964


def test_later_export_fills_an_imputed_day_and_counts_it_updated(cli, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    days = [f"2021-01-{d:02d}" for d in range(1, 31)]
    lines = [f"{d},{i * 10}" for i, d in enumerate(days) if d != "2021-01-05"]
    path.write_text("Date,Views\n" + "\n".join(lines) + "\n")
    first = cli("ingest", path, "--name", "c", "--test-days", 4, "--val-days", 4)
    assert first.exit_code == 0
    assert "30 days added, 0 updated; 1 day imputed (linear)" in first.stdout
    fix = tmp_path / "fix.csv"
    fix.write_text("Date,Views\n2021-01-05,999\n")
    result = cli("ingest", fix, "--name", "c")
    assert "0 days added, 1 updated" in result.stdout
    more = tmp_path / "more.csv"
    more.write_text("Date,Views\n2021-01-31,300\n")
    assert "1 day added, 0 updated; 0 days imputed" in cli("ingest", more, "--name", "c").stdout


def test_splits_are_in_time_order_without_overlap_and_sealed_apart(raw: Path, home: Path) -> None:
    store = Store(Paths(home))
    files = ["wikipedia-kaggle10/wikipedia_traffic_daily.csv", "codingtrain-2021/Totals.csv"]
    store.ingest([read_views(raw / f) for f in files], test_days=60, val_days=60)
    splits, dev, sealed = store.read_splits(), store.read_dev(), store.read_sealed()
    assert len(splits.series) == 11
    for name, s in splits.series.items():
        d = dev.day[dev.names[dev.code] == name]
        t = sealed.day[sealed.names[sealed.code] == name]
        train, val = d[d < s.val_start], d[d >= s.val_start]
        assert train.max() < val.min(), f"{name}: train must precede validation"
        assert val.max() < t.min(), f"{name}: validation must precede test"
        assert len(val) == 60 and len(t) == 60
        assert t.min() == s.test_start and t.max() == s.test_end
        assert s.private_start - s.test_start == 30, "public half first, then private"
        assert len(np.intersect1d(d, t)) == 0


def test_split_boundaries_do_not_move_when_later_data_arrives(
    cli, home: Path, tmp_path: Path
) -> None:
    views = synthetic_views(400, seed=2)
    cli("ingest", write_totals(tmp_path / "a.csv", views[:300]), "--name", "ch")
    splits_file = lambda: json.loads(  # noqa: E731
        next((home / "data" / "store").glob("gen-*/splits.json")).read_text()
    )
    before = splits_file()
    result = cli("ingest", write_totals(tmp_path / "b.csv", views, "2021-01-01"), "--name", "ch")
    assert result.exit_code == 0
    assert "100 days added" in result.stdout
    assert splits_file() == before
    store = Store(Paths(home))
    assert store.read_dev().day.max() == _day(before["series"]["ch"]["test_start"]) - 1
    assert store.read_sealed().day.max() == _day("2021-01-01") + 399  # after-test days stay sealed


def test_a_series_too_short_to_split_is_sealed_until_it_is_long_enough(
    cli, home: Path, tmp_path: Path
) -> None:
    views = synthetic_views(200, seed=3)
    result = cli("ingest", write_totals(tmp_path / "a.csv", views[:100]), "--name", "new")
    assert "too short to split" in result.stdout
    store = Store(Paths(home))
    assert len(store.read_dev()) == 0 and len(store.read_sealed()) == 100
    assert "new" not in store.read_splits().series
    cli("ingest", write_totals(tmp_path / "b.csv", views), "--name", "new")
    assert store.read_splits().series["new"].test_end == _day("2021-01-01") + 199
    assert len(store.read_dev()) == 200 - 60


def test_store_generation_swap_leaves_no_partial_state(home: Path, raw: Path) -> None:
    store = Store(Paths(home))
    store.ingest([read_views(raw / "codingtrain-2021" / "Totals.csv", "ct")])
    before = snapshot(home)

    class Boom(Exception):
        pass

    import pipeline.data.store as store_module

    original = store_module._write_table
    calls = []

    def failing(table, path):
        calls.append(path)
        if len(calls) == 2:  # dev written, sealed fails mid-generation
            raise Boom
        return original(table, path)

    store_module._write_table = failing
    try:
        with pytest.raises(Boom):
            store.ingest([read_views(raw / "wholebrainhealth" / "Totals.csv", "wbh")])
    finally:
        store_module._write_table = original
    assert snapshot(home) == before
    assert not list((home / "data" / "store").glob(".gen-*"))


def test_a_crash_between_the_rename_and_current_does_not_block_the_next_ingest(
    home: Path, raw: Path
) -> None:
    """A write that renamed its generation into place but died before CURRENT named it leaves
    gen-000002 behind: the next ingest removes it and commits gen-000002 of its own."""
    store = Store(Paths(home))
    store.ingest([read_views(raw / "codingtrain-2021" / "Totals.csv", "ct")])
    orphan = home / "data" / "store" / "gen-000002"
    orphan.mkdir()
    (orphan / "dev.parquet").write_bytes(b"half a file")
    (home / "data" / "store" / ".gen-crashed").mkdir()
    store.ingest([read_views(raw / "wholebrainhealth" / "Totals.csv", "wbh")])
    assert store.generation().name == "gen-000002"
    assert set(store.read_manifest()["series"]) == {"ct", "wbh"}
    assert sorted(p.name for p in (home / "data" / "store").iterdir()) == [
        "CURRENT",
        "gen-000002",
    ]


def test_a_full_disk_at_the_commit_point_leaves_the_old_store_and_the_next_ingest_works(
    home: Path, raw: Path, monkeypatch
) -> None:
    import errno

    import pipeline.data.store as store_module

    store = Store(Paths(home))
    store.ingest([read_views(raw / "codingtrain-2021" / "Totals.csv", "ct")])
    real = store_module.write_text

    def full_disk(path, text):
        if path.name == "CURRENT":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(store_module, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.ingest([read_views(raw / "wholebrainhealth" / "Totals.csv", "wbh")])
    monkeypatch.setattr(store_module, "write_text", real)
    assert set(store.read_manifest()["series"]) == {"ct"}, "the old store is intact"
    store.ingest([read_views(raw / "wholebrainhealth" / "Totals.csv", "wbh")])
    assert set(store.read_manifest()["series"]) == {"ct", "wbh"}


def test_within_one_call_the_later_file_wins(cli, home: Path, tmp_path: Path) -> None:
    views = synthetic_views(200, seed=6)
    first = write_totals(tmp_path / "first.csv", views)
    revised = views.copy()
    revised[10] += 5
    second = write_totals(tmp_path / "second.csv", revised)
    assert cli("ingest", first, second, "--name", "ch").exit_code == 0
    assert _views(Store(Paths(home)), "ch").iloc[10] == views[10] + 5
