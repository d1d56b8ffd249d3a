"""Seconds from a sweep's process start to its first epoch (issue 26's start-up target: 3 s).

    .venv/bin/python bench/bench_startup.py [--repeat 3]

Each try is a fresh `viewcast sweep --grid bench/grid-sweep.toml` process on the Coding Train
export: the parent notes the time just before it starts the child; the child wraps the stacked
trainer so that the first epoch of the first stack prints the time elapsed and exits at once.
Two cases: a fresh workspace (MLflow creates its tables in it) and one whose MLflow store exists
(another grid was swept there first). Prints the median of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "bench" / "grid-sweep.toml"
EXPORT = ROOT / "data" / "raw" / "codingtrain-2021" / "Totals.csv"


def child() -> None:
    """Run the CLI with the stacked trainer wrapped: report the first epoch, then exit."""
    t0 = float(os.environ["PROBE_T0"])
    sys.path.insert(0, str(ROOT))
    import pipeline.models.batched as batched

    real = batched.fit_stack

    def fit_stack(windows, configs, on_epoch=None):
        def first(epoch, active):
            print(f"FIRST_EPOCH {time.time() - t0:.3f}", file=sys.stderr, flush=True)
            os._exit(0)

        return real(windows, configs, first)

    batched.fit_stack = fit_stack
    from pipeline.cli import app

    sys.argv = ["viewcast", *sys.argv[2:]]
    app()


def first_epoch(home: Path, grid: Path) -> float:
    env = os.environ | {"PROBE_T0": repr(time.time()), "MLFLOW_DISABLE_TELEMETRY": "true"}
    args = [sys.executable, __file__, "--child", "--home", str(home), "sweep", "--grid", str(grid)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT)
    found = [ln for ln in done.stderr.splitlines() if ln.startswith("FIRST_EPOCH")]
    if not found:
        raise SystemExit(f"no epoch reached:\n{done.stderr[-2000:]}")
    return float(found[0].split()[1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    fresh, existing = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "ws"
            env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
            ingest = [sys.executable, "-m", "pipeline", "--home", str(home), "ingest", str(EXPORT)]
            subprocess.run(ingest, env=env, capture_output=True, check=True, cwd=ROOT)
            fresh.append(first_epoch(home, GRID))
            other = Path(tmp) / "other.toml"  # another grid: a new sweep in the same store
            other.write_text(GRID.read_text().replace("[0.003, 0.001]", f"[0.00{2 + i}, 0.0005]"))
            existing.append(first_epoch(home, other))
    for name, values in (("fresh workspace", fresh), ("MLflow store exists", existing)):
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: {statistics.median(values):.2f} s to the first epoch ({shown})")


if __name__ == "__main__":
    main()
