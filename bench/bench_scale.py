"""Kaggle scale: the Web Traffic competition's shape (145,063 pages x 803 days) on one machine.

    python bench/bench_scale.py [--pages 145063] [--days 803] [--rows-per-epoch 10000000]
                                [--panel /tmp/train_2.csv] [--home /tmp/scale-ws]

Each stage runs as a fresh `viewcast` process, as a user would run it; wall time and peak
resident memory (the child's ru_maxrss) are measured around it:

1. the panel (bench/make_panel.py, seeded), written once and reused;
2. `viewcast ingest PANEL --format kaggle-wide` (streamed in blocks);
3. `viewcast features` (the default windows 1, 7, 28 and 56: row counts only);
4. one epoch of a 3x100 ReLU global model over all pages: `viewcast train --rows-per-epoch N
   --batch-size 65536 --epochs 1` (N windows drawn from ~80M, gathered batch by batch; every
   validation window scored, in chunks), the training's own seconds from its --json;
5. the trained run registered as champion, then `viewcast forecast` for every page (the CSV,
   intervals per page, the picture, the MLflow run), twice: the median is reported.

With `--run MINUTES` instead: `viewcast run PANEL --max-minutes MINUTES` in a fresh workspace
(ingest, features, the sweep of `default`, which turns into `panel` at this size, select,
submit, finalize), its champion's and baselines' test MAE and SMAPE from reports/final.json,
then `viewcast forecast` twice with that champion (first and again).

Results: bench/out/scale.json (scale-run.json with --run) and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def measured(home: Path, *args: str) -> dict:
    """Run one stage with GNU time's accounting: wall seconds and its own peak memory."""
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    report = home.parent / f".{home.name}-time.txt"
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(report), sys.executable, "-m", "pipeline", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(
            f"viewcast {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    peak_kb = int(report.read_text().split()[-1])
    return {
        "seconds": round(seconds, 1),
        "peak_gb": round(peak_kb / 2**20, 2),
        "stdout": done.stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=145_063)
    parser.add_argument("--days", type=int, default=803)
    parser.add_argument("--rows-per-epoch", type=int, default=10_000_000)
    parser.add_argument("--panel", type=Path, default=Path("/tmp/train_2.csv"))
    parser.add_argument("--home", type=Path, default=Path("/tmp/viewcast-scale"))
    parser.add_argument("--run", type=float, default=None, help="viewcast run --max-minutes")
    args = parser.parse_args()

    from make_panel import write_panel

    results: dict = {"pages": args.pages, "days": args.days, "rows_per_epoch": args.rows_per_epoch}
    if not args.panel.exists():
        start = time.perf_counter()
        write_panel(args.panel, pages=args.pages, days=args.days, seed=0)
        results["panel_seconds"] = round(time.perf_counter() - start, 1)
    results["panel_mib"] = round(args.panel.stat().st_size / 2**20, 1)
    if args.home.exists():
        raise SystemExit(f"{args.home} exists: give a new --home")
    home = args.home
    home.mkdir(parents=True)
    if args.run is not None:
        whole_run(home, args.panel, args.run, results)
        return

    stages = {}
    stages["ingest"] = measured(
        home, "ingest", str(args.panel), "--format", "kaggle-wide", "--json"
    )
    stages["features"] = measured(home, "features")
    train = measured(
        home,
        "train",
        *("--lags", "56", "--layers", "3", "--width", "100", "--epochs", "1"),
        *("--batch-size", "65536", "--rows-per-epoch", str(args.rows_per_epoch)),
        *("--target-transform", "log1p", "--scaling", "window-mean", "--json"),
    )
    trained = json.loads(train["stdout"])
    train |= {"train_seconds": trained["seconds"]} | {
        k: trained[k] for k in ("run_id", "train_mae", "val_mae")
    }
    stages["train one epoch"] = train

    from pipeline import tracking
    from pipeline.data.workspace import Paths

    tracking.register_alias(Paths(home), trained["run_id"], "champion", {})
    runs = sorted(
        (measured(home, "forecast", "--force") for _ in range(2)), key=lambda r: r["seconds"]
    )
    stages["forecast"] = runs[0] | {"seconds_all": [r["seconds"] for r in runs]}
    written = max((home / "data" / "forecasts").glob("*.csv"), key=lambda p: p.stat().st_mtime)
    with written.open() as lines:
        stages["forecast"]["rows"] = sum(1 for _ in lines) - 1

    for stage in stages.values():
        stage.pop("stdout", None)
    results["stages"] = stages
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(results, indent=1))
    print(f"\n{args.pages:,} pages x {args.days} days ({results['panel_mib']} MiB)\n")
    print("| stage | seconds | peak GB | notes |")
    print("|---|---|---|---|")
    for name, s in stages.items():
        note = ""
        if name == "train one epoch":
            note = (
                f"training {s['train_seconds']:.1f} s of it; val MAE {s['val_mae']:,.1f}, "
                f"train MAE {s['train_mae']:,.1f}"
            )
        if name == "forecast":
            note = f"{s['rows']:,} rows; runs: {s['seconds_all']}"
        print(f"| {name} | {s['seconds']:.1f} | {s['peak_gb']:.2f} | {note} |")


def whole_run(home: Path, panel: Path, minutes: float, results: dict) -> None:
    """`viewcast run` end to end on the panel, then two forecasts with its champion."""
    run = measured(home, "run", str(panel), "--max-minutes", str(minutes), "--json")
    final = json.loads((home / "reports" / "final.json").read_text())
    scores = {"champion": final["champion"]} | final["baselines"]
    test = {
        name: {k: round(s[k], 3) for k in ("test_mae", "test_smape")} for name, s in scores.items()
    }
    forecasts = [measured(home, "forecast", "--force") for _ in range(2)]
    for stage in (run, *forecasts):
        stage.pop("stdout", None)
    results |= {"run": run, "champion": final["champion"]["name"], "test": test}
    results["forecasts"] = forecasts
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale-run.json").write_text(json.dumps(results, indent=1))
    print(f"\n`viewcast run --max-minutes {minutes:g}`: {run['seconds']:.1f} s, "
          f"{run['peak_gb']:.2f} GB; champion {results['champion']}\n")  # fmt: skip
    print("| model | test MAE | test SMAPE |\n|---|---|---|")
    for name, t in test.items():
        print(f"| {name} | {t['test_mae']:,.1f} | {t['test_smape']:.2f} |")
    print("\n| forecast | seconds | peak GB |\n|---|---|---|")
    for label, f in zip(("first", "again"), forecasts, strict=True):
        print(f"| {label} | {f['seconds']:.1f} | {f['peak_gb']:.2f} |")


if __name__ == "__main__":
    main()
