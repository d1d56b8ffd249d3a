"""Training benchmark: viewcast vs scikit-learn's MLPRegressor, MLflow overhead, the global model.

    python bench/bench_train.py [--epochs 2000] [--global-rows 1000000] [--global-epochs 3]

1. A 3x100 ReLU network on the 56-day windows of a real 1,500-day series (the last 1,500 days of
   Peyton Manning's Wikipedia views), 2,000 full-batch Adam epochs: viewcast's `fit` (with its
   per-epoch validation) against MLPRegressor of the same shape, solver, batch and epochs, in the
   same process, each on the same standardised data.
2. MLflow overhead per run: everything `viewcast train` does besides the epochs (log params,
   curves, datasets, PNG and model), first run of a process and a later one.
3. The global model: 1M rows x 56 lags of synthetic many-series data, 3x100 ReLU, batch 65,536:
   seconds per epoch and samples per second on every device torch sees (the CPU always).
4. The optimisers' rules written once (`--rules-only` runs just this): the same 3x100 fit with the
   lecture's rules (optim.direction, what `fit` uses) and with torch.optim's implementations, the
   two alternated three times in one process (median seconds, final weights' largest gap).
Results go to bench/out/train.json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from pipeline.data import features as feats
from pipeline.data.ingest import read_views
from pipeline.data.store import SeriesSplit, Splits, Store
from pipeline.data.table import ViewsTable
from pipeline.data.workspace import Paths
from pipeline.models.families import ModelConfig
from pipeline.models.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def peyton_1500(ws: Paths) -> feats.LagWindows:
    """The last 1,500 days of Peyton Manning's views, ingested into a scratch workspace."""
    obs = read_views(ROOT / "data" / "raw" / "wikipedia-peyton-manning" / "views.csv", "pm")
    keep = obs.day > obs.day.max() - 1500
    obs = type(obs)(obs.names, obs.code[keep], obs.day[keep], obs.views[keep], obs.source)
    Store(ws).ingest([obs])
    return feats.build(ws, feats.FeatureSpec((56,)))[56]


