"""Horizon benchmark: the champion's rolling-origin backtest against peers fitted the same way.

    python bench/bench_horizon.py [--max-minutes 1.5] [--horizon 28] [--origins 8] [--step 7]
                                  [--choose-origins K]
                                  [--select-horizon 1] [--only codingtrain] [--no-peers] [--out F]
                                  [--baseline F] [--tables-only [--peers-from F]]
    python bench/bench_horizon.py --peers-only [--out peers.json]

The 14 sets of bench_accuracy.py. For each, in a fresh workspace: `viewcast ingest`, `viewcast
sweep --max-minutes M --horizon S` (the default grid; S = --select-horizon: above 1 the
direct S-day twins join it) and `viewcast select --metric val_mae` (or val_mae_h<S>), then
`viewcast backtest --horizon H --origins K --step S --json` (timed, in a subprocess). No set
is finalized: the origins lie on the days before its test (the sealed test stays sealed),
the last one H days before its last validation day. The peers are fitted at the same origins
on the same days before each origin and scored on the same days (imputed days left out, as the
backtest does):
  - naive (y = the day before the origin) and seasonal naive (the same weekday of the last week);
  - statsforecast AutoETS (season 7) and MSTL (seasons 7 and 365 when the days before the origin
    hold two years, else 7; AutoETS on the trend), each forecasting H days at once;
  - LightGBM on lags 1..56 (L1 objective, 200 trees, learning rate 0.05): recursive (one model,
    predictions fed back) and direct (one model per reported h, its target h days ahead).
Per set and h in (1, 7, 28): MAE of each; ratio = champion / best peer at that h (the hardest bar:
the peer best on these very origins) and champion / the peer chosen on validation (the one with
the lowest MAE at that h at K origins whose H days all end before the first backtest origin;
K = --choose-origins, else --origins: a year-long set has too few days before 16 backtest origins
for 16 more).
--baseline F compares the h = 1 champion with another run's (e.g. --select-horizon 1);
--tables-only --peers-from F scores a --no-peers run's champions against F's peers.
Coverage of the champion's 80% and 95% intervals pooled over the sets' origins, per-step
conformal and the sqrt(h) heuristic it replaced.
Results: bench/out/horizon.json and Markdown tables on stdout.
--peers-only fits the peers alone (no sweep, a few minutes) and measures the "best peer by test"
bar itself: for each peer, on how many sets it is at or below the best of the other peers, and
for the peer chosen on validation (the rule the champion follows), on how many sets it is the
best peer by test.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import SETS, geomean, set_file

from pipeline.data.store import Store
from pipeline.data.workspace import Paths

OUT = Path(__file__).resolve().parent / "out"
REPORTED = (1, 7, 28)
LGB_LAGS = 56


def viewcast(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"VIEWCAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"viewcast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def origins_of(n_days: int, horizon: int, origins: int, step: int) -> list[int]:
    """Origin positions in the dev days, as viewcast backtest places them (oldest first)."""
    return [n_days - horizon - (origins - 1 - k) * step for k in range(origins)]


def naive_peers(y: np.ndarray, o: int, horizon: int) -> dict[str, np.ndarray]:
    seasonal = np.array([y[o - 7 + (h % 7)] for h in range(horizon)])
    return {"naive": np.full(horizon, y[o - 1]), "seasonal-naive": seasonal}


def statsforecast_peers(y: np.ndarray, o: int, horizon: int) -> dict[str, np.ndarray]:
    from statsforecast.models import MSTL, AutoETS

    out = {}
    train = y[:o].astype(np.float64)
    seasons = [7, 365] if o >= 2 * 365 + 7 else 7
    for name, model in (
        ("AutoETS", AutoETS(season_length=7)),
        ("MSTL", MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"))),
    ):
        try:
            out[name] = np.asarray(model.forecast(y=train, h=horizon)["mean"])
        except Exception as err:  # a peer that fails on a set is reported, not fatal
            print(f"  {name} failed at origin {o}: {err}", file=sys.stderr)
    return out


def lag_matrix(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows t in [lo, hi): lag_1..lag_56 of day t."""
    return np.stack([y[t - LGB_LAGS : t][::-1] for t in range(lo, hi)])


