"""Rolling-origin backtests: how good a configuration is 1..H days ahead (Prophet's
cross_validation + performance_metrics, statsforecast's cross_validation), the sealed test kept.

Each series' origins are its last day - H + 1, then every `step` days back, `origins` of them. At
an origin o the pipeline is replayed on the days before o alone: the configuration trained as a
sweep trains it (training days before o - val_days, early stopping on the val_days before o; every
member of an ensemble, each seed of a bagged one, members of one shape batched together), its
intervals at each step calibrated on those validation days and up to two earlier windows, each
forecast by the configuration trained before it (search.calibration, as the champion's), then refit
as `viewcast refit` does, on every day before o for the epoch counts early stopping found; the
refit forecasts o..o+H-1 and is scored on what happened. Before `viewcast finalize` only the
training and validation days are read (the sealed test stays sealed); after it, every day."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline import plots, tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.store import SeriesSplit, Splits, Store
from pipeline.data.table import ViewsTable
from pipeline.data.workspace import Paths
from pipeline.models.config import Blend
from pipeline.models.families import EnsembleModel
from pipeline.models.horizons import forecast_paths
from pipeline.models.intervals import LEVELS, sqrt_widths
from pipeline.models.train import fit
from pipeline.search.calibration import calibrate, combined, configurations
from pipeline.search.grids import Candidate
from pipeline.tracking import Stage, Tag

MIN_TRAIN_DAYS = 28  # training days an origin needs (beyond the window) for a series to count
SEASON = 7  # MASE's scale: the in-sample MAE of the seasonal naive forecast y_t = y_{t-7}


@dataclass(frozen=True)
class Plan:
    horizon: int = 28
    origins: int = 8
    step: int = 7

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.origins < 1 or self.step < 1:
            raise ViewcastError("--horizon, --origins and --step must be at least 1")


@dataclass
class Scores:
    """Forecasts of every (origin, series) scored at each step: flat arrays of equal length
    per step, stacked as (paths, H)."""

    code: list[np.ndarray] = field(default_factory=list)
    error: list[np.ndarray] = field(default_factory=list)
    actual: list[np.ndarray] = field(default_factory=list)
    pred: list[np.ndarray] = field(default_factory=list)
    scale: list[np.ndarray] = field(default_factory=list)
    inside: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, code, pred, actual, scale, inside: dict[str, np.ndarray]) -> None:
        self.code.append(code)
        self.pred.append(pred)
        self.actual.append(actual)
        self.error.append(np.abs(actual - pred))
        self.scale.append(scale)
        for key, hit in inside.items():
            self.inside.setdefault(key, []).append(hit)


@dataclass(frozen=True)
class Backtest:
    run_id: str  # the backtest's own MLflow run
    source_run_id: str
    plan: Plan
    sealed: bool  # the test days were left out (before finalize)
    steps: list[dict]  # per h: mae, smape, mase, coverage_80/95, sqrt_coverage_80/95, paths
    series: dict[str, list[dict]]  # per series, per h (the same keys)
    skipped: list[str]  # series too short for the first origin
    last_days: dict[str, str]  # each series' last day read (the last origin's day H)
    seconds: float
    figure: Path


def backtest(ws: Paths, run_id: str, plan: Plan) -> Backtest:
    """Refit the run's configuration at each origin, forecast H days, score every step."""
    started = time.perf_counter()
    store = Store(ws)
    sealed = not ws.final_report.exists()
    table = store.read_dev() if sealed else store.read_all()
    splits = store.read_splits()
    run = tracking.get_run(ws, run_id)
    members, blend = configurations(ws, run)
    lags = max(c.model.lags for c in members)
    starts, ends = table.bounds()
    has_days = ends > starts
    last = np.where(has_days, table.day[np.maximum(ends - 1, 0)], 0).astype(np.int64)
    first = np.where(has_days, table.day[np.minimum(starts, max(len(table) - 1, 0))], 0)
    back = (plan.origins - 1) * plan.step + plan.horizon - 1  # the first origin, from the end
    need = back + splits.val_days + lags + MIN_TRAIN_DAYS
    ok = has_days & (last - first >= need)
    skipped = [str(n) for n in table.names[~ok]]
    if not ok.any():
        raise ViewcastError(
            f"no series is long enough for {plan.origins} origins {plan.step} days apart and "
            f"{plan.horizon} days ahead (each needs more than {need} days)"
        )
    scores = Scores()
    for k in range(plan.origins):
        origin = last - plan.horizon + 1 - (plan.origins - 1 - k) * plan.step
        _score_origin(table, splits, members, blend, origin, ok, last, plan.horizon, scores)
    steps, per_series = _summaries(scores, table.names, plan.horizon)
    last_days = {
        str(table.names[s]): str(np.datetime64(int(last[s]), "D")) for s in np.flatnonzero(ok)
    }
    found = Backtest("", run_id, plan, sealed, steps, per_series, skipped, last_days, 0.0, Path())
    return _record(ws, run, found, started)


