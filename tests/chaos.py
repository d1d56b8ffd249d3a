"""A chaos harness: run a `viewcast` command in a process, kill -9 it at a seeded random instant,
then `check --repair` (in this process) and prove nothing committed was lost. Used by
tests/test_chaos.py (a few kills per stage) and bench/bench_soak.py (a hundred)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import jobs, tracking
from pipeline.data.check import require_whole
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.workspace import Paths

ROOT = Path(__file__).resolve().parents[1]


def viewcast(home: Path, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    """`viewcast --home HOME ARGS...` in a process of its own, to the end."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "pipeline", "--home", str(home), *map(str, args)]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def killed(home: Path, after: float, *args: object) -> bool:
    """Start `viewcast ARGS...`, kill -9 it after `after` seconds; True if it was still running."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "pipeline", "--home", str(home), *map(str, args)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


@dataclass
class Tally:
    """What a chaos run did, and whether anything was lost."""

    kills: int = 0  # processes killed while still running (the others had finished)
    repaired: int = 0  # findings `check --repair` fixed after a kill
    damaged_rounds: int = 0  # kills after which check found something to repair
    lost: list[str] = field(default_factory=list)


def series_in(home: Path) -> set[str]:
    """The stored series, read in this process (a reader needs no process of its own)."""
    store = Store(Paths(home))
    try:
        return set(store.read_manifest()["series"]) if store.generation() else set()
    except ViewcastError:
        return set()


def repair(home: Path, tally: Tally) -> None:
    """`check --repair` (its job, in this process, under the lock) must leave a whole workspace
    after any kill."""
    ws = Paths(home)
    try:
        with jobs.locked(ws):
            found = jobs.check(ws, repair=True)
        require_whole(found, ws, repaired=True)
    except ViewcastError as err:
        tally.lost.append(f"check --repair: {err}")
        return
    tally.repaired += len(found)
    tally.damaged_rounds += bool(found)


def chaos_ingest(home: Path, exports: list[Path], rng: np.random.Generator, most: float) -> Tally:
    """Kill each ingest at a random instant; committed series must survive, and the same
    ingest run again must land."""
    tally = Tally()
    for path in exports:
        before = series_in(home)
        tally.kills += killed(home, float(rng.uniform(0.05, most)), "ingest", path)
        repair(home, tally)
        if not before <= series_in(home):
            tally.lost.append(f"series lost by a killed ingest of {path.name}")
        if viewcast(home, "ingest", path).returncode != 0:
            tally.lost.append(f"ingest of {path.name} failed after the kill")
    return tally


def chaos_sweep(home: Path, grid: Path, rounds: int, rng, most: float, fresh=False) -> Tally:
    """Kill the (resumed) sweep at random instants; then it must finish with every
    configuration FINISHED once and no run left RUNNING. With `fresh`, every round starts a new
    sweep (the grid's seed is the round's), so that every kill can land in real work."""
    tally = Tally()
    text = grid.read_text()
    for r in range(rounds):
        if fresh:
            grid.write_text(text.replace("[base]", f"[base]\nseed = {r}"))
        tally.kills += killed(home, float(rng.uniform(0.5, most)), "sweep", "--grid", grid)
        repair(home, tally)
        if fresh:
            tally.lost += _finish_sweep(home, grid)
    if not fresh:
        tally.lost += _finish_sweep(home, grid)
    return tally


def _finish_sweep(home: Path, grid: Path) -> list[str]:
    """Run the sweep to its end: one FINISHED run per configuration, none left RUNNING."""
    done = viewcast(home, "sweep", "--grid", grid)
    if done.returncode != 0:
        return [f"the sweep failed after the kills: {done.stderr.strip()}"]
    ws = Paths(home)
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws), finished_only=False)
    finished = [r.tags["config_key"] for r in runs if r.status == "FINISHED"]
    lost = []
    if len(finished) != len(set(finished)):
        lost.append("a configuration finished twice")
    if [r for r in runs if r.status == "RUNNING"]:
        lost.append("a run left RUNNING after the sweep finished")
    return lost


def chaos_daily(home: Path, exports: list[Path], series: str, rng, most: float) -> Tally:
    """Kill each day's `daily` at a random instant, then run it again: every forecast file
    must exist with its MLflow run."""
    tally = Tally()
    for path in exports:
        tally.kills += killed(home, float(rng.uniform(0.2, most)), "daily", path, "--name", series)
        repair(home, tally)
        again = viewcast(home, "daily", path, "--name", series)
        if again.returncode not in (0, 3):
            tally.lost.append(f"daily {path.name} exit {again.returncode}: {again.stderr.strip()}")
    ws = Paths(home)
    files = {p.stem for p in (ws.data / "forecasts").glob("*.csv")}
    logged = {r.tags.get("forecast_date") for r in tracking.runs(ws, tracking.Stage.FORECAST)}
    if files - logged:
        tally.lost.append(f"forecast files without their run: {sorted(files - logged)}")
    return tally


def timed(fn, *args) -> tuple[Tally, float]:
    start = time.perf_counter()
    tally = fn(*args)
    return tally, time.perf_counter() - start
