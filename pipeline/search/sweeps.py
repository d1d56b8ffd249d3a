"""Sweeps: every configuration of a grid trained and logged as a nested MLflow run.

A sweep is one MLflow parent run with one nested run per configuration. Its identity (`sweep_key`)
is a digest of the configurations, the fold count and the store generation, so running the same
sweep again resumes it: configurations with a finished (or deterministically failed) run are
skipped. Every sweep also runs the baselines that must be beaten: naive (y = x_1, the lecture's
"one-day shift"), seasonal naive (y = x_7) and the closed-form linear model.

Selection reads only `stage = train` runs and their validation metric; test rows, submissions and
leaderboard scores are out of its reach (it never opens the store's sealed file).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import plots, tracking
from pipeline.data import features as feats
from pipeline.data.errors import ViewcastError
from pipeline.data.features import LagWindows
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models.config import YEAR_MIN_DAYS
from pipeline.models.horizons import validation_mae_ahead
from pipeline.models.outcome import training_outcome
from pipeline.search import engines
from pipeline.search.budget import Budget
from pipeline.search.engines import Engine
from pipeline.search.ensembles import OOF_FILE, OOF_LIMIT, Forecasts
from pipeline.search.grids import Candidate, baselines, with_direct, with_year
from pipeline.search.units import SweepData, plan_units, with_seeds
from pipeline.tracking import Stage, SweepPurpose, Tag

# --- the sweep ---------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did: its parent run, and how many configurations ran, were resumed or cut."""

    run_id: str
    total: int
    grid: str = ""  # the grid trained (`default` turns into `panel` on a large store)
    ran: int = 0
    resumed: int = 0
    failed: int = 0
    skipped: int = 0  # left out by the time budget
    seconds: float = 0.0
    train_seconds: float = 0.0  # where the time went: training, MLflow logging, learning curves
    log_seconds: float = 0.0
    plot_seconds: float = 0.0


def sweep_key(
    candidates: list[Candidate],
    folds: int,
    generation: str,
    series: list[str] | None = None,
    horizon: int = 1,
) -> str:
    """The same sweep (resumed) has the same key; one day ahead keeps the keys from before."""
    parts = [[c.key for c in candidates], folds, generation, sorted(series or [])]
    payload = json.dumps(parts + ([horizon] if horizon > 1 else []))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_options(folds: int, seeds: int, horizon: int, max_minutes: float | None) -> None:
    """A sweep's numbers, refused before any work."""
    if folds < 1 or seeds < 1 or horizon < 1:
        raise ViewcastError(
            f"--folds, --seeds and --horizon must be at least 1, got {folds}, {seeds}, {horizon}"
        )
    if max_minutes is not None and not max_minutes > 0:
        raise ViewcastError(f"--max-minutes must be positive, got {max_minutes:g}")


