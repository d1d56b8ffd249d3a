"""What a run's learning curves cost in MLflow, written through its client (`log_batch`).

    .venv/bin/python bench/bench_curves.py      # --rounds 7, under a minute on 2 cores

A fresh workspace's SQLite store. Part 1: one `log_batch` call of 100, 400 and 1,000 metrics
(MLflow's limit per call), milliseconds, the median of `--rounds`. Part 2: the curve points a
training run of E epochs logs (train_loss, val_mae_epoch, grad_norm, lr), every epoch against
the thinned curves viewcast logs (`pipeline.models.outcome.curve_points`: at most CURVE_POINTS
epochs, the best, the last and each curve's minimum kept), points and milliseconds per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.models.outcome import CURVE_POINTS, curve_points


def log_ms(session, points: list[tuple[str, int, float]]) -> float:
    """Milliseconds to log these (key, epoch, value) points into a new run, in batches of
    1,000 (what MLflow takes per call)."""
    from mlflow.entities import Metric

    run = session.client.create_run(session.experiment).info.run_id
    metrics = [Metric(k, v, 0, e) for k, e, v in points]
    start = time.perf_counter()
    for lo in range(0, len(metrics), 1000):
        session.client.log_batch(run, metrics=metrics[lo : lo + 1000])
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        session = tracking.session(Paths(Path(tmp)))
        print("| metrics in one log_batch | ms (median) |\n|---|---|")
        for n in (100, 400, 1000):
            points = [("m", e, float(e)) for e in range(1, n + 1)]
            ms = statistics.median(log_ms(session, points) for _ in range(args.rounds))
            print(f"| {n:,} | {ms:.1f} |")
        print(f"\n| epochs | every epoch: points, ms | thinned ({CURVE_POINTS}): points, ms |")
        print("|---|---|---|")
        for epochs in (100, 600, 2000):
            history = {
                k: list(rng.uniform(1, 2, epochs))
                for k in ("train_loss", "val_mae", "grad_norm", "lr")
            }
            every = curve_points(history, 1, most=10**9)
            thinned = curve_points(history, 1)
            cells = []
            for points in (every, thinned):
                ms = statistics.median(log_ms(session, points) for _ in range(args.rounds))
                cells.append(f"{len(points):,}, {ms:.1f}")
            print(f"| {epochs:,} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
