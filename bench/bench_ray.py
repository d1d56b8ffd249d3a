"""Ray engine: the same sweep on a local Ray cluster with 1 and with 2 worker CPUs (issue 13).

    python bench/bench_ray.py [--grid default] [--seeds 1]

For each demo set (the Coding Train totals, the last 1,500 days of Peyton Manning) the sweep runs
three times from the same ingested workspace: `--engine local` (this process, torch on every
core), then `--engine ray` against `ray start --head --num-cpus=1` and `--num-cpus=2` on
127.0.0.1 (one task per CPU, each worker's torch on one thread). Wall time is the `viewcast sweep`
command's (MLflow logging on the driver included); the champion and every val MAE are compared
with the local sweep's. Results: bench/out/ray-seeds<K>.json and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RAY = str(Path(sys.executable).parent / "ray")
ENV = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}
SETS = {
    "codingtrain-2021": (ROOT / "data/raw/codingtrain-2021/Totals.csv", None),
    "peyton-manning-1500": (ROOT / "data/raw/wikipedia-peyton-manning/views.csv", 1500),
}


def viewcast(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--home", str(home), *args],
        env=ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def val_maes(home: Path) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from pipeline import tracking
    from pipeline.data.workspace import Paths

    ws = Paths(home)
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    return {r.name: r.metrics["val_mae"] for r in runs}


def timed_sweep(home: Path, grid: str, seeds: int, *engine: str) -> dict:
    started = time.perf_counter()
    out = viewcast(home, "sweep", "--grid", grid, "--seeds", str(seeds), *engine, "--json")
    seconds = time.perf_counter() - started
    report = json.loads(out[out.index("{") :])
    maes = val_maes(home)
    keys = ("seconds", "train_seconds", "log_seconds", "plot_seconds")
    spent = {f"sweep_{k}" if k == "seconds" else k: round(report[k], 1) for k in keys}
    return {"seconds": round(seconds, 1), "ran": report["ran"], "val_mae": maes} | spent


def prepared(root: Path, name: str) -> Path:
    """A workspace with the set ingested, copied per run (each sweep starts from scratch)."""
    csv, tail = SETS[name]
    home = root / f"{name}-base"
    home.mkdir(parents=True)
    if tail:
        import pandas as pd

        frame = pd.read_csv(csv)
        csv = root / f"{name}.csv"
        frame.tail(tail).to_csv(csv, index=False)
    viewcast(home, "ingest", str(csv), "--name", name)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import clone_workspace  # the same copy the tests make (MLflow paths rewritten)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.sets.split(","):
            base = prepared(root, name)
            rows = {}
            for label, cpus in (("local", 0), ("ray, 1 CPU", 1), ("ray, 2 CPUs", 2)):
                (root / f"{name}-{cpus}").mkdir()
                home = clone_workspace(base, root / f"{name}-{cpus}" / "ws")
                if not cpus:
                    rows[label] = timed_sweep(home, args.grid, args.seeds)
                    print(json.dumps({name: {label: rows[label]["seconds"]}}), flush=True)
                    continue
                port = free_port()
                start = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
                start += [f"--num-cpus={cpus}", "--include-dashboard=false"]
                subprocess.run([*start, "--disable-usage-stats"], env=ENV, check=True,
                               capture_output=True)  # fmt: skip
                try:
                    engine = ("--engine", "ray", "--address", f"127.0.0.1:{port}")
                    rows[label] = timed_sweep(home, args.grid, args.seeds, *engine)
                finally:
                    subprocess.run([RAY, "stop"], env=ENV, capture_output=True)
                print(json.dumps({name: {label: rows[label]["seconds"]}}), flush=True)
            local = rows["local"]["val_mae"]
            for row in rows.values():
                maes = row.pop("val_mae")
                row["max_rel_gap"] = max(abs(maes[k] - v) / v for k, v in local.items())
                row["champion"] = min(maes, key=maes.get)
            results[name] = rows
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"ray-seeds{args.seeds}.json").write_text(json.dumps(results, indent=1))
    print(f"\n`viewcast sweep --grid {args.grid} --seeds {args.seeds}`, wall seconds\n")
    print(
        "| set | engine | configurations | command s | sweep s | sweep vs 1 CPU | waiting for "
        "training s | MLflow logging s | champion | max val MAE gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        one = rows["ray, 1 CPU"]["sweep_seconds"]
        for label, row in rows.items():
            print(
                f"| {name} | {label} | {row['ran']} | {row['seconds']:.1f} | "
                f"{row['sweep_seconds']:.1f} | {one / row['sweep_seconds']:.2f}x | "
                f"{row['train_seconds']:.1f} | {row['log_seconds']:.1f} | {row['champion']} | "
                f"{row['max_rel_gap']:.1e} |"
            )


if __name__ == "__main__":
    main()
