"""GPU checks, one script for the lent machine (no MLflow needed there):

    PYTHONPATH=. python bench/bench_gpu.py [--epochs 200] [--global-rows 1000000] [--out DIR]

1. The lecture's batch-size study (L5) exactly as `viewcast experiment lecture` runs it: one ReLU
   layer of 100 on the 56-day windows of Peyton Manning's views, Adam 1e-3, full batch, 256 and 32,
   on the CPU and on CUDA: seconds per epoch (after a one-epoch warm-up) and validation MAE.
2. The global model of bench_train.py (1M rows x 56 lags, 3x100 ReLU, batch 65,536) on every device.
3. Stacked training (`viewcast sweep`'s engine, without MLflow): the default grid with --seeds 10
   (750 members in 12 stacks) on Peyton Manning's days, on CUDA and on the CPU, members per
   second; the epochs are capped by --grid-epochs so the CPU side fits in a short lease.
4. Kaggle scale (`--only scale`): bench/make_panel.py's seeded 145,063 x 803 panel written,
   ingested (kaggle-wide, streamed) and windowed as `viewcast` does, then one epoch of the 3x100
   global model over ALL its training windows (sampled-epoch path, windows gathered on the
   device) on CUDA, and 10M windows on the same machine's CPU: seconds and samples/s.
Prints Markdown and writes gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import global_model

from pipeline.data import features as feats
from pipeline.data.ingest import read_views
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.lecture.experiment import batch_size_study

ROOT = Path(__file__).resolve().parents[1]


def batch_study(epochs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Paths(Path(tmp))
        store = Store(ws)
        csv = ROOT / "data/raw/wikipedia-peyton-manning/views.csv"
        store.ingest([read_views(csv, series="peyton-manning")])
        windows = feats.lag_windows(store.read_dev(), store.read_splits(), 56)
    rows = batch_size_study(windows, epochs)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def stacked_grid(seeds: int, epochs: int) -> list[dict]:
    """The default grid bagged over `seeds` seeds, one fit_stack per shape, on each device."""
    from dataclasses import replace

    from pipeline.models.batched import fit_stack
    from pipeline.search import grids, units

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Paths(Path(tmp)))
        csv = ROOT / "data/raw/wikipedia-peyton-manning/views.csv"
        store.ingest([read_views(csv, series="peyton-manning")])
        dev, splits = store.read_dev(), store.read_splits()
    grid = [units.with_seeds(c, seeds) for c in grids.default_grid()]
    devices = (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]
    out = []
    for device in devices:
        grid_here = [
            replace(c, train=replace(c.train, epochs=min(c.train.epochs, epochs), device=device))
            for c in grid
        ]
        units = units.plan_units(list(enumerate(grid_here)), stack=True)
        started, members, rows = time.perf_counter(), 0, 0
        for unit in units:
            windows = feats.lag_windows(dev, splits, unit[0][1].model.lags)
            configs = [m for _, c in unit for m in units._members(c)]
            fit_stack(windows, configs)
            members += len(configs)
            rows = len(windows.rows("train"))
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        row = {
            "device": device,
            "stacks": len(units),
            "members": members,
            "seconds": seconds,
            "members_per_second": members / seconds,
            "train_rows": rows,
            "epochs_cap": epochs,
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def scale_epoch(pages: int, days: int, cpu_rows: int, stack: int = 0) -> dict:
    """One epoch over every training window of the Kaggle-shaped panel (issue 13's GPU check)."""
    from make_panel import write_panel

    from pipeline.models.device_rows import SampledRows
    from pipeline.models.families import ModelConfig
    from pipeline.models.train import TrainConfig, fit

    out: dict = {"pages": pages, "days": days}
    with tempfile.TemporaryDirectory() as tmp:
        panel = Path(tmp) / "train_2.csv"
        started = time.perf_counter()
        write_panel(panel, pages=pages, days=days, seed=0)
        out["panel_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        store = Store(Paths(Path(tmp) / "ws"))
        store.ingest([read_views(panel, fmt="kaggle-wide")])
        out["ingest_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        windows = feats.lag_windows(store.read_dev(), store.read_splits(), 56)
        out["windows_seconds"] = time.perf_counter() - started
    train_rows = int((windows.split == 0).sum())
    out |= {"train_windows": train_rows, "val_windows": int((windows.split == 1).sum())}
    print(json.dumps(out), flush=True)
    cfg = ModelConfig(56, "relu", 3, 100, target_transform="log1p", scaling="window-mean")
    runs = [("cuda", train_rows, 65_536), ("cuda", train_rows, 262_144)] * torch.cuda.is_available()
    out["epochs"] = []
    for device, rows, batch in [*runs, ("cpu", min(cpu_rows, train_rows), 65_536)]:
        # a first short fit pays CUDA's start-up (context, kernels) outside the timed one
        tcfg = TrainConfig(
            epochs=1, batch_size=batch, rows_per_epoch=batch, patience=0, device=device
        )
        fit(windows, cfg, tcfg)
        tcfg = TrainConfig(
            epochs=1, batch_size=batch, rows_per_epoch=rows, patience=0, device=device
        )
        result = fit(windows, cfg, tcfg)  # its seconds: the epoch (from the first draw on)
        # the epoch's validation scoring (every validation window) timed alone, same weights
        source = SampledRows(windows, result.model, tcfg, torch.device(device))
        with torch.no_grad():
            scored = time.perf_counter()
            source.validation_mae(result.model).item()
            validation = time.perf_counter() - scored
        seconds = result.seconds
        row = {
            "device": device,
            "windows": rows,
            "batch": batch,
            "epoch_seconds": seconds,  # with the validation scoring
            "validation_seconds": validation,
            "samples_per_second": rows / (seconds - validation),  # training steps alone
            "val_mae": result.val_mae,
            "gpu_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0,
        }
        print(json.dumps(row), flush=True)
        out["epochs"].append(row)
    if torch.cuda.is_available() and stack > 1:
        out["stack"] = sampled_stack(windows, cfg, train_rows, stack)
    return out


def sampled_stack(windows, cfg, rows: int, members: int, device: str = "cuda") -> dict:
    """`members` seeds of the global model in one sampled stack, one epoch of `rows` windows
    each (each member draws its own windows, as alone), on the device."""
    from dataclasses import replace

    from pipeline.models.batched import fit_stack
    from pipeline.models.train import TrainConfig

    base = TrainConfig(epochs=1, batch_size=65_536, rows_per_epoch=rows, patience=0, device=device)
    configs = [(cfg, replace(base, seed=s)) for s in range(members)]
    fit_stack(windows, [(c, replace(t, rows_per_epoch=65_536)) for c, t in configs])  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    sync()
    started = time.perf_counter()
    results = fit_stack(windows, configs)
    sync()
    seconds = time.perf_counter() - started
    row = {
        "device": device,
        "members": members,
        "windows_each": rows,
        "seconds": seconds,  # the stack's epoch with every member's validation and final scores
        "member_windows_per_second": members * rows / seconds,
        "val_mae": [r.val_mae for r in results],
        "gpu_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--global-rows", type=int, default=1_000_000)
    parser.add_argument("--global-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--grid-epochs", type=int, default=200)
    parser.add_argument("--only", default="", help="stack or scale: run that part alone")
    parser.add_argument("--pages", type=int, default=145_063)
    parser.add_argument("--days", type=int, default=803)
    parser.add_argument("--cpu-rows", type=int, default=10_000_000)
    parser.add_argument("--stack", type=int, default=4, help="scale: seeds in a sampled stack")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} CPU threads", flush=True)
    results = {"device": device, "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    if args.only == "scale":
        results["scale"] = scale_epoch(args.pages, args.days, args.cpu_rows, args.stack)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu.json").write_text(json.dumps(results, indent=1))
        print(
            "\n| device | windows | batch | epoch s | of it validation s | samples / s | val MAE |"
        )
        print("|---|---|---|---|---|---|---|")
        for e in results["scale"]["epochs"]:
            print(
                f"| {e['device']} | {e['windows']:,} | {e['batch']:,} | {e['epoch_seconds']:.1f}"
                f" | {e['validation_seconds']:.1f} | {e['samples_per_second']:,.0f}"
                f" | {e['val_mae']:,.1f} |"
            )
        return
    results["stacked_grid"] = stacked_grid(args.seeds, args.grid_epochs)
    if args.only != "stack":
        results["batch_study"] = batch_study(args.epochs)
        results["global_model"] = global_model(args.global_rows, args.global_epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=1))
    print("\n| device | stacks | members | seconds | members / second |\n|---|---|---|---|---|")
    for g in results["stacked_grid"]:
        print(
            f"| {g['device']} | {g['stacks']} | {g['members']} | {g['seconds']:.1f} | "
            f"{g['members_per_second']:.1f} |"
        )
    if args.only == "stack":
        return

    print("\n| device | batch | seconds / epoch | validation MAE |\n|---|---|---|---|")
    for b in results["batch_study"]:
        print(
            f"| {b['device']} | {b['batch']} | {b['seconds_per_epoch']:.4f} | {b['val_mae']:,.1f} |"
        )
    print("\n| device | training rows | seconds / epoch | samples / second |\n|---|---|---|---|")
    for g in results["global_model"]:
        print(
            f"| {g['device']} | {g['train_rows']:,} | {g['seconds_per_epoch']:.3f} | "
            f"{g['samples_per_second']:,.0f} |"
        )


if __name__ == "__main__":
    main()
