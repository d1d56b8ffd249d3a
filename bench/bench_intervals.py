"""Interval calibration study (issue 28): which out-of-sample errors make per-step intervals hold
their coverage 1..H days ahead.

    python bench/bench_intervals.py [--horizon 28] [--origins 8] [--step 7] [--only SET]
                                    [--out intervals.json] [--tables-only]

The 14 sets of bench_accuracy.py, each ingested into a fresh workspace, never finalized (dev days
only). Two fixed configurations, so the study is about the intervals, not a sweep: the linear
model on 28 lags (closed form), a one-layer ReLU network on 28 lags and a two-layer one on 56
lags of log1p views (Adam, early stopping), and the three as one ensemble (shown apart: the
pooled tables are over the three single configurations).
At each origin o the backtest's replay (pipeline.search.backtest): trained before o - 60, early
stopping on the 60 validation days before o, refit on every day before o, forecast o..o+H-1.
The calibration methods compared, each from days before o only:
  - conformal: per-step split-conformal quantiles of |error| of the forecasts from every
    validation day (what `forecast` and `backtest` use today);
  - sqrt: day 1's half-width times sqrt(h) (the old heuristic);
  - relative: the same errors divided by their forecast, the quantile times the forecast
    (what `forecast` falls back to for a series without errors of its own);
  - scaled: the same errors divided by the series' level at their origin (mean views of the 28
    days before it), the quantile times the level at o (locally weighted conformal);
  - two-windows / two-windows-scaled: the same, with the errors of a second, earlier window
    (a model trained before o - 120, validated on [o - 120, o - 60)) pooled in;
  - three-windows: a third (trained before o - 180, validated on [o - 180, o - 120)) too;
  - three-extended: the same three windows, the two earlier ones' forecasts scored on every day
    before o they reach, not only on their own window (what `calibrate` does since 2026-12-06);
  - refit-two: two windows, [o - 60, o) and [o - 120, o - 60), each forecast as a backtest origin
    would be: the configuration trained again on every day before the window for the epochs
    early stopping found on the window before it (so no window is scored by the training that
    chose its epoch on it), scored on every day before o;
  - three-extended-monotone: three-extended's half-widths made never narrower than at an
    earlier step (their running maximum over h);
  - four-extended / five-extended: three-extended with a fourth (fifth) window 60 days further
    back, where the days before the origin hold its training (lags + 28 days): fewer otherwise,
    as `windows_for` gives the product.
Two sets of origins per set: "choose" (K origins ending before the first reported one, as the
horizon bench's validation-chosen peer) to pick a method, and "report" (the backtest's own
origins, the last H days before the set's last validation day) to measure it. Coverage pooled
over sets, origins and the two configurations at h = 1, 7, 28.
Results: bench/out/intervals.json and Markdown tables on stdout.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import SETS, set_file

from pipeline.data.store import SeriesSplit, Splits, Store
from pipeline.data.workspace import Paths
from pipeline.models.config import Blend
from pipeline.models.families import ModelConfig
from pipeline.models.horizons import forecast_paths, origins_between
from pipeline.models.intervals import LEVELS, conformal_quantile
from pipeline.models.train import TrainConfig
from pipeline.search.backtest import _refit
from pipeline.search.calibration import calibrate
from pipeline.search.grids import Candidate

OUT = Path(__file__).resolve().parent / "out"
REPORTED = (1, 7, 28)
LEVEL_DAYS = 28  # the level a scaled error is divided by: mean views of the days before
METHODS = (
    "conformal",
    "sqrt",
    "relative",
    "scaled",
    "two-windows",
    "two-windows-scaled",
    "three-windows",
    "three-extended",
    "refit-two",
    "three-extended-monotone",
    "four-extended",
    "five-extended",
)
DEEPEST = 5  # windows the deepest method pools (fewer where the series is too short for them)
SINGLES = [
    Candidate(
        "linear-28", ModelConfig(lags=28, model="linear"), TrainConfig(solver="lstsq", loss="mse")
    ),
    Candidate(
        "relu1-28",
        ModelConfig(lags=28, model="relu", layers=1, width=32, scaling="window-mean"),
        TrainConfig(lr=1e-2, epochs=300, patience=50),
    ),
    Candidate(
        "relu2-56-log1p",
        ModelConfig(
            lags=56,
            model="relu",
            layers=2,
            width=64,
            target_transform="log1p",
            scaling="window-mean",
        ),
        TrainConfig(lr=3e-3, epochs=300, patience=50),
    ),
]
# each alone, and the three as one ensemble (the mean of their forecasts, as ensemble-top5 is)
CONFIGS = {c.name: [c] for c in SINGLES} | {"ensemble-of-3": SINGLES}


def ingest(name: str, tmp: Path) -> Path:
    csv, _ = set_file(name, tmp)
    named = tmp / f"{name}.csv"
    named.write_bytes(Path(csv).read_bytes())
    home = tmp / "ws"
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", str(named)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"ingest of {name} failed: {done.stderr}")
    return home


def level(views: np.ndarray, day: int) -> float:
    """Mean views of the LEVEL_DAYS days before position `day` (at least 1)."""
    return max(float(np.mean(views[max(day - LEVEL_DAYS, 0) : day])), 1.0)


def window_errors(table, splits, members, end: int, horizon: int, seen: int | None = None):
    """Train before end - val_days, validate on [end - val_days, end); the forecasts from every
    validation day scored on the validation days they reach: (abs errors (origins, H), levels),
    and with `seen` (a later day) the same forecasts scored on every day before `seen` they
    reach (the days after the window, out of sample too)."""
    val = splits.val_days
    name = str(table.names[0])
    past = table.take(table.day < end)
    cut = Splits(splits.test_days, val, {name: SeriesSplit(end - val, end, end, end)})
    trained = calibrate(past, cut, members, Blend(), horizon, most=1)  # the window's training
    model, results = trained.model, trained.results
    lags = max(c.model.lags for c in members)
    origins = origins_between(past, np.array([end - val]), np.array([end - 1]), lags)
    levels = np.array([level(past.views, int(p)) for p in origins])
    # forecast once: the window's own errors are those of the days before `end` (the inputs are
    # days before each origin either way, so the forecasts are the same)
    last = end if seen is None else seen
    found = forecast_paths(model, table.take(table.day < last), origins, horizon, [last - 1])
    day = found.day[:, None] + np.arange(horizon)
    errors = np.where(day <= end - 1, found.errors, np.nan)
    reach = None if seen is None else (found.errors, levels)
    return errors, levels, found.pred, past, cut, results, reach


def widths(calib: list[tuple[np.ndarray, np.ndarray]], level_now: float, horizon: int):
    """Half-widths per method name suffix: ("", scaled) from pooled (errors, levels) windows."""
    err = np.concatenate([e for e, _ in calib])
    lev = np.concatenate([lv for _, lv in calib])
    out = {}
    for lv in LEVELS:
        plain = np.full(horizon, np.inf)
        scaled = np.full(horizon, np.inf)
        for h in range(horizon):
            seen = ~np.isnan(err[:, h])
            plain[h] = conformal_quantile(err[seen, h], lv)
            scaled[h] = conformal_quantile(err[seen, h] / lev[seen], lv) * level_now
        out[lv] = (plain, scaled)
    return out


def one_origin(table, splits, members, o: int, horizon: int) -> dict:
    """Hits (H,) per method and level at origin o (a day number), and the path's errors."""
    errors, levels, preds, past, cut, results, _ = window_errors(table, splits, members, o, horizon)
    val = splits.val_days
    *earlier, _, past1, cut1, results1, reach1 = window_errors(
        table, splits, members, o - val, horizon, o
    )
    *earliest, _, past2, cut2, results2, reach2 = window_errors(
        table, splits, members, o - 2 * val, horizon, o
    )
    # as the backtest at an origin d: the epochs early stopping found on the window before d's,
    # trained again on every day before the window; forecasts from each day of it to o - 1
    seen = table.take(table.day < o)
    refits = []
    for end, past_k, cut_k, results_k in (
        (o, past1, cut1, results1),
        (o - val, past2, cut2, results2),
    ):
        model_k = _refit(past_k, cut_k, members, results_k, Blend())
        lags = max(c.model.lags for c in members)
        at = origins_between(seen, np.array([end - val]), np.array([end - 1]), lags)
        far = forecast_paths(model_k, seen, at, horizon, np.array([o - 1]))
        refits.append((far.errors, np.ones(len(at))))  # levels: unused (plain only)
    model = _refit(past, cut, members, results, Blend())
    start = int(np.searchsorted(table.day, o))
    found = forecast_paths(model, table, np.array([start]), horizon, np.array([table.day[-1]]))
    err = found.errors[0]
    now = level(table.views, start)
    one = widths([(errors, levels)], now, horizon)
    two = widths([(errors, levels), earlier], now, horizon)
    three = widths([(errors, levels), earlier, earliest], now, horizon)
    # the two earlier windows' forecasts scored on past their window too, to the day before o
    extended = widths([(errors, levels), reach1, reach2], now, horizon)
    deeper = [(errors, levels), reach1, reach2]  # windows 4 and 5 where the series holds them
    lags = max(c.model.lags for c in members)
    for k in range(3, DEEPEST):
        if o - (k + 1) * val - int(table.day[0]) < lags + 28:
            break
        deeper.append(window_errors(table, splits, members, o - k * val, horizon, o)[-1])
    four = widths(deeper[:4], now, horizon)
    five = widths(deeper[:5], now, horizon)
    refitted = widths(refits, now, horizon)
    grow = np.sqrt(np.arange(1, horizon + 1))
    ratio = errors / np.maximum(preds, 1.0)  # the relative fallback's errors
    pred_now = np.maximum(found.pred[0], 1.0)
    hits = {}
    for lv in LEVELS:
        half = {
            "conformal": one[lv][0],
            "sqrt": one[lv][0][0] * grow,
            "relative": pred_now
            * np.array([conformal_quantile(r[~np.isnan(r)], lv) for r in ratio.T]),
            "scaled": one[lv][1],
            "two-windows": two[lv][0],
            "two-windows-scaled": two[lv][1],
            "three-windows": three[lv][0],
            "three-extended": extended[lv][0],
            "refit-two": refitted[lv][0],
            # never narrower than at an earlier step: the running maximum over h
            "three-extended-monotone": np.maximum.accumulate(extended[lv][0]),
            "four-extended": four[lv][0],
            "five-extended": five[lv][0],
        }
        for method, w in half.items():
            hits[f"{method}_{lv}"] = np.where(np.isnan(err), np.nan, err <= w).tolist()
    return {"origin": o, "hits": hits, "mae": err.tolist()}


