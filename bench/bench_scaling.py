"""Robust scaling (issue 12's lever), on validation only: window mean vs window median vs the
last week's mean, the same structures trained three ways on each demo set.

    python bench/bench_scaling.py

For each set (Coding Train, Whole Brain Health, Peyton Manning's last 1,500 days and all of its
days) a fresh workspace sweeps one TOML grid: lags 7 and 28 x linear, ReLU 1x64 and ReLU 2x64,
log1p, Adam 3e-3, 600 epochs, patience 60 (the default grid's settings) x the three scalings
(stacked: one stack per structure). Reported: each run's val MAE, and per set how often each
scaling is the best of the three for a structure (ties count for each: with 7 lags the last
week is the whole window) and its mean ratio to window-mean. The test days are never read.
Results: bench/out/scaling.json and Markdown on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
SCALINGS = ("window-mean", "window-median", "last-week-mean")
GRID = """
[base]
target_transform = "log1p"
optimizer = "adam"
lr = 0.003
epochs = 600
patience = 60
width = 64
[grid]
lags = [7, 28]
model = ["linear", "relu"]
layers = [1, 2]
scaling = ["window-mean", "window-median", "last-week-mean"]
"""
SETS = {
    "codingtrain": (RAW / "codingtrain-2021" / "Totals.csv", None),
    "wholebrainhealth": (RAW / "wholebrainhealth" / "Totals.csv", None),
    "peyton-manning-1500": (RAW / "wikipedia-peyton-manning" / "views.csv", 1500),
    "peyton-manning": (RAW / "wikipedia-peyton-manning" / "views.csv", None),
}


def viewcast(home: Path, *args: str) -> None:
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "pipeline", "--home", str(home), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)}: {done.stderr[-2000:]}")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from pipeline import tracking
    from pipeline.config import Workspace

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "scaling.toml"
        grid.write_text(GRID)
        for name, (csv, tail) in SETS.items():
            home = Path(tmp) / name
            home.mkdir()
            if tail:
                lines = csv.read_text().splitlines()
                csv = Path(tmp) / f"{name}.csv"
                csv.write_text("\n".join([lines[0], *lines[-tail:]]) + "\n")
            viewcast(home, "ingest", str(csv), "--name", name)
            viewcast(home, "sweep", "--grid", str(grid))
            ws = Workspace(home)
            runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
            by = {}
            for run in runs:
                if run.params.get("model.scaling") not in SCALINGS:
                    continue
                p = run.params
                structure = f"{p['model.model']}-{p['model.layers']}x-lags{p['model.lags']}"
                structure = structure.replace("linear-3x", "linear")  # canonical layers
                by.setdefault(structure, {})[p["model.scaling"]] = run.metrics["val_mae"]
            results[name] = by
            print(json.dumps({name: by}), flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=1))
    print("\n| set | scaling | best of the three (structures) | mean val MAE / window-mean |")
    print("|---|---|---|---|")
    for name, by in results.items():
        for s in SCALINGS:
            wins = sum(v[s] == min(v.values()) for v in by.values())  # a tie counts for each
            ratio = statistics.fmean(v[s] / v["window-mean"] for v in by.values())
            print(f"| {name} | {s} | {wins} of {len(by)} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
