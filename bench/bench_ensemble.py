"""Which ensemble generalises: greedy vs the top-K mean vs the best run, on validation days alone.

    python bench/bench_ensemble.py [--folds 3] [--seeds 1] [--max-minutes 10] [--only codingtrain]

For each set of bench_accuracy.py, in a fresh workspace: ingest, features and the default-grid
sweep with `--folds K`, so that every configuration keeps its forecasts of K rolling-origin
validation windows (oof.npz). Then, nested, so that no method sees the days it is judged on:
each method chooses on the older folds 2..K only, and is scored on fold 1 (the standard
validation window, the days just before the sealed test, never read here):
- best: the run with the lowest mean MAE over folds 2..K;
- top5: the mean of the 5 best runs on folds 2..K (`select --ensemble-method top`);
- greedy: forward selection with replacement on folds 2..K (`select --ensemble-method greedy`).
Fold 1's MAE of each, and its ratio to `best`; the same three from the network runs alone
(without the hgb family's trees), so the table says what trees add. With `--seeds S` every
configuration is the mean of S seeds (bagging), so two runs, S = 1 and S > 1, say what bagging
adds. Results: bench/out/ensemble-folds<K>[-seeds<S>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import SETS, geomean, set_file

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.search import ensembles

OUT = Path(__file__).resolve().parent / "out"
TOP = 5


def viewcast(home: Path, *args: str) -> None:
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def methods(home: Path, nets_only: bool = False) -> dict[str, float]:
    """Fold 1's MAE of each method, each chosen on folds 2..K (`nets_only`: from the sweep's
    network runs alone, without the hgb family's)."""
    ws = Paths(home)
    runs = [
        r
        for r in tracking.sweep_children(ws, tracking.latest_sweep(ws))
        if not r.baseline and "val_mae" in r.metrics
    ]
    if nets_only:
        runs = [r for r in runs if r.params.get("model.model") != "hgb"]
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
    parser.add_argument("--grid", default="default", help="the sweep's grid")
    parser.add_argument("--seeds", type=int, default=1, help="bag every configuration")
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
                home,
                "sweep",
                "--grid",
                args.grid,
                "--folds",
                str(args.folds),
                "--max-minutes",
                str(args.max_minutes),
                "--seeds",
                str(args.seeds),
            )
            results[name] = methods(home)
            results[name]["nets_only"] = methods(home, nets_only=True)
        print(json.dumps({name: results[name]}), flush=True)
    bagged = f"-seeds{args.seeds}" if args.seeds > 1 else ""
    (OUT / f"ensemble-folds{args.folds}{bagged}.json").write_text(json.dumps(results, indent=1))
    print(
        "\n| set | runs | best (fold 1 MAE) | top5 / best | greedy / best | greedy members "
        "| nets only: best / best | top5 / best | greedy / best |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {
        k: [] for k in ("top5", "greedy", "nets best", "nets top5", "nets greedy")
    }
    for name, r in results.items():
        nets = r["nets_only"]
        row = {
            "top5": r["top5"] / r["best"],
            "greedy": r["greedy"] / r["best"],
            "nets best": nets["best"] / r["best"],
            "nets top5": nets["top5"] / r["best"],
            "nets greedy": nets["greedy"] / r["best"],
        }
        for m, v in row.items():
            ratios[m].append(v)
        print(
            f"| {name} | {r['runs']} | {r['best']:,.1f} | {row['top5']:.3f} | "
            f"{row['greedy']:.3f} | {r['greedy_members']} | {row['nets best']:.3f} | "
            f"{row['nets top5']:.3f} | {row['nets greedy']:.3f} |"
        )
    for m, values in ratios.items():
        geo = geomean(values)
        wins = sum(v < 1 for v in values)
        print(
            f"{m}: geometric mean {geo:.3f} of the best run (all families); "
            f"lower on {wins}/{len(values)}"
        )


if __name__ == "__main__":
    main()
