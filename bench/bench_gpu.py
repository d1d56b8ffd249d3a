"""GPU checks, one script for the lent machine (no MLflow needed there):

    PYTHONPATH=. python bench/bench_gpu.py [--epochs 200] [--global-rows 1000000] [--out DIR]

1. The lecture's batch-size study (L5) exactly as `viewcast experiment lecture` runs it: one ReLU
   layer of 100 on the 56-day windows of Peyton Manning's views, Adam 1e-3, full batch, 256 and 32,
   on the CPU and on CUDA: seconds per epoch (after a one-epoch warm-up) and validation MAE.
2. The global model of bench_train.py (1M rows x 56 lags, 3x100 ReLU, batch 65,536) on every device.
Prints Markdown and writes gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import global_model

from pipeline import features as feats
from pipeline.config import Workspace
from pipeline.experiment import batch_size_study
from pipeline.ingest import read_views
from pipeline.store import Store

ROOT = Path(__file__).resolve().parents[1]


def batch_study(epochs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        store = Store(ws)
        csv = ROOT / "data/raw/wikipedia-peyton-manning/views.csv"
        store.ingest([read_views(csv, series="peyton-manning")])
        windows = feats.lag_windows(store.read_dev(), store.read_splits(), 56)
    rows = batch_size_study(windows, epochs)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--global-rows", type=int, default=1_000_000)
    parser.add_argument("--global-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} CPU threads", flush=True)
    results = {"device": device, "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    results["batch_study"] = batch_study(args.epochs)
    results["global_model"] = global_model(args.global_rows, args.global_epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=1))

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
