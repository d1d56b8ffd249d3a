"""Accuracy benchmark: viewcast's champion vs the best of the usual peers, set by set.

    python bench/bench_accuracy.py [--max-minutes 5] [--folds 1] [--only codingtrain] [--no-pooled]

Sets: every single-series real set shipped in data/raw (Peyton Manning's Wikipedia views, its last
1,500 days, Whole Brain Health totals, Coding Train totals) and the 10 Kaggle web-traffic pages
taken one by one (kaggle-01..kaggle-10, in the file's order). For each set, in a fresh workspace:

1. `viewcast run FILE --max-minutes M --folds K` end to end in a subprocess (ingest, features,
   default-grid sweep, select on validation, submit, finalize), timed; the champion's test MAE is
   read from reports/final.json, and the nets-only champion's (the best validation run or
   ensemble without a tree member) is scored on the test days here when the champion has one.
2. The peers, on the same store and the same split (the last 60 days are test, the 60 before them
   validation), each predicting every test day one day ahead from the real previous days and
   fitted without the test days:
   - naive (y = x_1) and seasonal naive (y = x_7);
   - OLS on lags 1, 7, 28 and 56 (intercept; least squares on the training + validation windows);
   - statsforecast AutoETS and AutoTheta (season 7), fitted on the training + validation days,
     then run over the whole series with those parameters (their one-step-ahead values);
   - LightGBM on lags 1..56 (L1 objective, early stopping on the validation days), raw and log1p
     target, each its own peer.
   The best peer of a set is the one with the lowest TEST MAE (the hardest bar: no peer is chosen
   on validation); ratio = champion / best peer; the goal is a ratio <= 1 on every set and a
   geometric mean <= 0.95.
3. Cross-series learning (unless --no-pooled): one `viewcast run` on all 10 Kaggle pages at once
   (one global model), its champion's test MAE per page beside the page's own champion.
Results: bench/out/accuracy-folds<K>.json and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.data.workspace import Paths
from pipeline.models.families import ModelConfig, ViewsModel
from pipeline.search.holdout import Holdout

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RAW = ROOT / "data" / "raw"
KAGGLE = RAW / "wikipedia-kaggle10" / "wikipedia_traffic_daily.csv"
SETS: dict[str, Path | None] = {
    "peyton-manning": RAW / "wikipedia-peyton-manning" / "views.csv",
    "peyton-manning-1500": None,  # the last 1,500 days of the file above
    "wholebrainhealth": RAW / "wholebrainhealth" / "Totals.csv",
    "codingtrain": RAW / "codingtrain-2021" / "Totals.csv",
} | {f"kaggle-{i:02d}": None for i in range(1, 11)}  # one page of KAGGLE each
OLS_LAGS = (1, 7, 28, 56)


def kaggle_pages() -> dict[str, list[tuple[str, str]]]:
    """The Kaggle sample's pages in file order: page -> [(date, views)]."""
    pages: dict[str, list[tuple[str, str]]] = {}
    with KAGGLE.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pages.setdefault(row["Page"], []).append((row["date"], row["value"]))
    return pages


def set_file(name: str, tmp: Path) -> tuple[Path, str]:
    """The set's single-series CSV (Date,Views) and what it is."""
    if name == "peyton-manning-1500":
        return last_days(SETS["peyton-manning"], 1500, tmp / "cut.csv"), "last 1,500 days"
    if name.startswith("kaggle-"):
        page, rows = list(kaggle_pages().items())[int(name[-2:]) - 1]
        dst = tmp / "page.csv"
        dst.write_text("Date,Views\n" + "".join(f"{d},{v}\n" for d, v in rows))
        return dst, page
    return SETS[name], SETS[name].name