def _score_origin(table, splits, members, blend, origin, ok, last, horizon, scores) -> None:
    """Train at one origin (its own split), calibrate, forecast H days, score them."""
    before = ok[table.code] & (table.day < origin[table.code])
    past = table.take(before)
    val_days = splits.val_days
    cut = Splits(
        splits.test_days,
        val_days,
        {
            str(table.names[s]): SeriesSplit(
                int(origin[s] - val_days), int(origin[s]), int(origin[s]), int(origin[s])
            )
            for s in np.flatnonzero(ok)
        },
    )
    found = calibrate(past, cut, members, blend, horizon)  # out of sample, as the champion's
    calibrated, results = found.intervals, found.results
    model = _refit(past, cut, members, results, blend)  # as production: every day before o
    one_day = sqrt_widths(calibrated, horizon)  # the heuristic sqrt(h) replaced, measured too
    rows = np.flatnonzero(ok)
    starts = table.bounds()[0]
    positions = starts[rows] + (origin[rows] - table.day[starts[rows]])
    found = forecast_paths(model, table, positions.astype(np.int64), horizon, last)
    names = table.names[found.code].astype(str)
    inside = {}
    for h in range(horizon):
        steps = np.full(len(rows), h + 1)
        for label, widths in (("", calibrated), ("sqrt_", one_day)):
            for lv in LEVELS:
                half = widths.half_width(lv, names, steps, found.pred[:, h])
                hit = np.abs(found.actual[:, h] - found.pred[:, h]) <= half
                inside.setdefault(f"{label}coverage_{lv}", []).append(hit)
    scores.add(
        found.code,
        found.pred,
        found.actual,
        _seasonal_scale(past, found.code),
        {key: np.stack(hits, axis=1) for key, hits in inside.items()},
    )


def _refit(past: ViewsTable, cut: Splits, members: list[Candidate], results, blend: Blend):
    """What `viewcast refit` does at the origin: each member (each seed) trained again on every
    day before it, for the epoch count its early stopping found (the closed form solved again)."""
    models = []
    for cand, result in zip(members, results, strict=True):
        windows = feats.lag_windows(past, cut, cand.model.lags)
        windows = replace(windows, split=np.zeros_like(windows.split), val_start=None)
        epochs = result.seed_epochs or [result.best_epoch]
        seeds = [
            fit(
                windows,
                cand.model,
                replace(
                    cand.train,
                    seed=cand.train.seed + k,
                    seeds=1,
                    epochs=max(int(e), 1),
                    patience=0,
                    restore_best=False,
                ),
            ).model.eval()
            for k, e in enumerate(epochs)
        ]
        models.append(seeds[0] if len(seeds) == 1 else EnsembleModel(seeds).eval())
    return combined(models, blend)