def sweep(
    ws: Paths,
    grid: str,
    candidates: list[Candidate],
    folds: int = 1,
    max_minutes: float | None = None,
    on_step: Callable[[int, int, Candidate, float | None], None] | None = None,
    series: list[str] | None = None,
    purpose: SweepPurpose = SweepPurpose.SELECTION,
    stack: bool = True,
    seeds: int = 1,
    engine: Engine = Engine(),
    horizon: int = 1,
    year: bool | None = None,
) -> SweepReport:
    """Train the baselines and the grid as nested runs under one parent (on every split series,
    or the named ones); resume if it exists. Configurations of one shape train together as a
    stack (`stack=False`: one at a time); with `seeds` K each configuration is the mean of K
    seeds; the engine trains the units here or on a Ray cluster (this process alone logs).
    An experiment's sweep (the lecture report's) is never `select`'s default. With `horizon` H
    > 1 the grid gains each network's direct H-day twin (grids.with_direct) and every run is
    also scored H days ahead on the validation days (val_mae_h<H>). `year` (None: when every
    series has two years of days before its validation days, `year_of_memory`) adds each
    configuration's twin that reads the same weekday a year back (grids.with_year)."""
    check_options(folds, seeds, horizon, max_minutes)
    store = Store(ws)
    data = SweepData(store.read_dev(), store.read_splits(), series, folds, horizon)
    if len(data.dev) == 0:
        raise ViewcastError("no series is long enough to split: ingest more days first")
    generation = store.require().name
    base = baselines()
    grid_cands = [with_seeds(c, seeds) for c in candidates if c.key not in {b.key for b in base}]
    year = year_of_memory(data) if year is None else year
    grid_cands = with_direct(grid_cands, horizon)
    candidates = base + (with_year(grid_cands) if year else grid_cands)
    key = sweep_key(candidates, folds, generation, series, horizon)
    params = {"grid": grid, "folds": folds, "configs": len(candidates), "seeds": seeds}
    params |= {"horizon": horizon, "year_of_memory": year}
    params |= {"series": ",".join(series) if series else "all", "stacked": stack}
    params |= {"store_generation": generation, "max_minutes": max_minutes, "engine": engine.name}
    with engines.opened(engine) as runner:  # a Ray cluster is reached before the run opens
        parent = _open_sweep(ws, key, grid, purpose, params)
        done = _finished_configs(ws, parent)
        resumed = sum(c.key in done for c in candidates)
        report = SweepReport(parent, len(candidates), grid, resumed=resumed)
        todo = [(i, c) for i, c in enumerate(candidates, start=1) if c.key not in done]
        start, status = time.perf_counter(), "KILLED"
        budget = Budget(None if max_minutes is None else max_minutes * 60)
        units = plan_units(todo, stack)

        def starting(unit: list[tuple[int, Candidate]]) -> bool:
            # the time budget: start no unit that would likely overrun it
            elapsed = time.perf_counter() - start
            if not budget.allows(unit, data.train_rows(unit), folds, elapsed):
                return False
            if on_step is not None:
                on_step(unit[0][0] - 1, len(candidates), unit[0][1], None)
            return True

        try:
            waited = time.perf_counter()
            for unit, outcomes, trained in runner.train_units(data, units, stack, starting):
                report.train_seconds += time.perf_counter() - waited
                logging_from = time.perf_counter()
                for i, cand in unit:
                    val_mae = _log_outcome(ws, data, cand, outcomes[cand.key], parent, key, stack)
                    report.ran += val_mae is not None
                    report.failed += val_mae is None
                    if on_step is not None and val_mae is not None:
                        on_step(i, len(candidates), cand, val_mae)
                # a unit's cost: its training (on a cluster, from sent to done) and its logging
                took = trained + time.perf_counter() - logging_from
                budget.record(unit, data.train_rows(unit), folds, took)
                waited = time.perf_counter()
            report.skipped = len(todo) - report.ran - report.failed
            status = "FINISHED"
            if stack:
                began = time.perf_counter()
                plot_best(ws, parent)
                report.plot_seconds = time.perf_counter() - began
        finally:
            report.seconds = time.perf_counter() - start
            report.log_seconds = report.seconds - report.train_seconds - report.plot_seconds
            _close_sweep(ws, parent, report, status)
    return report


def year_of_memory(data: SweepData) -> bool:
    """Whether the year's lags are worth a grid axis: every series swept has at least two years
    of days before its validation days (and folds > 1 still leave them a year to learn from)."""
    starts, ends = data.dev.bounds()
    names = data.dev.names.astype(str)
    chosen = np.isin(names, data.series) if data.series else np.ones(len(names), bool)
    split = np.array([n in data.splits.series for n in names]) & chosen & (ends > starts)
    if not split.any():
        return False
    first = data.dev.day[starts[split]].astype(np.int64)
    val = np.array([data.splits.series[n].val_start for n in names[split]], np.int64)
    before = val - first - (data.folds - 1) * data.splits.val_days
    return bool(before.min() >= YEAR_MIN_DAYS)


def _open_sweep(ws: Paths, key: str, grid: str, purpose: SweepPurpose, params: dict) -> str:
    """The parent run of the sweep with this key: found again (resumed), or started."""
    found = tracking.find_sweep(ws, key)
    if found is not None:
        tracking.set_status(ws, found.run_id, "RUNNING")
        for child in tracking.sweep_children(ws, found.run_id, finished_only=False):
            if child.status == "RUNNING":  # its writer died (kill -9): it trains again below
                reason = "left RUNNING by an interrupted sweep; trained again"
                tracking.kill_run(ws, child.run_id, reason)
        return found.run_id
    tags = {Tag.SWEEP_KEY: key, "grid": grid, Tag.SWEEP_PURPOSE: str(purpose)}
    parent = tracking.create_run(ws, f"sweep {grid}", Stage.SWEEP, tags)
    parent.params(params)
    return parent.run_id


def _close_sweep(ws: Paths, parent: str, report: SweepReport, status: str) -> None:
    run = tracking.writer(ws, parent)
    run.metrics({"configs_run": report.ran, "configs_skipped": report.skipped})
    run.tags({"complete": str(report.skipped == 0 and status == "FINISHED")})
    tracking.set_status(ws, parent, status)


