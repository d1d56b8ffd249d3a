"""Stacked sweeps against one configuration at a time: wall time, the same models, and seeds.

For each data set: a fresh workspace, the export ingested, then `viewcast sweep --grid GRID`
(default: bench/grid-sweep.toml, 120 configurations that the sweep before stacks reads too, so
every mode trains the same models; `--grid default` for today's default grid) timed end to end
in a subprocess (Python start, MLflow, training, logging): once stacked (the default), once with
`--no-stack` (one configuration at a time, as before stacks), once stacked with `--seeds 10`
(ten members a configuration), and once with the sweep of the `--before` commit. Then every
configuration's val MAE is compared between the first two, and the champions (best val MAE)
named.

    .venv/bin/python bench/bench_sweep.py              # both sets, ~15 minutes on 2 cores
    .venv/bin/python bench/bench_sweep.py --sets codingtrain --seeds 0
    .venv/bin/python bench/bench_sweep.py --grid default --before ''   # today's grid
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
LAST_OUTPUT: list[str] = []  # the last line each command printed (the sweep's time split)


def export(name: str, folder: Path) -> Path:
    """The benchmark's exports: the Coding Train (365 days), Peyton Manning's last 1,500 days."""
    if name == "codingtrain":
        return ROOT / "data" / "raw" / "codingtrain-2021" / "Totals.csv"
    lines = (ROOT / "data" / "raw" / "wikipedia-peyton-manning" / "views.csv").read_text()
    lines = lines.splitlines()
    path = folder / "peyton-1500.csv"
    path.write_text("\n".join([lines[0], *lines[-1500:]]) + "\n")
    return path


def viewcast(home: Path, *args: str, source: Path | None = None) -> float:
    """One `viewcast` command in a subprocess (of the package in `source`, when given: an older
    checkout); its wall time in seconds."""
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=source or ROOT,  # `-m` puts the working folder first on the path
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    LAST_OUTPUT.append(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    return time.perf_counter() - start


def val_maes(home: Path) -> dict[str, tuple[str, float]]:
    """config key -> (run name, val MAE) of the workspace's sweep."""
    from pipeline import tracking
    from pipeline.data.workspace import Paths

    ws = Paths(home)
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    return {r.tags["config_key"]: (r.name, r.metrics["val_mae"]) for r in runs}


GRID = str(ROOT / "bench" / "grid-sweep.toml")


def one_set(name: str, seeds: int, folder: Path, before: Path | None, grid: str) -> dict:
    csv = export(name, folder)
    row: dict = {"set": name}
    homes = {}
    modes = [("stacked", [], None), ("alone", ["--no-stack"], None)]
    modes += [("seeds", ["--seeds", str(seeds)], None)] if seeds else []
    modes += [("before", [], before)] if before else []
    for mode, args, source in modes:
        home = folder / f"{name}-{mode}"
        named = ["--name", name] if source is None else []  # the old ingest names by file
        viewcast(home, "ingest", str(csv), *named, source=source)
        row[f"{mode}_s"] = viewcast(home, "sweep", "--grid", grid, *args, source=source)
        row[f"{mode}_log"] = LAST_OUTPUT[-1]
        homes[mode] = home
        print(json.dumps({name: {mode: round(row[f"{mode}_s"], 1)}}), flush=True)
    stacked, alone = val_maes(homes["stacked"]), val_maes(homes["alone"])
    gaps = [abs(stacked[k][1] - v) / v for k, (_, v) in alone.items()]
    row["configs"] = len(alone)
    row["max_val_gap"] = max(gaps)
    row["within_2pct"] = sum(g <= 0.02 for g in gaps)
    row["champion_stacked"] = min(stacked.values(), key=lambda nv: nv[1])
    row["champion_alone"] = min(alone.values(), key=lambda nv: nv[1])
    if "seeds" in homes:
        bagged = val_maes(homes["seeds"])
        row["champion_seeds"] = min(bagged.values(), key=lambda nv: nv[1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="codingtrain,peyton-1500")
    parser.add_argument("--grid", default=GRID, help="default, or a TOML grid (all modes)")
    parser.add_argument("--seeds", type=int, default=10, help="0 skips the bagged sweep")
    parser.add_argument(
        "--before", default="6abeff4", help="git revision of the sweep before stacks ('' skips)"
    )
    parser.add_argument("--table", action="store_true", help="print the last run's table only")
    args = parser.parse_args()
    if args.table:
        table(json.loads((OUT / "sweep.json").read_text()), args.seeds)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = None
        if args.before:
            before = Path(tmp) / "before"
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "add", "--detach", str(before), args.before], check=True)
        try:
            for name in args.sets.split(","):
                rows.append(one_set(name, args.seeds, Path(tmp), before, args.grid))
        finally:
            if before is not None:
                subprocess.run([*git, "remove", "--force", str(before)], check=False)
    (OUT / "sweep.json").write_text(json.dumps(rows, indent=1))
    table(rows, args.seeds)


def table(rows: list[dict], seeds: int) -> None:
    """The Markdown table of bench/README.md (times end to end: process start to exit)."""
    print(
        f"\n| set | before stacks | --no-stack | stacked | stacked vs before / vs --no-stack | "
        f"--seeds {seeds} stacked (/ before) | val MAE within 2% | largest gap | champion |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        old = r.get("before_s", math.nan)
        bag = f"{r['seeds_s']:.1f} s ({r['seeds_s'] / old:.2f}x)" if "seeds_s" in r else "-"
        same = "same" if r["champion_stacked"][0] == r["champion_alone"][0] else "differs"
        print(
            f"| {r['set']} | {old:.1f} s | {r['alone_s']:.1f} s | {r['stacked_s']:.1f} s | "
            f"{old / r['stacked_s']:.1f}x / {r['alone_s'] / r['stacked_s']:.1f}x | {bag} | "
            f"{r['within_2pct']}/{r['configs']} | {100 * r['max_val_gap']:.2f}% | "
            f"{r['champion_stacked'][0]} ({same}) |"
        )
    for r in rows:
        print(f"\n{r['set']}: stacked {r['stacked_log']}; --no-stack {r['alone_log']}")


if __name__ == "__main__":
    main()