def _seasonal_scale(past: ViewsTable, code: np.ndarray) -> np.ndarray:
    """Each path's series' in-sample MAE of y_t = y_{t-7} over its days before the origin
    (observed days only; at least 1 view, so a flat series does not divide by zero)."""
    same = np.zeros(len(past), bool)
    same[SEASON:] = past.code[SEASON:] == past.code[:-SEASON]
    same[SEASON:] &= ~past.imputed[SEASON:] & ~past.imputed[:-SEASON]
    diff = np.zeros(len(past))
    diff[SEASON:] = np.abs(past.views[SEASON:] - past.views[:-SEASON])
    total = np.bincount(past.code[same], diff[same], minlength=len(past.names))
    count = np.bincount(past.code[same], minlength=len(past.names))
    scale = np.maximum(total / np.maximum(count, 1), 1.0)
    return scale[code]


def _metrics(error, actual, pred, scale, inside: dict[str, np.ndarray]) -> dict:
    """MAE, SMAPE (%), MASE and interval coverage (%) of the scored entries of one step."""
    seen = ~np.isnan(actual)
    if not seen.any():
        return {"paths": 0}
    e, a, p = error[seen], actual[seen], pred[seen]
    denominator = np.abs(a) + np.abs(p)
    smape = np.where(denominator > 0, 200 * e / np.where(denominator > 0, denominator, 1), 0)
    out = {
        "paths": int(seen.sum()),
        "mae": float(e.mean()),
        "smape": float(smape.mean()),
        "mase": float((e / scale[seen]).mean()),
    }
    return out | {key: float(100 * hit[seen].mean()) for key, hit in inside.items()}


def _summaries(scores: Scores, names: np.ndarray, horizon: int):
    code = np.concatenate(scores.code)
    error, actual = np.concatenate(scores.error), np.concatenate(scores.actual)
    pred, scale = np.concatenate(scores.pred), np.concatenate(scores.scale)
    inside = {key: np.concatenate(hits) for key, hits in scores.inside.items()}

    def at(h: int, rows: np.ndarray | slice = slice(None)) -> dict:
        hits = {key: v[rows, h] for key, v in inside.items()}
        return {"h": h + 1} | _metrics(
            error[rows, h], actual[rows, h], pred[rows, h], scale[rows], hits
        )

    steps = [at(h) for h in range(horizon)]
    per_series = {}
    for s in np.unique(code):
        rows = np.flatnonzero(code == s)
        per_series[str(names[s])] = [at(h, rows) for h in range(horizon)]
    return steps, per_series


def _record(ws: Paths, run, found: Backtest, started: float) -> Backtest:
    """One MLflow run (stage backtest): the metrics stepped by h, the table and the picture."""
    plan, sealed, steps, skipped = found.plan, found.sealed, found.steps, found.skipped
    seconds = time.perf_counter() - started
    name = f"backtest {run.name or run.run_id} h{plan.horizon}"
    tags = {Tag.SOURCE_RUN: run.run_id, "sealed_test": str(sealed)}
    with tracking.start_run(ws, name, Stage.BACKTEST, tags) as writer:
        writer.params(
            {
                "source_run_id": run.run_id,
                "horizon": plan.horizon,
                "origins": plan.origins,
                "step": plan.step,
                "sealed_test": sealed,
                "series": len(found.series),
                "skipped": len(skipped),
            }
        )
        now = int(time.time() * 1000)
        keys = sorted({k for row in steps for k in row} - {"h", "paths"})
        for key in keys:
            points = [(row["h"], row[key], now) for row in steps if key in row]
            writer.series(key, points)
        writer.metrics({"seconds": seconds})
        folder = ws.reports / "backtests"
        folder.mkdir(parents=True, exist_ok=True)
        figure = folder / f"{writer.run_id}.png"
        plots.horizon_figure(steps, figure, name)
        payload = {
            "steps": steps,
            "series": found.series,
            "skipped": skipped,
            "last_days": found.last_days,
        }
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "backtest.json"
            table.write_text(json.dumps(payload, indent=1))
            writer.artifact(table)
        writer.artifact(figure)
    return replace(found, run_id=writer.run_id, seconds=seconds, figure=figure)