def geomean(values: list[float]) -> float:
    """The geometric mean (of ratios: 0.9 and 1.1 do not cancel to 1, their logs nearly do)."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


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


def lightgbm_peers(h: Holdout) -> dict[str, tuple[float, float]]:
    """LightGBM on lags 1..56, raw and log1p target: trained on the training days, early-stopped
    on the validation days; (val MAE, test MAE) of each."""
    import lightgbm as lgb

    data = h.data(56)
    w, rows = data.windows, data.rows
    train = np.flatnonzero(w.split == 0)  # days before validation
    out = {}
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
        out[f"LightGBM {target}"] = (val, test)
    return out


def ols_peers(h: Holdout) -> dict[str, tuple[float, float]]:
    """Least squares with an intercept on lags 1..N, fitted on the training + validation windows;
    (in-sample val MAE, test MAE) for N in OLS_LAGS."""
    out = {}
    for n in OLS_LAGS:
        data = h.data(n)
        w, rows = data.windows, data.rows
        dev = np.concatenate([np.flatnonzero(w.split == 0), rows["val"]])

        def design(idx: np.ndarray, w=w) -> np.ndarray:
            return np.column_stack([w.x(idx), np.ones(len(idx))])

        coef = np.linalg.lstsq(design(dev), w.y(dev), rcond=None)[0]
        scores = [mae(design(rows[p]) @ coef, w.y(rows[p])) for p in ("val", "test")]
        out[f"OLS lags {n}"] = (scores[0], scores[1])
    return out


def statsforecast_peers(h: Holdout) -> dict[str, tuple[float, float]]:
    """AutoETS and AutoTheta (season 7) fitted on training+validation days; one step ahead over
    the test days. Their validation MAE is in-sample (the fit saw those days)."""
    from statsforecast.models import AutoETS, AutoTheta

    ((_, split),) = h.splits.series.items()
    t = h.table
    y, day = t.views.astype(float), t.day
    dev = day < split.test_start
    test = (day >= split.test_start) & (day <= split.test_end) & ~t.imputed
    val = (day >= split.val_start) & (day < split.test_start) & ~t.imputed
    out = {}
    for name, model in (("AutoETS", AutoETS(season_length=7)), ("AutoTheta", AutoTheta(7))):
        fitted = model.fit(y[dev]).forward(y=y, h=1, fitted=True)["fitted"]
        out[name] = (mae(fitted[val], y[val]), mae(fitted[test], y[test]))
    return out


def naive_peers(h: Holdout) -> dict[str, tuple[float, float]]:
    out = {}
    for name, n in (("naive", 1), ("seasonal naive", 7)):
        scores = h.score(ViewsModel(ModelConfig(lags=n, model="naive")), ("val", "test"))
        out[name] = (scores["val_mae"], scores["test_mae"])
    return out


def has_tree(cfg) -> bool:
    """Whether a model (or any member of an ensemble) is a gradient-boosted tree model."""
    members = getattr(cfg, "members", None)
    return any(has_tree(m) for m in members) if members else cfg.model == "hgb"


def nets_only(home: Path, final: dict, h: Holdout) -> tuple[str, float]:
    """The nets-only champion: the champion itself when no member is a tree; else the best
    validation run (or ensemble) of the sweep without one, scored on the test days here."""
    from pipeline import tracking

    ws = Paths(home)
    champion = final["champion"]
    if not has_tree(tracking.load_model(ws, champion["run_id"]).cfg):
        return champion["name"], champion["test_mae"]
    sweep = tracking.latest_sweep(ws)
    runs = [r for r in tracking.sweep_children(ws, sweep) if "val_mae" in r.metrics]
    for run in sorted(runs, key=lambda r: r.metrics["val_mae"]):
        model = tracking.load_model(ws, run.run_id)
        if not has_tree(model.cfg):
            return run.name, h.score(model, ("test",))["test_mae"]
    return "none", math.nan


def sweep_size(home: Path) -> tuple[int, bool]:
    """How many configurations the run's sweep trained, and whether its budget cut none."""
    from pipeline import tracking

    ws = Paths(home)
    sweep = tracking.latest_sweep(ws)
    runs = [r for r in tracking.sweep_children(ws, sweep) if "val_mae" in r.metrics]
    return len(runs), tracking.get_run(ws, sweep).tags.get("complete") == "True"