def lightgbm_peers(y: np.ndarray, o: int, horizon: int) -> dict[str, np.ndarray]:
    import lightgbm as lgb

    params = dict(objective="l1", n_estimators=200, learning_rate=0.05, verbose=-1, seed=0)
    x = lag_matrix(y, LGB_LAGS, o)
    recursive = lgb.LGBMRegressor(**params).fit(x, y[LGB_LAGS:o])
    window = y[o - LGB_LAGS : o][::-1].astype(np.float64)
    path = []
    for _ in range(horizon):
        pred = max(float(recursive.predict(window[None, :])[0]), 0.0)
        path.append(pred)
        window = np.concatenate([[pred], window[:-1]])
    direct = np.full(horizon, np.nan)
    for h in (h for h in REPORTED if h <= horizon):
        rows = np.arange(LGB_LAGS, o - h + 1)  # target y[t + h - 1] known before the origin
        model = lgb.LGBMRegressor(**params).fit(lag_matrix(y, LGB_LAGS, o - h + 1), y[rows + h - 1])
        direct[h - 1] = max(float(model.predict(y[o - LGB_LAGS : o][::-1][None, :])[0]), 0.0)
    return {"LightGBM-recursive": np.array(path), "LightGBM-direct": direct}


def peer_errors(
    ws: Paths, horizon: int, origins: int, step: int, back: int = 0
) -> dict[str, np.ndarray]:
    """Each peer's (origins, H) absolute errors on the set's dev days (nan: imputed target), at
    the backtest's origins moved `back` days earlier (back > 0: the validation origins)."""
    dev = Store(ws).read_dev()
    y, imputed = dev.views, dev.imputed
    errors: dict[str, list[np.ndarray]] = {}
    for o in origins_of(len(y) - back, horizon, origins, step):
        actual = np.where(imputed[o : o + horizon], np.nan, y[o : o + horizon])
        found = naive_peers(y, o, horizon) | statsforecast_peers(y, o, horizon)
        found |= lightgbm_peers(y, o, horizon)
        for name, pred in found.items():
            errors.setdefault(name, []).append(np.abs(actual - pred))
    return {name: np.array(e) for name, e in errors.items() if len(e) == origins}


def ingested(name: str, tmp: Path) -> tuple[Path, str]:
    """A fresh workspace in `tmp` holding the set under its own name; (its home, what it is)."""
    csv, what = set_file(name, tmp)
    home, named = tmp / "ws", tmp / f"{name}.csv"
    named.write_bytes(Path(csv).read_bytes())
    viewcast(home, "ingest", str(named))
    return home, what


def choose_errors(ws: Paths, args) -> dict[str, np.ndarray]:
    """The peers' errors at the validation origins: --choose-origins (else --origins) origins
    whose H days all end before the first backtest origin."""
    back = (args.origins - 1) * args.step + args.horizon
    return peer_errors(ws, args.horizon, args.choose_origins or args.origins, args.step, back)