def _log_outcome(
    ws: Paths, data: SweepData, cand: Candidate, outcome, parent: str, key: str, stacked: bool
) -> float | None:
    """Log one configuration under the sweep; its validation MAE (the mean over folds), or None
    when it failed (a FAILED run says why)."""
    tags = {Tag.SWEEP_KEY: key, Tag.CONFIG_KEY: cand.key, Tag.BASELINE: str(cand.baseline)}
    if cand.baseline:
        tags[Tag.BASELINE_ROLE] = cand.name
    if isinstance(outcome, Exception):
        tags |= {Tag.STAGE: str(Stage.TRAIN), Tag.ERROR: str(outcome)}
        tracking.log_failure(ws, parent, cand.name, cand.model, tags)
        return None
    first = outcome[0]
    metrics = {f"best_epoch_seed{k}": e for k, e in enumerate(first.seed_epochs)}
    if data.horizon > 1:  # the standard split's validation days (fold 1), H days ahead
        metrics[f"val_mae_h{data.horizon}"] = validation_mae_ahead(
            first.model, data.dev, data.splits, data.horizon, data.series
        )
    if data.folds > 1:
        metrics |= {f"val_mae_fold{k}": r.val_mae for k, r in enumerate(outcome, 1)}
        metrics["val_mae"] = statistics.fmean(r.val_mae for r in outcome)
    windows = data.lags(cand.model.lags)
    params = feats.data_params(ws, windows) | {"folds": data.folds}
    oof = out_of_fold(data, windows, outcome)
    record = training_outcome(
        windows,
        first,
        params,
        metrics,
        keep_intervals=data.series is None,  # intervals hold for every series or none
        curve_png=not stacked,
        files=[] if oof is None else [lambda folder: oof.write(folder / OOF_FILE)],
    )
    tracking.log_training(
        ws,
        windows,
        cand.model,
        cand.train,
        first.model,
        first.device,
        record,
        params,
        run_name=cand.name,
        tags=tags | {"stacked": str(stacked)},
        parent_run_id=parent,
    )
    return metrics.get("val_mae", first.val_mae)


def out_of_fold(data: SweepData, windows: LagWindows, results: list) -> Forecasts | None:
    """A configuration's validation forecasts of every fold (what greedy ensembles are built
    on), or None past OOF_LIMIT forecasts."""
    if len(windows.rows("val")) * len(results) > OOF_LIMIT:
        return None
    targets, folds, preds = [], [], []
    for k, result in enumerate(results, 1):
        fw = feats.fold(windows, data.splits, k)
        rows = fw.rows("val")
        pred = result.val_pred
        if pred is None or len(pred) != len(rows):
            pred = fw.predict(result.model, rows)
        targets.append(fw.target[rows]), folds.append(np.full(len(rows), k, np.int8))
        preds.append(np.asarray(pred, np.float64))
    return Forecasts(np.concatenate(targets), np.concatenate(folds), np.concatenate(preds))


PLOTTED = 10  # learning curves drawn after a stacked sweep: its best runs (others on demand)


def plot_best(ws: Paths, parent: str, most: int = PLOTTED) -> list[str]:
    """Draw the learning curve of the sweep's `most` best trained runs that lack one."""
    runs = [r for r in tracking.sweep_children(ws, parent) if r.metrics.get("epochs_run", 0) > 0]
    best = sorted(runs, key=lambda r: r.metrics.get("val_mae", math.inf))[:most]
    drawn = []
    for run in best:
        if "learning_curve.png" not in tracking.artifacts(ws, run.run_id):
            draw_learning_curve(ws, run.run_id)
            drawn.append(run.run_id)
    return drawn


def draw_learning_curve(ws: Paths, run_id: str) -> Path:
    """Draw a run's learning curve from its logged curves and log it as learning_curve.png;
    the file's path (inside the run's artifacts when they are local)."""
    run = tracking.get_run(ws, run_id)  # an unknown id: one line saying so
    logged = tracking.epoch_curves(ws, run_id)
    if not logged["train_loss"][1]:
        raise ViewcastError(f"run {run_id} has no learning curve (nothing was trained by descent)")
    names = {"train_loss": "train_loss", "grad_norm": "grad_norm", "val_mae": "val_mae_epoch"}
    curves = {key: logged[name][1] for key, name in names.items()}
    epochs = {key: logged[name][0] for key, name in names.items()}
    tracking.writer(ws, run_id).figures(
        {"learning_curve.png": lambda path: plots.learning_curve(curves, path, epochs)}
    )
    return Path(run.artifact_uri.removeprefix("file://")) / "learning_curve.png"


def _finished_configs(ws: Paths, parent: str) -> set[str]:
    """Configurations of the sweep already done: finished, or failed for a reason that repeats."""
    return {
        r.tags[Tag.CONFIG_KEY]
        for r in tracking.sweep_children(ws, parent, finished_only=False)
        if r.status == "FINISHED" or Tag.ERROR in r.tags
    }