def one_set(name: str, max_minutes: float, folds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        csv_path, what = set_file(name, home)
        seconds = viewcast_run(home, csv_path, name, max_minutes, folds)
        final = json.loads((home / "reports" / "final.json").read_text())
        h = Holdout(Paths(home))
        peers = naive_peers(h) | ols_peers(h) | statsforecast_peers(h) | lightgbm_peers(h)
        best = min(peers, key=lambda p: peers[p][1])
        nets_name, nets_test = nets_only(home, final, h)
        trained, complete = sweep_size(home)
        return {
            "runs": trained,
            "grid_complete": complete,
            "what": what,
            "days": len(h.table),
            "viewcast_run_seconds": seconds,
            "champion": final["champion"]["name"],
            "champion_val_mae": final["champion"]["val_mae"],
            "champion_test_mae": final["champion"]["test_mae"],
            "nets_only": nets_name,
            "nets_only_test_mae": nets_test,
            "peers": peers,
            "best_peer": best,
            "ratio": final["champion"]["test_mae"] / peers[best][1],
        }


def pooled(max_minutes: float, folds: int) -> dict:
    """One `viewcast run` on the 10 Kaggle pages together: the champion's validation and test
    MAE per page."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        seconds = viewcast_run(home, KAGGLE, "kaggle10", max_minutes, folds)
        final = json.loads((home / "reports" / "final.json").read_text())
        per_page = {p: s["test_mae"] for p, s in final["champion_per_series"].items()}
        return {
            "champion": final["champion"]["name"],
            "seconds": seconds,
            "per_page": per_page,
            "per_page_val": validation_per_series(home, final["champion"]["run_id"]),
        }


def validation_per_series(home: Path, run_id: str) -> dict[str, float]:
    """A run's validation MAE on each series (the dev days only)."""
    from pipeline import tracking
    from pipeline.data import features as feats
    from pipeline.data.store import Store

    ws = Paths(home)
    model = tracking.load_model(ws, run_id)
    store = Store(ws)
    w = feats.lag_windows(store.read_dev(), store.read_splits(), model.cfg.lags)
    rows = w.rows("val")
    err = np.abs(w.predict(model, rows) - w.y(rows))
    code = w.code[rows]
    return {str(w.names[c]): float(err[code == c].mean()) for c in np.unique(code)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-minutes", type=float, default=5.0)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--only", action="append", choices=list(SETS))
    parser.add_argument("--no-pooled", action="store_true", help="skip the 10 pages together")
    parser.add_argument("--table", type=Path, help="print the tables of a saved result file")
    args = parser.parse_args()
    if args.table:
        saved = json.loads(args.table.read_text())
        print(table(saved["sets"]))
        if saved["pooled"]:
            print(pooled_table(saved["sets"], saved["pooled"]))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in SETS:
        if args.only and name not in args.only:
            continue
        results[name] = one_set(name, args.max_minutes, args.folds)
        print(json.dumps({name: results[name]}), flush=True)
    together = None if args.no_pooled or args.only else pooled(args.max_minutes, args.folds)
    out = OUT / f"accuracy-folds{args.folds}.json"
    out.write_text(json.dumps({"sets": results, "pooled": together}, indent=1))
    print(table(results))
    if together:
        print(pooled_table(results, together))


def peer_on_validation(r: dict) -> str:
    """The peer a user would pick by the rule viewcast follows: the lowest validation MAE."""
    return min(r["peers"], key=lambda p: r["peers"][p][0])


def table(results: dict) -> str:
    """Every set, every peer's test MAE, the champions, the ratio and the geometric mean; and
    the same ratio against the peer chosen on validation (the rule the champion obeys)."""
    peers = list(next(iter(results.values()))["peers"])
    head = ["set", "days", *peers, "champion", "viewcast", "nets only", "best peer", "ratio"]
    head += ["peer chosen on val", "ratio to it", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        chosen = peer_on_validation(r)
        cells = [name, f"{r['days']:,}"]
        for p in peers:
            value = f"{r['peers'][p][1]:,.1f}"
            cells.append(f"**{value}**" if p == r["best_peer"] else value)
        cells += [
            r["champion"],
            f"{r['champion_test_mae']:,.1f}",
            f"{r['nets_only_test_mae']:,.1f}",
            r["best_peer"],
            f"{r['ratio']:.3f}",
            chosen,
            f"{r['champion_test_mae'] / r['peers'][chosen][1]:.3f}",
            f"{r['runs']}" + ("" if r["grid_complete"] else " (cut)"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ratios = [r["ratio"] for r in results.values()]
    geo = geomean(ratios)
    wins = sum(v <= 1 for v in ratios)
    lines.append(
        f"\ngeometric mean of champion / best peer: **{geo:.3f}** over {len(ratios)} sets; "
        f"at or below the best peer on {wins} of {len(ratios)}"
    )
    fair = [r["champion_test_mae"] / r["peers"][peer_on_validation(r)][1] for r in results.values()]
    lower = sum(
        r["champion_val_mae"] < min(v for v, _ in r["peers"].values()) for r in results.values()
    )
    lines.append(
        f"against the peer chosen on validation: geometric mean {geomean(fair):.3f}, at or below "
        f"it on {sum(v <= 1 for v in fair)} of {len(fair)}; the champion's validation MAE is "
        f"below every peer's on {lower} of {len(fair)} sets"
    )
    return "\n".join(lines)


def pooled_table(results: dict, together: dict) -> str:
    """Per Kaggle page: its own champion vs the pooled (global) champion, on validation and on
    test, and the model a page would use if it chose the lower validation MAE."""
    lines = [
        f"\npooled champion: {together['champion']} ({together['seconds']:.0f} s)",
        "| page | val: own | val: pooled | test: own | test: pooled | pooled / own (test) "
        "| chosen on val | chosen / best peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    chosen_ratios, own_ratios = [], []
    for name, r in results.items():
        if not (name.startswith("kaggle-") and r["what"] in together["per_page"]):
            continue
        own, joint = r["champion_test_mae"], together["per_page"][r["what"]]
        own_val, joint_val = r["champion_val_mae"], together["per_page_val"][r["what"]]
        pick = "pooled" if joint_val < own_val else "own"
        chosen = joint if pick == "pooled" else own
        best = r["peers"][r["best_peer"]][1]
        chosen_ratios.append(chosen / best)
        own_ratios.append(r["ratio"])
        lines.append(
            f"| {name} | {own_val:,.1f} | {joint_val:,.1f} | {own:,.1f} | {joint:,.1f} | "
            f"{joint / own:.3f} | {pick} | {chosen / best:.3f} |"
        )
    if chosen_ratios:
        lines.append(
            f"\nKaggle pages, champion / best peer: own models {geomean(own_ratios):.3f}, "
            f"own or pooled chosen on validation {geomean(chosen_ratios):.3f} (geometric means)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