def one_set(name: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home, what = ingested(name, Path(tmp))
        h = args.select_horizon
        viewcast(home, "sweep", "--max-minutes", str(args.max_minutes), "--horizon", str(h))
        viewcast(home, "select", "--metric", "val_mae" if h == 1 else f"val_mae_h{h}")
        champion = viewcast(
            home, "select", "--json", "--metric", "val_mae" if h == 1 else f"val_mae_h{h}"
        )
        start = time.perf_counter()
        done = viewcast(
            home,
            "backtest",
            "--horizon",
            str(args.horizon),
            "--origins",
            str(args.origins),
            "--step",
            str(args.step),
            "--json",
        )
        seconds = time.perf_counter() - start
        report = json.loads(done.stdout)
        peers = (
            {} if args.no_peers else peer_errors(Paths(home), args.horizon, args.origins, args.step)
        )
        # the peer chosen on validation: origins whose H days all end before the first one above
        validation = {} if args.no_peers else choose_errors(Paths(home), args)
    steps = {row["h"]: row for row in report["steps"]}
    chosen = json.loads(champion.stdout)
    out = {"set": name, "what": what, "backtest_seconds": seconds, "steps": {}}
    out["champion"] = chosen["champion"]["name"]
    out["ranking"] = [[r["name"], r["score"]] for r in chosen["ranking"][:5]]  # the top 5
    for h in (h for h in REPORTED if h <= args.horizon):
        row = steps[h]
        cell = {
            "champion": row.get("mae"),
            "paths": row.get("paths", 0),
            **{
                k: row.get(k)
                for k in ("coverage_80", "coverage_95", "sqrt_coverage_80", "sqrt_coverage_95")
            },
        }
        cell["peers"] = {
            p: float(np.nanmean(e[:, h - 1]))
            for p, e in peers.items()
            if not np.all(np.isnan(e[:, h - 1]))
        }
        on_val = {
            p: float(np.nanmean(e[:, h - 1]))
            for p, e in validation.items()
            if not np.all(np.isnan(e[:, h - 1]))
        }
        out["steps"][h] = with_choice(cell, cell["peers"], on_val)
    return out


def choice(test: dict[str, float], validation: dict[str, float]) -> tuple[str | None, str | None]:
    """The peer best by test, and the peer chosen on validation (the lowest validation MAE among
    the peers with a test MAE); None where there is none, a NaN MAE counting as none."""
    test = {p: v for p, v in test.items() if math.isfinite(v)}
    val = {p: v for p, v in validation.items() if p in test and math.isfinite(v)}
    return min(test, key=test.get, default=None), min(val, key=val.get, default=None)


def with_choice(cell: dict, test: dict[str, float], validation: dict[str, float]) -> dict:
    """The cell with its best peer by test, the peer chosen on validation and the champion's
    MAE over each."""
    best, pick = choice(test, validation)
    if best is not None:
        cell["best_peer"], cell["ratio"] = best, cell["champion"] / test[best]
    if pick is not None:
        cell["val_peer"], cell["val_ratio"] = pick, cell["champion"] / test[pick]
    return cell


def peers_only(name: str, args) -> dict:
    """One set's peers at the backtest origins and at the validation origins before them."""
    with tempfile.TemporaryDirectory() as tmp:
        home, what = ingested(name, Path(tmp))
        peers = peer_errors(Paths(home), args.horizon, args.origins, args.step)
        validation = choose_errors(Paths(home), args)
    steps = {}
    for h in (h for h in REPORTED if h <= args.horizon):
        steps[h] = {
            "peers": {p: float(np.nanmean(e[:, h - 1])) for p, e in peers.items()},
            "validation": {p: float(np.nanmean(e[:, h - 1])) for p, e in validation.items()},
        }
    return {"set": name, "what": what, "steps": steps}


def bar_tables(results: list[dict], horizon: int) -> None:
    """How often each peer is at or below the best of the others by test, and how often the
    peer chosen on validation is the best by test: what "at or below the best peer by test"
    asks of a method chosen on validation."""
    for h in (h for h in REPORTED if h <= horizon):
        cells = [r["steps"][h] for r in results]
        names = sorted({p for c in cells for p in c["peers"] if math.isfinite(c["peers"][p])})
        print(f"\n### h = {h}: sets (of {len(cells)}) where a peer is at or below the others\n")
        print("| peer | sets | geometric mean over the best other peer |")
        print("|---|---:|---:|")
        for name in names:
            wins, ratios = 0, []
            for c in cells:
                mine = c["peers"].get(name, math.nan)
                others = [v for p, v in c["peers"].items() if p != name and math.isfinite(v)]
                if math.isfinite(mine) and others:
                    wins += mine <= min(others)
                    ratios.append(mine / min(others))
            print(f"| {name} | {wins} | {geomean(ratios):.3f} |")
        chosen_best, chosen_ratios = 0, []
        for c in cells:
            val = {p: v for p, v in c["validation"].items() if math.isfinite(v)}
            test = {p: v for p, v in c["peers"].items() if p in val}
            best, pick = choice(test, val)
            chosen_best += test[pick] <= test[best]
            chosen_ratios.append(test[pick] / test[best])
        print(
            f"\nthe peer chosen on validation is the best by test on {chosen_best} of "
            f"{len(cells)} sets (geometric mean over the best {geomean(chosen_ratios):.3f})"
        )


def with_peers(results: list[dict], fitted: list[dict]) -> list[dict]:
    """The champions of `results` against the peers of another run of this script at the same
    origins (the peers' fits do not depend on viewcast: the same sets, H, origins and step); a
    set that file lacks keeps its own."""
    by_set = {r["set"]: r for r in fitted}
    for result in results:
        if result["set"] not in by_set:  # keeps its own peers
            continue
        for h, cell in result["steps"].items():
            old = by_set[result["set"]]["steps"][h]
            cell["peers"] = old["peers"]
            # a --peers-only file keeps the validation MAEs; a full run, the peer it chose
            chosen = old.get("validation") or {p: 0.0 for p in [old.get("val_peer")] if p}
            with_choice(cell, old["peers"], chosen)
    return results


def tables(results: list[dict], horizon: int, baseline: list[dict] | None = None) -> None:
    for h in (h for h in REPORTED if h <= horizon):
        print(f"\n### h = {h}\n")
        peers = sorted({p for r in results for p in r["steps"][h]["peers"]})
        print(
            "| set | champion | "
            + " | ".join(peers)
            + " | best peer | ratio | peer chosen on validation | ratio |"
        )
        print("|---|---:|" + "---:|" * len(peers) + "---|---:|---|---:|")
        ratios, val_ratios = [], []
        for r in results:
            c = r["steps"][h]
            cells = [f"{c['peers'].get(p, math.nan):,.1f}" for p in peers]
            ratio, val_ratio = c.get("ratio", math.nan), c.get("val_ratio", math.nan)
            ratios.append(ratio)
            val_ratios.append(val_ratio)
            print(
                f"| {r['set']} | {c['champion']:,.1f} | "
                + " | ".join(cells)
                + f" | {c.get('best_peer', '-')} | {ratio:.3f}"
                + f" | {c.get('val_peer', '-')} | {val_ratio:.3f} |"
            )
        at_or_below = sum(1 for x in ratios if x <= 1)
        print(
            f"\ngeometric mean over the peer chosen on validation {geomean(val_ratios):.3f}, "
            f"over the best peer by test {geomean(ratios):.3f}; champion at or below the best "
            f"peer on {at_or_below} of {len(ratios)} sets"
        )
    print("\n### coverage, pooled over the sets' origins (per-step conformal / sqrt(h))\n")
    print("| h | paths | 80% | 95% | sqrt(h) 80% | sqrt(h) 95% |")
    print("|---:|---:|---:|---:|---:|---:|")
    for h in (h for h in REPORTED if h <= horizon):
        cells = [r["steps"][h] for r in results if r["steps"][h]["paths"]]
        paths = sum(c["paths"] for c in cells)
        pooled = {
            k: sum(c[k] * c["paths"] for c in cells) / paths
            for k in ("coverage_80", "coverage_95", "sqrt_coverage_80", "sqrt_coverage_95")
        }
        print(
            f"| {h} | {paths} | {pooled['coverage_80']:.1f} | {pooled['coverage_95']:.1f} | "
            f"{pooled['sqrt_coverage_80']:.1f} | {pooled['sqrt_coverage_95']:.1f} |"
        )
    if baseline:
        print("\n### h = 1 against the baseline file's champion (champion MAE ratio)\n")
        print("| set | champion | baseline champion | MAE | baseline MAE | ratio |")
        print("|---|---|---|---:|---:|---:|")
        old = {r["set"]: r for r in baseline}
        worst = []
        for r in (r for r in results if r["set"] in old):
            a, b = r["steps"][1]["champion"], old[r["set"]]["steps"][1]["champion"]
            worst.append(a / b)
            print(
                f"| {r['set']} | {r['champion']} | {old[r['set']]['champion']} | "
                f"{a:,.1f} | {b:,.1f} | {a / b:.3f} |"
            )
        print(f"\nworst h = 1 ratio {max(worst):.3f}; geometric mean {geomean(worst):.3f}")
    times = [r["backtest_seconds"] for r in results]
    print(f"\nbacktest wall time per set: median {np.median(times):.1f} s, max {max(times):.1f} s")


def load(path: Path) -> list[dict]:
    """A result file, its steps keyed by h again (JSON keys are strings)."""
    results = json.loads(path.read_text())
    for r in results:
        r["steps"] = {int(h): cell for h, cell in r["steps"].items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-minutes", type=float, default=1.5)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--origins", type=int, default=8)
    parser.add_argument("--step", type=int, default=7)
    parser.add_argument(
        "--choose-origins", type=int, help="validation origins of the peer choice (else --origins)"
    )
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--select-horizon", type=int, default=1)
    parser.add_argument("--out", default="horizon.json")
    parser.add_argument("--baseline", help="a result file to compare the h = 1 champions with")
    parser.add_argument("--tables-only", action="store_true", help="print the tables of --out")
    parser.add_argument("--peers-from", help="with --tables-only: the peers of this result file")
    parser.add_argument("--peers-only", action="store_true", help="the peers' bar, no sweeps")
    args = parser.parse_args()
    baseline = load(Path(args.baseline)) if args.baseline else None
    if args.tables_only and args.peers_only:
        bar_tables(load(OUT / args.out), args.horizon)
        return
    if args.tables_only:
        results = load(OUT / args.out)
        if args.peers_from:
            results = with_peers(results, load(Path(args.peers_from)))
        tables(results, args.horizon, baseline)
        return
    names = args.only or list(SETS)
    results = []
    if args.peers_only:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(peers_only(name, args))
            OUT.mkdir(exist_ok=True)
            (OUT / args.out).write_text(json.dumps(results, indent=1))
        bar_tables(results, args.horizon)
        return
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results.append(one_set(name, args))
        OUT.mkdir(exist_ok=True)
        (OUT / args.out).write_text(json.dumps(results, indent=1))
    tables(results, args.horizon, baseline)


if __name__ == "__main__":
    main()
