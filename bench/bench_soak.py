"""A soak of kill -9: each stage killed at a hundred seeded random instants, each kill followed by
`viewcast check --repair` and the same command run again; then everything committed must still be
there (tests/chaos.py says exactly what is checked).

    .venv/bin/python bench/bench_soak.py --stage ingest --kills 100    # one stage per process
    .venv/bin/python bench/bench_soak.py --stage sweep --kills 100
    .venv/bin/python bench/bench_soak.py --stage daily --kills 100
    .venv/bin/python bench/bench_soak.py --stage concurrent --kills 20   # pairs of ingests at once
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos import (
    Tally,
    chaos_daily,
    chaos_ingest,
    chaos_sweep,
    series_in,
    timed,
    viewcast,
)
from tests.conftest import (
    PRODUCTION_GRID,
    TINY_GRID,
    build_production,
    export,
    peyton_until_summer_2015,
    synthetic_views,
    write_totals,
)


def must(result) -> None:
    if result.returncode != 0:
        raise SystemExit(f"set-up failed: {result.stdout}\n{result.stderr}")


def concurrent(home: Path, folder: Path, rounds: int) -> Tally:
    """Two ingests of different files at once, `rounds` times: both must land."""
    import os
    import subprocess

    tally = Tally()
    env = os.environ | {"VIEWCAST_HOME": str(home), "VIEWCAST_WAIT": "300"}
    for r in range(rounds):
        files = [
            write_totals(
                folder / f"c{r:03d}{side}.csv", synthetic_views(300, seed=1000 + 2 * r + k)
            )
            for k, side in enumerate("xy")
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "ingest", str(f), "--name", f.stem],
                env=env,
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            for f in files
        ]
        codes = [p.wait() for p in procs]
        if codes != [0, 0] or not {f.stem for f in files} <= series_in(home):
            tally.lost.append(f"round {r}: exit codes {codes}, series missing")
    return tally


def soak(stage: str, kills: int, seed: int, folder: Path):
    rng = np.random.default_rng(seed)
    home = folder / "ws"
    first = write_totals(folder / "a.csv", synthetic_views(300, seed=0))
    must(viewcast(home, "ingest", first, "--name", "a"))
    if stage == "concurrent":
        return timed(concurrent, home, folder, kills)
    if stage == "ingest":
        exports = [
            write_totals(folder / f"s{i:03d}.csv", synthetic_views(300, seed=100 + i))
            for i in range(kills)
        ]
        return timed(chaos_ingest, home, exports, rng, 1.5)
    if stage == "sweep":
        grid = folder / "tiny.toml"
        grid.write_text(TINY_GRID)
        return timed(chaos_sweep, home, grid, kills, rng, 12.0, True)
    series = peyton_until_summer_2015()
    home = folder / "daily" / "ws"
    home.mkdir(parents=True)
    n = len(series)
    grid = PRODUCTION_GRID.replace("epochs = 600", "epochs = 60")
    build_production(home, series.iloc[: n - kills], grid, "s", viewcast)
    days = [  # day i brings one new day, with the 39 before it (as a daily export would)
        export(series.iloc[n - kills + i - 39 : n - kills + i + 1], folder / f"d{i:03d}.csv")
        for i in range(kills)
    ]
    return timed(chaos_daily, home, days, "s", rng, 5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stage", choices=("ingest", "sweep", "daily", "concurrent"), required=True
    )
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tally, seconds = soak(args.stage, args.kills, args.seed, Path(tmp))
    row = {"stage": args.stage, "rounds": args.kills, "seconds": round(seconds, 1)} | asdict(tally)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"soak-{args.stage}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
