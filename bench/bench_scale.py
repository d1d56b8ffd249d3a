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

Results: bench/out/scale.json and Markdown on stdout.
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
    from pipeline.config import Workspace

    tracking.register_alias(Workspace(home), trained["run_id"], "champion", {})
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


if __name__ == "__main__":
    main()
