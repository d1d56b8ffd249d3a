"""Which ensemble generalises: greedy vs the top-K mean vs the best run, on validation days alone.

    python bench/bench_ensemble.py [--folds 3] [--max-minutes 10] [--only codingtrain]

For each set of bench_accuracy.py, in a fresh workspace: ingest, features and the default-grid
sweep with `--folds K`, so that every configuration keeps its forecasts of K rolling-origin
validation windows (oof.npz). Then, nested, so that no method sees the days it is judged on:
each method chooses on the older folds 2..K only, and is scored on fold 1 (the standard
validation window, the days just before the sealed test, never read here):
- best: the run with the lowest mean MAE over folds 2..K;
- top5: the mean of the 5 best runs on folds 2..K (`select --ensemble-method top`);
- greedy: forward selection with replacement on folds 2..K (`select --ensemble-method greedy`).
Fold 1's MAE of each, and its ratio to `best`. Results: bench/out/ensemble-folds<K>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import SETS, set_file

from pipeline import ensembles, tracking
from pipeline.config import Workspace
from pipeline.store import Store

OUT = Path(__file__).resolve().parent / "out"
TOP = 5


def viewcast(home: Path, *args: str) -> None:
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def methods(home: Path) -> dict[str, float]:
    """Fold 1's MAE of each method, each chosen on folds 2..K."""
    ws = Workspace(home)
    runs = [
        r
        for r in tracking.sweep_children(ws, tracking.latest_sweep(ws))
        if not r.baseline and "val_mae" in r.metrics
    ]
    kept = []
    for run in runs:
        found = ensembles.Forecasts.read(tracking.model_folder(ws, run.run_id) / "oof.npz")
        if found is not None:
            kept.append(found)
    target, fold, preds = ensembles.aligned(kept)
    y = Store(ws).read_dev().views[target]
    old, new = fold > 1, fold == 1
    weight = ensembles.fold_weights(fold[old])
    older = np.array([ensembles.error(p[old], y[old], weight) for p in preds])
    order = np.argsort(older, kind="stable")

    def judged(pred: np.ndarray) -> float:
        return float(np.abs(pred[new] - y[new]).mean())

    counts = ensembles.greedy(preds[:, old][order[: ensembles.POOL]], y[old], weight)
    greedy = counts @ preds[order[: ensembles.POOL]] / counts.sum()
    return {
        "runs": len(kept),
        "best": judged(preds[order[0]]),
        "top5": judged(preds[order[:TOP]].mean(axis=0)),
        "greedy": judged(greedy),
        "greedy_members": int((counts > 0).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--only", action="append", choices=list(SETS))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in SETS:
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            csv, _ = set_file(name, home)
            named = home / f"{name}.csv"
            named.write_bytes(csv.read_bytes())
            viewcast(home, "ingest", str(named))
            viewcast(home, "features")
            viewcast(
                home, "sweep", "--folds", str(args.folds), "--max-minutes", str(args.max_minutes)
            )
            results[name] = methods(home)
        print(json.dumps({name: results[name]}), flush=True)
    (OUT / f"ensemble-folds{args.folds}.json").write_text(json.dumps(results, indent=1))
    print("\n| set | runs | best (fold 1 MAE) | top5 / best | greedy / best | greedy members |")
    print("|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {"top5": [], "greedy": []}
    for name, r in results.items():
        for m in ratios:
            ratios[m].append(r[m] / r["best"])
        print(
            f"| {name} | {r['runs']} | {r['best']:,.1f} | {r['top5'] / r['best']:.3f} | "
            f"{r['greedy'] / r['best']:.3f} | {r['greedy_members']} |"
        )
    for m, values in ratios.items():
        geo = math.exp(sum(math.log(v) for v in values) / len(values))
        wins = sum(v < 1 for v in values)
        print(f"{m}: geometric mean {geo:.3f} of best; better than best on {wins}/{len(values)}")


if __name__ == "__main__":
    main()
