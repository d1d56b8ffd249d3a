"""Accuracy benchmark: viewcast's champion vs naive, seasonal naive, AutoETS and LightGBM.

    python bench/bench_accuracy.py [--max-minutes 5] [--folds 1] [--only peyton-manning]

For each single-series real set shipped in data/raw (Peyton Manning's Wikipedia views, Whole Brain
Health totals, Coding Train totals) and a 1,500-day cut of Peyton Manning, in a fresh workspace:

1. `viewcast run FILE --max-minutes M --folds K` end to end in a subprocess (ingest, features,
   default-grid sweep, select on validation, submit, finalize), timed; the champion's test MAE
   is read from reports/final.json.
2. The peers, on the same store and the same split (the last 60 days are test, the 60 before them
   validation), each predicting every test day one day ahead from the real previous days and
   fitted without the test days:
   - naive (y = x_1) and seasonal naive (y = x_7);
   - statsforecast AutoETS (season 7), fitted on the training + validation days, then run over
     the whole series with those parameters (its one-step-ahead fitted values);
   - LightGBM on lags 1..56 (L1 objective, early stopping on the validation days), raw or log1p
     target, whichever validates better.
Results: bench/out/accuracy-folds<K>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.config import Workspace
from pipeline.holdout import Holdout
from pipeline.models import ModelConfig, ViewsModel

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RAW = ROOT / "data" / "raw"
SETS = {
    "peyton-manning": RAW / "wikipedia-peyton-manning" / "views.csv",
    "peyton-manning-1500": None,  # the last 1,500 days of the file above
    "wholebrainhealth": RAW / "wholebrainhealth" / "Totals.csv",
    "codingtrain": RAW / "codingtrain-2021" / "Totals.csv",
}


def last_days(src: Path, days: int, dst: Path) -> Path:
    lines = src.read_text().splitlines()
    dst.write_text("\n".join([lines[0], *lines[-days:]]) + "\n")
    return dst


def viewcast_run(home: Path, csv: Path, name: str, max_minutes: float, folds: int) -> float:
    """`viewcast run` in a subprocess; its wall time in seconds."""
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    named = home / f"{name}.csv"  # a single-series file's series is named after the file
    named.write_bytes(csv.read_bytes())
    command = [sys.executable, "-m", "pipeline", "run", str(named)]
    command += ["--max-minutes", str(max_minutes), "--folds", str(folds)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"viewcast run failed for {name}:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(pred - y).mean())


def lightgbm_test_mae(h: Holdout) -> tuple[float, float, str]:
    """LightGBM on lags 1..56: trained on training days, early-stopped on validation days."""
    import lightgbm as lgb

    data = h.data(56)
    w, rows = data.windows, data.rows
    train = np.flatnonzero(w.split == 0)  # days before validation
    best = None
    for target in ("raw", "log1p"):
        fwd = np.log1p if target == "log1p" else (lambda v: v)
        inv = np.expm1 if target == "log1p" else (lambda v: v)
        model = lgb.LGBMRegressor(
            objective="l1",
            n_estimators=3000,
            learning_rate=0.02,
            num_leaves=15,
            min_child_samples=10,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=0,
            verbose=-1,
        )
        model.fit(
            fwd(w.x(train)),
            fwd(w.y(train)),
            eval_X=(fwd(w.x(rows["val"])),),
            eval_y=(fwd(w.y(rows["val"])),),
            eval_metric="l1",
            callbacks=[lgb.early_stopping(200, verbose=False)],
        )
        val = mae(inv(model.predict(fwd(w.x(rows["val"])))), w.y(rows["val"]))
        test = mae(inv(model.predict(fwd(w.x(rows["test"])))), w.y(rows["test"]))
        if best is None or val < best[0]:
            best = (val, test, target)
    return best


def autoets_test_mae(h: Holdout) -> tuple[float, float]:
    """AutoETS(season 7) fitted on training+validation days; one-step-ahead over the test days.
    Its validation MAE is in-sample (the fit saw those days), reported for completeness."""
    from statsforecast.models import AutoETS

    ((_, split),) = h.splits.series.items()
    t = h.table
    y, day = t.views.astype(float), t.day
    dev = day < split.test_start
    model = AutoETS(season_length=7).fit(y[dev])
    fitted = model.forward(y=y, h=1, fitted=True)["fitted"]
    test = (day >= split.test_start) & (day <= split.test_end) & ~t.imputed
    val = (day >= split.val_start) & (day < split.test_start) & ~t.imputed
    return mae(fitted[val], y[val]), mae(fitted[test], y[test])


def naive_test_mae(h: Holdout, n: int) -> tuple[float, float]:
    scores = h.score(ViewsModel(ModelConfig(lags=n, model="naive")), ("val", "test"))
    return scores["val_mae"], scores["test_mae"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-minutes", type=float, default=5.0)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--only", action="append", choices=list(SETS))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, csv in SETS.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if csv is None:
                csv = last_days(SETS["peyton-manning"], 1500, home / "cut.csv")
            seconds = viewcast_run(home, csv, name, args.max_minutes, args.folds)
            final = json.loads((home / "reports" / "final.json").read_text())
            h = Holdout(Workspace(home))
            lgb_val, lgb_test, lgb_target = lightgbm_test_mae(h)
            ets_val, ets_test = autoets_test_mae(h)
            row = {
                "days": len(h.table),
                "viewcast_run_seconds": seconds,
                "champion": final["champion"]["name"],
                "champion_val_mae": final["champion"]["val_mae"],
                "champion_test_mae": final["champion"]["test_mae"],
                "naive": naive_test_mae(h, 1),
                "seasonal_naive": naive_test_mae(h, 7),
                "autoets": (ets_val, ets_test),
                "lightgbm": (lgb_val, lgb_test),
                "lightgbm_target": lgb_target,
            }
            results[name] = row
            print(json.dumps({name: row}), flush=True)
    (OUT / f"accuracy-folds{args.folds}.json").write_text(json.dumps(results, indent=1))

    header = "set | days | champion | viewcast | naive | seasonal naive | AutoETS | LightGBM"
    print(f"\n| {header} | vs LightGBM | `viewcast run` |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = r["champion_test_mae"] / r["lightgbm"][1]
        print(
            f"| {name} | {r['days']:,} | {r['champion']} | **{r['champion_test_mae']:,.1f}** | "
            f"{r['naive'][1]:,.1f} | {r['seasonal_naive'][1]:,.1f} | {r['autoets'][1]:,.1f} | "
            f"{r['lightgbm'][1]:,.1f} ({r['lightgbm_target']}) | {ratio:.3f} | "
            f"{r['viewcast_run_seconds']:.0f} s |"
        )


if __name__ == "__main__":
    main()
