"""Numbers the lecture's studies are summed up by (pure NumPy): the report and MLflow read them."""

from __future__ import annotations

import numpy as np


def summarise_sharpness(rows: list[dict]) -> list[dict]:
    """Mean sharpness and MAE per batch size, in SHARPNESS_BATCHES order."""
    out = []
    for batch in dict.fromkeys(r["batch"] for r in rows):
        mine = [r for r in rows if r["batch"] == batch]
        out.append(
            {
                "batch": batch,
                "seeds": len(mine),
                "sharpness": float(np.mean([r["sharpness"] for r in mine])),
                "sharpness_sd": float(np.std([r["sharpness"] for r in mine])),
                "val_mae": float(np.mean([r["val_mae"] for r in mine])),
                "train_mae": float(np.mean([r["train_mae"] for r in mine])),
            }
        )
    return out


def flatness(line: list[float], alphas: list[float], at: float = 0.5) -> float:
    """How much the loss rises a step `at` away (the mean of both sides) over its centre value:
    a single number for a 1-D slice (smaller: flatter)."""
    a = np.asarray(alphas)
    centre = float(np.interp(0.0, a, line))
    sides = float(np.interp(-at, a, line) + np.interp(at, a, line)) / 2
    return (sides - centre) / max(abs(centre), 1e-12)
