"""Chaos and fuzz: kill -9 at seeded random instants of ingest, sweep and daily, each followed by
`check --repair` and a normal run; mutated real exports either ingest or are refused cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chaos import chaos_daily, chaos_ingest, chaos_sweep
from tests.conftest import FORTNIGHT, RAW, export, invoke, snapshot, synthetic_views, write_totals

pytestmark = pytest.mark.slow  # chaos: processes killed at random points


def test_killed_ingests_lose_no_committed_series(two_series: Path, tmp_path: Path):
    rng = np.random.default_rng(11)
    exports = [
        write_totals(tmp_path / f"new{i}.csv", synthetic_views(400, seed=20 + i)) for i in range(8)
    ]
    tally = chaos_ingest(two_series, exports, rng, most=1.5)
    assert tally.lost == [], tally
    assert tally.kills >= 3, f"most ingests must be killed mid-way: {tally}"


def test_killed_sweeps_resume_to_one_finished_run_per_configuration(
    two_series: Path, tiny_grid: Path
):
    tally = chaos_sweep(two_series, tiny_grid, 3, np.random.default_rng(12), most=6.0)
    assert tally.lost == [], tally
    assert tally.kills >= 2, tally


def test_killed_daily_runs_keep_each_forecast_with_its_run(production: Path, series):
    days = []  # two mornings here; bench/bench_soak.py kills a hundred
    for i in range(1, 3):
        end = len(series) - FORTNIGHT + i
        days.append(export(series.iloc[end - 28 : end], production.parent / f"day-{i}.csv"))
    tally = chaos_daily(production, days, "series", np.random.default_rng(13), most=3.0)
    assert tally.lost == [], tally
    assert tally.kills >= 1, tally


GOOD = (RAW / "codingtrain-2021" / "Totals.csv").read_bytes().splitlines(keepends=True)[:80]


@st.composite
def mutated_export(draw) -> bytes:
    """A real export with a few random edits: bytes flipped, inserted or deleted, lines cut."""
    data = bytearray(b"".join(GOOD))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(blob=mutated_export())
def test_a_mutated_export_ingests_or_is_refused_in_one_line(tmp_path: Path, blob: bytes):
    home = tmp_path / "fuzz"
    if not home.exists():  # one seeded store for every example
        home.mkdir()
        seed = write_totals(tmp_path / "seed.csv", synthetic_views(200, seed=3))
        assert invoke(home, "ingest", seed, "--name", "seed").exit_code == 0
    before = snapshot(home / "data")
    path = tmp_path / "mutated.csv"
    path.write_bytes(blob)
    result = invoke(home, "ingest", path, "--name", "fuzzed")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(path) in result.stderr
        assert snapshot(home / "data") == before, "a refused file changes nothing"
    else:
        status = invoke(home, "status", "--json")
        assert status.exit_code == 0 and '"seed"' in status.stdout
