"""Forecast benchmark: `viewcast forecast` wall time, one series and 10,000 series.

    python bench/bench_forecast.py [--series 10000] [--days 400] [--repeat 3]

Each workspace is prepared the way a user's would be (ingest, sweep, select, finalize, refit), then
`viewcast forecast --force` runs as a fresh process `--repeat` times; the median wall time is the
end-to-end figure a timer sees (interpreter start and imports included). Also timed: the imports a
forecast needs (no torch: it predicts with NumPy, see pipeline/infer.py). The one-series workspace
holds Peyton Manning's real views (2,964 days) and a 2x64 ReLU champion; the many-series one holds
seeded synthetic series (see bench_ingest.py) and a closed-form linear champion on 28 days.
Results: bench/out/forecast.json and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PEYTON = ROOT / "data" / "raw" / "wikipedia-peyton-manning" / "views.csv"
RELU_GRID = """
[grid]
lags = 28
model = "relu"
layers = 2
width = 64
batchnorm = true
target_transform = "log1p"
scaling = "window-mean"
lr = 3e-3
epochs = 600
patience = 60
"""
LINEAR_GRID = """
[grid]
lags = 28
model = "linear"
solver = "lstsq"
loss = "mse"
target_transform = "log1p"
scaling = "window-mean"
"""


def viewcast(home: Path, *args: str) -> float:
    """Run `viewcast ARGS` in a fresh process; its wall time."""
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def prepare(home: Path, csv: Path, grid: str, series: str | None) -> dict[str, float]:
    (home / "grid.toml").write_text(grid)
    ingest = ["ingest", str(csv)] + (["--name", series] if series else [])
    steps = {
        "ingest": ingest,
        "sweep": ["sweep", "--grid", str(home / "grid.toml")],
        "select": ["select"],
        "finalize": ["finalize"],
        "refit": ["refit"],
    }
    return {name: viewcast(home, *args) for name, args in steps.items()}


def time_forecast(home: Path, repeat: int) -> dict:
    times = [viewcast(home, "forecast", "--force") for _ in range(repeat)]
    rows = sum(1 for _ in next((home / "data" / "forecasts").glob("*.csv")).open()) - 1
    return {"median_s": statistics.median(times), "runs_s": times, "rows": rows}


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import mlflow, pandas, pyarrow, pipeline.cli"], check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"imports_s": import_seconds()}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        results["one_series_prepare_s"] = prepare(home, PEYTON, RELU_GRID, "peyton-manning")
        results["one_series"] = time_forecast(home, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        csv = home / "many.csv"
        generate(csv, args.series, args.days)
        results["many_series_prepare_s"] = prepare(home, csv, LINEAR_GRID, None)
        results["many_series"] = time_forecast(home, args.repeat)
    (OUT / "forecast.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    print("\n| workspace | forecast rows | `viewcast forecast` median (runs) | target |")
    print("|---|---|---|---|")
    for key, label, target in (
        ("one_series", "1 series (Peyton Manning, ReLU 2x64)", "<= 3 s"),
        ("many_series", f"{args.series:,} series x {args.days} days (linear)", "<= 15 s"),
    ):
        r = results[key]
        runs = ", ".join(f"{t:.2f}" for t in r["runs_s"])
        print(f"| {label} | {r['rows']:,} | {r['median_s']:.2f} s ({runs}) | {target} |")
    print(f"\nimports alone (mlflow, pandas, pyarrow, pipeline.cli): {results['imports_s']:.2f} s")


if __name__ == "__main__":
    main()
