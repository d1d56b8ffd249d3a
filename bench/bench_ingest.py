"""Ingest and lag-window benchmark: viewcast vs mlforecast's preprocess on the same synthetic panel.

    python bench/bench_ingest.py [--series 10000] [--days 1500] [--peer-series N]

Each step runs in its own process, so its wall time and peak memory (ru_maxrss) are its own:
1. `viewcast ingest` of a long CSV (series_id,date,views) into a fresh workspace, end to end;
2. building the 56-day windows of the dev days (read dev.parquet, the zero-copy views, row labels),
   and, for a like-for-like figure, gathering them into one float32 matrix;
3. mlforecast `preprocess` with lags 1..56 on the same dev days (it materialises a DataFrame).
Results go to bench/out/ingest.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
SEED = 2026


def generate(path: Path, n_series: int, n_days: int) -> None:
    """A seeded long CSV: weekly cycle, trend, noise and rare spikes, per series level."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(SEED)
    t = np.arange(n_days)
    dates = np.datetime64("2020-01-01") + t
    date_text = pa.array(dates.astype(str))
    writer = None
    for lo in range(0, n_series, 1000):
        k = min(1000, n_series - lo)
        level = rng.lognormal(6, 1.5, (k, 1))
        weekly = 1 + rng.uniform(0.05, 0.4, (k, 1)) * np.sin(
            2 * np.pi * (t + rng.integers(0, 7, (k, 1))) / 7
        )
        trend = 1 + rng.uniform(-0.5, 1.0, (k, 1)) * t / n_days
        spikes = np.where(rng.random((k, n_days)) < 0.01, rng.uniform(2, 8, (k, n_days)), 1.0)
        views = np.round(level * weekly * trend * spikes * rng.lognormal(0, 0.15, (k, n_days)))
        ids = np.repeat(np.array([f"s{lo + i:05d}" for i in range(k)]), n_days)
        table = pa.table(
            {
                "series_id": pa.array(ids),
                "date": pa.chunked_array([date_text] * k),
                "views": pa.array(views.reshape(-1).astype(np.int64)),
            }
        )
        if writer is None:
            writer = pacsv.CSVWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def step_ingest(csv: Path, home: Path) -> dict:
    from pipeline.cli import app

    start = time.perf_counter()
    app(["--home", str(home), "ingest", str(csv)], standalone_mode=False)
    return {"seconds": time.perf_counter() - start}


def step_windows(home: Path) -> dict:
    from pipeline.data import features as feats
    from pipeline.data.workspace import Paths

    start = time.perf_counter()
    windows = feats.build(Paths(home), feats.FeatureSpec((56,)))[56]
    built = time.perf_counter() - start
    peak_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    start = time.perf_counter()
    x = np.empty((len(windows), 56), np.float32)
    for lo in range(0, len(windows), 1_000_000):  # chunked gather: no float64 intermediate
        rows = np.arange(lo, min(lo + 1_000_000, len(windows)))
        x[rows] = windows.x(rows)
    gathered = time.perf_counter() - start
    return {
        "seconds": built,
        "rows": len(windows),
        "peak_gb_views": peak_built,
        "gather_float32_seconds": gathered,
    }


def step_mlforecast(home: Path, peer_series: int | None) -> dict:
    import pandas as pd
    from mlforecast import MLForecast

    from pipeline.data.store import Store
    from pipeline.data.workspace import Paths

    dev = Store(Paths(home)).read_dev()
    keep = dev.code < peer_series if peer_series else np.ones(len(dev), bool)
    frame = pd.DataFrame(
        {
            "unique_id": dev.names[dev.code[keep]].astype(str),
            "ds": dev.day[keep].astype("datetime64[D]").astype("datetime64[ns]"),
            "y": dev.views[keep],
        }
    )
    fcst = MLForecast(models=[], freq="D", lags=list(range(1, 57)), num_threads=2)
    start = time.perf_counter()
    out = fcst.preprocess(frame, dropna=True)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rows": len(out),
        "series": int(keep.sum() and len(np.unique(dev.code[keep]))),
    }


def run_step(name: str, *args: str) -> dict:
    """Run one step in a fresh interpreter; return its result plus peak memory in GB."""
    proc = subprocess.run(
        [sys.executable, __file__, "--step", name, *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=1_500)
    parser.add_argument("--peer-series", type=int, default=None, help="mlforecast on fewer series")
    parser.add_argument("--step", default=None)
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    if opts.step:
        result = {
            "ingest": lambda: step_ingest(Path(opts.args[0]), Path(opts.args[1])),
            "windows": lambda: step_windows(Path(opts.args[0])),
            "mlforecast": lambda: step_mlforecast(
                Path(opts.args[0]), int(opts.args[1]) if len(opts.args) > 1 else None
            ),
        }[opts.step]()
        result["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(json.dumps(result))
        return

    OUT.mkdir(exist_ok=True)
    csv = OUT / f"synthetic_{opts.series}x{opts.days}.csv"
    if not csv.exists():
        start = time.perf_counter()
        generate(csv, opts.series, opts.days)
        print(
            f"generated {csv} ({csv.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - start:.0f} s"
        )
    home = OUT / "ws"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    results = {"series": opts.series, "days": opts.days, "rows": opts.series * opts.days}
    results["ingest"] = run_step("ingest", str(csv), str(home))
    results["windows"] = run_step("windows", str(home))
    peer = [str(opts.peer_series)] if opts.peer_series else []
    results["mlforecast"] = run_step("mlforecast", str(home), *peer)
    vc, mf = results["windows"], results["mlforecast"]
    per_row = (mf["seconds"] / mf["rows"]) / (vc["seconds"] / vc["rows"])
    per_row_gathered = (mf["seconds"] / mf["rows"]) / (
        (vc["seconds"] + vc["gather_float32_seconds"]) / vc["rows"]
    )
    results["ratio_views"] = per_row
    results["ratio_gathered"] = per_row_gathered
    (OUT / "ingest.json").write_text(json.dumps(results, indent=1))
    print(
        f"| step | rows | seconds | peak memory |\n|---|---|---|---|\n"
        f"| viewcast ingest (CLI, end to end) | {results['rows']:,} | "
        f"{results['ingest']['seconds']:.1f} | {results['ingest']['peak_gb']:.2f} GB |\n"
        f"| viewcast 56-day windows (zero-copy views) | {vc['rows']:,} | {vc['seconds']:.2f} | "
        f"{vc['peak_gb_views']:.2f} GB |\n"
        f"| ... then gathered into one float32 matrix | {vc['rows']:,} | "
        f"+{vc['gather_float32_seconds']:.2f} | {vc['peak_gb']:.2f} GB |\n"
        f"| mlforecast preprocess, lags 1..56 | {mf['rows']:,} | {mf['seconds']:.1f} | "
        f"{mf['peak_gb']:.2f} GB |\n\n"
        f"mlforecast / viewcast time per row: {per_row:.0f}x (views), "
        f"{per_row_gathered:.1f}x (views gathered into float32)"
    )


if __name__ == "__main__":
    main()