def versus_sklearn(windows: feats.LagWindows, epochs: int) -> dict:
    from sklearn.neural_network import MLPRegressor

    cfg = ModelConfig(56, "relu", 3, 100)
    start = time.perf_counter()
    result = fit(windows, cfg, TrainConfig(epochs=epochs, patience=0, lr=1e-3))
    ours = time.perf_counter() - start

    rows = windows.rows("train")
    x, y = windows.x(rows), windows.y(rows)
    xs = (x - x.mean(0)) / x.std(0)
    ys = (y - y.mean()) / y.std()
    peer = MLPRegressor(
        hidden_layer_sizes=(100, 100, 100),
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=len(x),
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        shuffle=False,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.fit(xs, ys)
    theirs = time.perf_counter() - start
    return {
        "rows": len(rows),
        "epochs": epochs,
        "viewcast_seconds": ours,
        "viewcast_epochs_run": result.epochs_run,
        "sklearn_seconds": theirs,
        "sklearn_epochs_run": peer.n_iter_,
        "speedup": theirs / ours,
        "torch_threads": torch.get_num_threads(),
    }


def mlflow_overhead(ws: Paths, windows: feats.LagWindows) -> dict:
    from pipeline import tracking
    from pipeline.models.outcome import training_outcome

    cfg, tcfg = ModelConfig(56, "relu", 3, 100), TrainConfig(epochs=2000, patience=0)
    result = fit(windows, cfg, TrainConfig(epochs=50, patience=0))
    result.history = {k: v * 40 for k, v in result.history.items()}  # 2,000 epochs of curves
    start = time.perf_counter()
    tracking.connect(ws)  # imports MLflow and creates the SQLite schema: once per workspace
    connect = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        data = feats.data_params(ws, windows)
        outcome = training_outcome(windows, result, data)
        tracking.log_training(ws, windows, cfg, tcfg, result.model, result.device, outcome, data)
        times.append(time.perf_counter() - start)
    return {
        "connect_seconds": connect,
        "first_run_seconds": times[0],
        "later_run_seconds": float(np.median(times[1:])),
    }


def global_model(rows: int, epochs: int) -> list[dict]:
    """Synthetic many-series windows of 1,000-day series, about `rows` training rows."""
    rng = np.random.default_rng(0)
    days = 1000
    per_series = days - 56 - 120 + 1
    n_series = max(1, rows // per_series)
    level = rng.lognormal(6, 1.5, (n_series, 1))
    t = np.arange(days)
    views = level * (1 + 0.3 * np.sin(2 * np.pi * t / 7)) * rng.lognormal(0, 0.2, (n_series, days))
    names = np.array([f"s{i:05d}" for i in range(n_series)], dtype=object)
    code = np.repeat(np.arange(n_series, dtype=np.int32), days)
    day = np.tile(np.arange(18000, 18000 + days, dtype=np.int32), n_series)
    table = ViewsTable(names, code, day, views.reshape(-1), np.zeros(n_series * days, bool))
    last = 18000 + days - 1
    split = SeriesSplit(last - 119, last - 59, last - 29, last)
    splits = Splits(60, 60, dict.fromkeys(names, split))
    # dev days only (test days cut), as the store would hand them over
    dev = table.take(table.day < split.test_start)
    windows = feats.lag_windows(dev, splits, 56)
    cfg = ModelConfig(56, "relu", 3, 100, target_transform="log1p", scaling="window-mean")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = []
    for device in devices:
        tcfg = TrainConfig(epochs=epochs, batch_size=65_536, patience=0, device=device)
        result = fit(windows, cfg, tcfg)
        train_rows = result.rows["train"]
        out.append(
            {
                "device": device,
                "train_rows": train_rows,
                "epochs": result.epochs_run,
                "seconds_per_epoch": result.seconds / result.epochs_run,
                "samples_per_second": train_rows * result.epochs_run / result.seconds,
                "val_mae": result.val_mae,
            }
        )
    return out


TORCH_RULES = {
    "sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr),
    "momentum": lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9),
    "adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr),
}


def rules_versus_torch(windows: feats.LagWindows, epochs: int, repeats: int = 3) -> list[dict]:
    """fit with the lecture's rules against fit with torch.optim's, alternated."""
    from pipeline.models import loop

    ours_maker = loop.make_optimizer
    cfg = ModelConfig(56, "relu", 3, 100)
    out = []
    for name, make in TORCH_RULES.items():
        tcfg = TrainConfig(optimizer=name, epochs=epochs, patience=0, lr=1e-3)
        seconds: dict[str, list[float]] = {"ours": [], "torch": []}
        weights, val = {}, {}
        for _ in range(repeats):
            for who in ("ours", "torch"):
                loop.make_optimizer = (
                    ours_maker if who == "ours" else (lambda n, ps, lr, *a, m=make, **k: m(ps, lr))
                )
                try:
                    start = time.perf_counter()
                    result = fit(windows, cfg, tcfg)
                    seconds[who].append(time.perf_counter() - start)
                finally:
                    loop.make_optimizer = ours_maker
                params = result.model.net.parameters()
                weights[who] = torch.cat([p.detach().flatten() for p in params])
                val[who] = result.val_mae
        gap = float((weights["ours"] - weights["torch"]).abs().max() / weights["torch"].abs().max())
        ours, theirs = float(np.median(seconds["ours"])), float(np.median(seconds["torch"]))
        out.append(
            {"optimizer": name, "epochs": epochs, "ours_seconds": ours, "torch_seconds": theirs,
             "ratio": ours / theirs, "relative_weight_gap": gap,
             "val_mae_ours": val["ours"], "val_mae_torch": val["torch"]}
        )  # fmt: skip
    return out


def print_rules(rows: list[dict]) -> None:
    print(
        "| optimiser | epochs | lecture's rules s | torch.optim s | ratio | weight gap "
        "| val MAE, lecture's rules | val MAE, torch.optim |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['optimizer']} | {r['epochs']:,} | {r['ours_seconds']:.2f} | "
            f"{r['torch_seconds']:.2f} | {r['ratio']:.2f} | {r['relative_weight_gap']:.1e} | "
            f"{r['val_mae_ours']:,.1f} | {r['val_mae_torch']:,.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--global-rows", type=int, default=1_000_000)
    parser.add_argument("--global-epochs", type=int, default=3)
    parser.add_argument("--rules-epochs", type=int, default=500)
    parser.add_argument("--rules-only", action="store_true")
    opts = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    OUT.mkdir(exist_ok=True)
    if opts.rules_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = rules_versus_torch(peyton_1500(Paths(Path(tmp))), opts.rules_epochs)
        (OUT / "train-rules.json").write_text(json.dumps(rows, indent=1))
        print_rules(rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ws = Paths(Path(tmp))
        windows = peyton_1500(ws)
        results = {"mlp": versus_sklearn(windows, opts.epochs)}
        results["mlflow"] = mlflow_overhead(ws, windows)
        results["rules"] = rules_versus_torch(windows, opts.rules_epochs)
    results["global"] = global_model(opts.global_rows, opts.global_epochs)
    (OUT / "train.json").write_text(json.dumps(results, indent=1))
    mlp, ml = results["mlp"], results["mlflow"]
    print(
        f"3x100 ReLU, 56 lags, {mlp['rows']:,} rows, {mlp['epochs']:,} full-batch Adam epochs:\n"
        f"| implementation | seconds |\n|---|---|\n"
        f"| viewcast fit (with per-epoch validation) | {mlp['viewcast_seconds']:.1f} |\n"
        f"| scikit-learn MLPRegressor | {mlp['sklearn_seconds']:.1f} |\n"
        f"viewcast is {mlp['speedup']:.1f}x faster\n\n"
        f"MLflow: import + new SQLite store {ml['connect_seconds']:.2f} s (once); logging a run "
        f"{ml['first_run_seconds']:.2f} s (first), {ml['later_run_seconds']:.2f} s (later)\n"
    )
    print("| device | train rows | seconds/epoch | samples/s |\n|---|---|---|---|")
    for g in results["global"]:
        print(
            f"| {g['device']} | {g['train_rows']:,} | {g['seconds_per_epoch']:.2f} | "
            f"{g['samples_per_second']:,.0f} |"
        )
    print()
    print_rules(results["rules"])
    if not torch.cuda.is_available():
        print("\nNo CUDA device: GPU not measured.")


if __name__ == "__main__":
    main()
