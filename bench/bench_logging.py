"""What tracking costs: a whole training run as a sweep logs it (lazy, issue 26) against the
run as it was logged before (a pyfunc model each, 200-epoch curves); and one pyfunc model.

    .venv/bin/python bench/bench_logging.py      # --calls 40 --rounds 4, 2 minutes on 2 cores

Part 1, a training run: one ReLU 1x64 member trained on the Coding Train's 7-day windows for 600
epochs (as bench/grid-sweep.toml trains them), then `tracking.log_training` of its outcome
`--calls` times per mode, the modes interleaved `--rounds` times, into a fresh workspace: "lazy"
(what a sweep does now: curves thinned to 50 epochs, the model folder, no pyfunc model) and
"eager" (every run a pyfunc model, curves thinned to 200 epochs: before issue 26).
Milliseconds per run (create, params + metrics + curves, dataset inputs, model folder, status),
the median round of each mode.

Part 2, one pyfunc model:
A fresh workspace, one run, then `tracking.log_pyfunc` of a ReLU 1x64 model on 7 lags with the
weekday calendar, `--calls` times per mode, the modes interleaved `--rounds` times: "before"
reads the run's experiment from the store and lets MLflow compare the pinned requirements with
the installed packages on every save; "now" is what the sweep does (the experiment id it already
has, the comparison skipped: the pins are this process's own versions). Milliseconds per model,
the median round of each mode.
"""

from __future__ import annotations

import argparse
import contextlib
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
from pipeline.models import families as models
from pipeline.models.config import ModelConfig
from pipeline.tracking import registry


def training_runs(calls: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per logged training run, per mode and round."""
    from pipeline import jobs
    from pipeline.data import features as feats
    from pipeline.models.outcome import curve_points, training_outcome
    from pipeline.models.train import TrainConfig, fit

    with tempfile.TemporaryDirectory() as tmp:
        ws = Paths(Path(tmp) / "ws")
        jobs.ingest(ws, [(ROOT / "data" / "raw" / "codingtrain-2021" / "Totals.csv", "ct")])
        windows = feats.build(ws, feats.FeatureSpec((7,)))[7]
        mcfg = ModelConfig(7, "relu", 1, 64, scaling="window-mean")
        tcfg = TrainConfig(lr=1e-3, epochs=600, patience=600, seed=0)
        result = fit(windows, mcfg, tcfg)
        data = feats.data_params(ws, windows)
        lazy = training_outcome(windows, result, data, curve_png=False)
        eager = training_outcome(windows, result, data, curve_png=False)
        eager.curves = curve_points(result.history, result.best_epoch, most=200)
        tracking.connect(ws)
        times: dict[str, list[float]] = {"lazy": [], "eager": []}
        for _ in range(rounds):
            for mode, outcome in (("lazy", lazy), ("eager", eager)):
                start = time.perf_counter()
                for _ in range(calls):
                    tracking.log_training(
                        ws,
                        windows,
                        mcfg,
                        tcfg,
                        result.model,
                        "cpu",
                        outcome,
                        data,
                        pyfunc=mode == "eager",
                    )
                times[mode].append(1000 * (time.perf_counter() - start) / calls)
        points = {m: len(o.curves) for m, o in (("lazy", lazy), ("eager", eager))}
        print(f"curve points a run: lazy {points['lazy']}, eager {points['eager']}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--sqlite-sync-off",
        action="store_true",
        help="every SQLite connection with PRAGMA synchronous=OFF (no fsync a commit): how much "
        "of a run's cost is the disk's",
    )
    args = parser.parse_args()
    if args.sqlite_sync_off:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def _no_fsync(dbapi_connection, record) -> None:
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    runs = training_runs(args.calls, args.rounds)
    for mode, values in runs.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"training run, {mode}: {statistics.median(values):.1f} ms (rounds: {rounds})")
    ratio = statistics.median(runs["eager"]) / statistics.median(runs["lazy"])
    print(f"training run: lazy costs 1/{ratio:.1f} of eager")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Paths(Path(tmp) / "ws")
        cfg = ModelConfig(7, "relu", 1, 64, scaling="window-mean", calendar="weekday")
        folder = Path(tmp) / "model"
        models.save(models.ViewsModel(cfg), folder)
        example = (np.ones((2, 7)), np.array(["2021-01-04", "2021-01-05"], "datetime64[D]"))
        with tracking.start_run(ws, "bench-logging", tracking.Stage.TRAIN) as run:
            client = tracking.session(ws).client
            skip = registry._no_requirement_check
            times: dict[str, list[float]] = {"before": [], "now": []}
            for _ in range(args.rounds):
                for mode in times:
                    registry._no_requirement_check = (
                        contextlib.nullcontext if mode == "before" else skip
                    )
                    experiment = None if mode == "before" else run.experiment_id
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        tracking.log_pyfunc(client, run.run_id, folder, cfg, example, experiment)
                    times[mode].append(1000 * (time.perf_counter() - start) / args.calls)
            registry._no_requirement_check = skip
    for mode, values in times.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"pyfunc model, {mode}: {statistics.median(values):.1f} ms (rounds: {rounds})")


if __name__ == "__main__":
    main()
