"""The MLflow half of `viewcast check`: the database file's health and runs left RUNNING.

SQLite's read-only `pragma integrity_check` is the one SQL statement viewcast sends: MLflow's API
has no health check, and nothing is ever written into MLflow's tables behind its API.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.data.check import Finding
from pipeline.data.workspace import Paths
from pipeline.tracking.queries import running_runs
from pipeline.tracking.writers import kill_run


def check_mlflow(ws: Paths, repair: bool) -> list[Finding]:
    """SQLite's integrity check, then runs left RUNNING (no writer is alive: check holds the
    workspace lock, which every writer holds)."""
    db = ws.mlruns / "mlflow.db"
    leftovers = [
        Finding(str(tmp), "left by a crashed store creation", repair)
        for tmp in sorted(ws.mlruns.glob(".mlflow-*.db"))
    ]
    if repair:
        for finding in leftovers:
            Path(finding.file).unlink(missing_ok=True)
    if not db.exists():
        return leftovers
    if db.stat().st_size == 0:
        return [*leftovers, Finding(str(db), "empty file (0 bytes): move it away; runs are lost")]
    try:
        with sqlite3.connect(db) as con:
            verdict = con.execute("pragma integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as err:
        verdict = str(err)
    if verdict != "ok":
        return [*leftovers, Finding(str(db), f"fails SQLite's integrity check ({verdict[:80]})")]
    out = leftovers
    for run in running_runs(ws):
        out.append(Finding(str(db), f"run {run.run_id} ({run.name}) left RUNNING", repair))
        if repair:
            kill_run(ws, run.run_id, "no live writer (check)")
    return out
