"""Issue 12's levers on validation only: the same structures trained with and without a lever.

    python bench/bench_levers.py --lever scaling     # window mean vs median vs last week's mean
    python bench/bench_levers.py --lever calendar    # the weekday as input, or not
    python bench/bench_levers.py --lever loss        # MAE in log space vs Huber vs MSE
    python bench/bench_levers.py --lever calendar --only codingtrain --only kaggle-01

For each set of bench_accuracy.py (the four demo sets and the 10 Kaggle pages one by one) a fresh
workspace sweeps one TOML grid: lags 7 and 28 x linear, ReLU 1x64 and ReLU 2x64, log1p, window
mean scaling, Adam 3e-3, 600 epochs, patience 60 (the default grid's settings) x the lever's
values (stacked: one stack per structure). Reported: each run's val MAE, and per set how often
each value is the best for a structure (ties count for each: with 7 lags the last week is the
whole window) and its mean ratio to the first value. The test days are never read.
Results: bench/out/<lever>.json and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_accuracy import SETS, geomean, set_file

LEVERS = {  # lever -> (the run's param holding it, its values: the default first)
    "scaling": ("model.scaling", ("window-mean", "window-median", "last-week-mean")),
    "calendar": ("model.calendar", ("none", "weekday")),
    "loss": ("train.loss", ("mae", "huber", "mse")),
}
GRID = """
[base]
target_transform = "log1p"
scaling = "window-mean"
optimizer = "adam"
lr = 0.003
epochs = 600
patience = 60
width = 64
[grid]
lags = [7, 28]
model = ["linear", "relu"]
layers = [1, 2]
{field} = {values}
"""


def viewcast(home: Path, *args: str) -> None:
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "pipeline", "--home", str(home), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)}: {done.stderr[-2000:]}")


def one_set(name: str, param: str, values: tuple[str, ...], tmp: Path) -> dict:
    """Structure -> lever value -> val MAE, from a fresh workspace's sweep."""
    field = param.split(".")[1]
    from pipeline import tracking
    from pipeline.data.workspace import Paths

    grid = tmp / "lever.toml"
    grid.write_text(GRID.format(field=field, values=json.dumps(list(values))))
    home = tmp / name
    home.mkdir()
    csv, _ = set_file(name, tmp)
    viewcast(home, "ingest", str(csv), "--name", name)
    viewcast(home, "sweep", "--grid", str(grid))
    ws = Paths(home)
    by: dict[str, dict[str, float]] = {}
    for run in tracking.sweep_children(ws, tracking.latest_sweep(ws)):
        p = run.params
        if p.get(param, values[0]) not in values or run.baseline:
            continue
        structure = f"{p['model.model']}-{p['model.layers']}x-lags{p['model.lags']}"
        structure = structure.replace("linear-3x", "linear")  # canonical layers
        by.setdefault(structure, {})[p.get(param, values[0])] = run.metrics["val_mae"]
    return by


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lever", choices=list(LEVERS), required=True)
    parser.add_argument("--only", action="append", choices=list(SETS))
    args = parser.parse_args()
    param, values = LEVERS[args.lever]
    field = param.split(".")[1]
    results = {}
    for name in SETS:
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = one_set(name, param, values, Path(tmp))
        print(json.dumps({name: results[name]}), flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.lever}.json").write_text(json.dumps(results, indent=1))
    base = values[0]
    print(f"\n| set | {field} | best of the {len(values)} (structures) | mean val MAE / {base} |")
    print("|---|---|---|---|")
    overall: dict[str, list[float]] = {v: [] for v in values}
    for name, by in results.items():
        for v in values:
            wins = sum(r[v] == min(r.values()) for r in by.values())  # a tie counts for each
            ratios = [r[v] / r[base] for r in by.values()]
            overall[v] += ratios
            print(f"| {name} | {v} | {wins} of {len(by)} | {statistics.fmean(ratios):.3f} |")
    for v, ratios in overall.items():
        geo = geomean(ratios)
        better = sum(r < 1 for r in ratios)
        print(
            f"{v}: geometric mean {geo:.3f} of {base} over {len(ratios)} (set, structure) pairs; "
            f"lower on {better}"
        )


if __name__ == "__main__":
    main()