def one_set(name: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = ingest(name, Path(tmp))
        store = Store(Paths(home))
        table, splits = store.read_dev(), store.read_splits()
    last = int(table.day[-1])
    report = [
        last - args.horizon + 1 - (args.origins - 1 - k) * args.step for k in range(args.origins)
    ]
    back = (args.origins - 1) * args.step + args.horizon
    choose = [o - back for o in report]
    out = {"set": name, "days": len(table), "configs": {}}
    need = 3 * splits.val_days + 28 + 28
    for label, members in CONFIGS.items():
        started = time.perf_counter()
        rows = {"choose": [], "report": []}
        for part, origins in (("choose", choose), ("report", report)):
            for o in origins:
                if o - int(table.day[0]) < need + max(c.model.lags for c in members):
                    continue
                rows[part].append(one_origin(table, splits, members, o, args.horizon))
        rows["seconds"] = time.perf_counter() - started
        out["configs"][label] = rows
        print(f"{name} {label}: {len(rows['report'])} origins, {rows['seconds']:.1f} s", flush=True)
    return out


def coverage(
    results: list[dict],
    part: str,
    h: int,
    configs: tuple[str, ...] = tuple(c.name for c in SINGLES),
) -> dict[str, tuple[float, int]]:
    """Pooled coverage (%) and the number of scored paths per method_level at step h (over the
    single configurations unless `configs` names others)."""
    hits: dict[str, list[float]] = {}
    for r in results:
        for label, rows in r["configs"].items():
            if label not in configs:
                continue
            for row in rows[part]:
                for key, values in row["hits"].items():
                    if not np.isnan(values[h - 1]):
                        hits.setdefault(key, []).append(values[h - 1])
    return {k: (100 * float(np.mean(v)), len(v)) for k, v in hits.items()}


def miss(method: str, covs: list[dict]) -> float:
    """The worst distance from nominal over levels and the given steps' coverages."""
    return max(abs(c[f"{method}_{lv}"][0] - lv) for c in covs for lv in LEVELS)


def tables(results: list[dict], horizon: int) -> None:
    steps = [h for h in REPORTED if h <= horizon]
    for part in ("choose", "report"):
        covs = [coverage(results, part, h) for h in steps]
        if f"conformal_{LEVELS[0]}" not in covs[0]:
            print(f"\n**{part} origins**: none long enough")
            continue
        paths = covs[0][f"conformal_{LEVELS[0]}"][1]
        print(f"\n**{part} origins** ({paths} paths a step at h = 1)\n")
        print("| method | " + " | ".join(f"h{h} 80% | h{h} 95%" for h in steps) + " | worst miss |")
        print("|---|" + "---:|" * (2 * len(steps) + 1))
        for method in METHODS:
            cells = [f"{c[f'{method}_{lv}'][0]:.1f}" for c in covs for lv in LEVELS]
            print(f"| {method} | " + " | ".join(cells) + f" | {miss(method, covs):.1f} |")
    print("\n**per configuration, report origins** (80% / 95%)\n")
    print("| configuration | " + " | ".join(f"h{h} one window | h{h} three" for h in steps) + " |")
    print("|---|" + "---:|" * (2 * len(steps)))
    for label in CONFIGS:
        covs = [coverage(results, "report", h, (label,)) for h in steps]
        if any(f"conformal_{LEVELS[0]}" not in c for c in covs):
            continue
        cells = [
            " / ".join(f"{c[f'{m}_{lv}'][0]:.1f}" for lv in LEVELS)
            for c in covs
            for m in ("conformal", "three-windows")
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if f"conformal_{LEVELS[0]}" not in coverage(results, "choose", steps[0]):
        return  # no choose origins (a set too short): nothing to choose with
    chosen = min(METHODS, key=lambda m: miss(m, [coverage(results, "choose", h) for h in steps]))
    report = [coverage(results, "report", h) for h in steps]
    print(
        f"\nchosen on the choose origins: {chosen}; its worst miss on the report origins: "
        f"{miss(chosen, report):.1f} points (target 5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--origins", type=int, default=8)
    parser.add_argument("--step", type=int, default=7)
    parser.add_argument("--only", action="append")
    parser.add_argument("--out", default="intervals.json")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    path = OUT / args.out
    if args.tables_only:
        tables(json.loads(path.read_text()), args.horizon)
        return
    results = [one_set(name, args) for name in (args.only or list(SETS))]
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(results))
    tables(results, args.horizon)


if __name__ == "__main__":
    main()
