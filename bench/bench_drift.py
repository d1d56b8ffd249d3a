"""Why a long stacked trajectory can end a few percent from the same configuration alone:
float32 rounding, amplified, whatever the stack holds.

    .venv/bin/python bench/bench_drift.py      # 1 minute on 2 cores

The last 1,500 days of Peyton Manning, ReLU 2x64 on 7 lags (log1p, window mean), RMSProp at
lr 3e-3, full batch, no early stopping. After E epochs: the largest weight difference relative to
the largest weight, (a) alone vs the same configuration as a stack of one member, and (b) that
stack of one vs the same member in a stack of two (its neighbour, another learning rate and seed,
changes only the batched products' shapes), and the three val MAEs. If (b), where nothing but
the summation order differs, grows like (a), the gap is rounding made large by the MAE's sign
gradients and ReLU boundaries, not a difference in what the stack computes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import jobs
from pipeline.data import features as feats
from pipeline.data.workspace import Paths
from pipeline.models.batched import fit_stack
from pipeline.models.config import ModelConfig
from pipeline.models.train import TrainConfig, fit


def flat(result) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in result.model.net.parameters()])


def gap(a, b) -> float:
    wa, wb = flat(a), flat(b)
    return ((wa - wb).abs().max() / wa.abs().max()).item()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lines = (ROOT / "data/raw/wikipedia-peyton-manning/views.csv").read_text().splitlines()
        csv = Path(tmp) / "peyton-1500.csv"
        csv.write_text("\n".join([lines[0], *lines[-1500:]]) + "\n")
        ws = Paths(Path(tmp) / "ws")
        jobs.ingest(ws, [(csv, "peyton-1500")])
        windows = feats.build(ws, feats.FeatureSpec((7,)))[7]
    mcfg = ModelConfig(7, "relu", 2, 64, target_transform="log1p", scaling="window-mean")
    print(
        "| epochs | alone vs stack of 1 | stack of 1 vs stack of 2 "
        "| val MAE: alone, stack of 1, stack of 2 |"
    )
    print("|---|---|---|---|")
    for epochs in (10, 25, 50, 100, 200, 400):
        tcfg = TrainConfig("rmsprop", 3e-3, epochs=epochs, patience=0, restore_best=False)
        other = TrainConfig("rmsprop", 1e-3, epochs=epochs, patience=0, restore_best=False, seed=5)
        alone = fit(windows, mcfg, tcfg)
        one = fit_stack(windows, [(mcfg, tcfg)])[0]
        two = fit_stack(windows, [(mcfg, tcfg), (mcfg, other)])[0]
        print(
            f"| {epochs} | {gap(alone, one):.1e} | {gap(one, two):.1e} | "
            f"{alone.val_mae:,.1f}, {one.val_mae:,.1f}, {two.val_mae:,.1f} |"
        )


if __name__ == "__main__":
    main()
