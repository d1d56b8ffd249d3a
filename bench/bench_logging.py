"""What logging one pyfunc model costs, the way sweeps log it and the way they did before.

    .venv/bin/python bench/bench_logging.py      # --calls 40 --rounds 4, 1 minute on 2 cores

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
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
        print(f"{mode}: {statistics.median(values):.1f} ms a model (rounds: {rounds})")


if __name__ == "__main__":
    main()
