"""Building models: ingest, features (made when missing or stale), training, sweeps, the main job
(`viewcast run`) and taking series out of the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import tracking
from pipeline.data import features as feats
from pipeline.data import studio
from pipeline.data.errors import ViewcastError
from pipeline.data.ingest import MAX_BYTES, read_views
from pipeline.data.lock import workspace_lock
from pipeline.data.names import repeats_stored
from pipeline.data.store import Store
from pipeline.data.workspace import (
    DEFAULT_TEST_DAYS,
    DEFAULT_VAL_DAYS,
    DEMO_FILES,
    Paths,
    read_final,
)
from pipeline.models.config import DEFAULT_ENSEMBLE_METHOD, ModelConfig
from pipeline.search.engines import Engine

StageHook = Callable[[str, object | None], None]  # (stage, None) before it, (stage, result) after


def _quiet(stage: str, result: object | None) -> None:
    return None


# --- ingest and features ----------------------------------------------------------------------


def expand(paths: list[Path], by_age: bool = False, allow_empty: bool = False) -> list[Path]:
    """Folders stand for the CSV files in them (by name, or oldest first `by_age`: the newest
    export is read last, so its revised days win)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            order = (lambda p: (p.stat().st_mtime_ns, p.name)) if by_age else None
            found = sorted(path.glob("*.csv"), key=order)
            if not found and not allow_empty:
                raise ViewcastError(f"{path}: folder holds no .csv file")
            files += found
        else:
            files.append(path)
    return files


def demo_files(ws: Paths) -> list[tuple[Path, str | None]]:
    """The shipped demo exports with their series ids (see data/raw/*/SOURCE.md)."""
    root = ws.demo_data
    files = [(root / name, series) for name, series in DEMO_FILES.items()]
    missing = [str(path) for path, _ in files if not path.is_file()]
    if missing:
        raise ViewcastError(f"no demo data at {missing[0]}: give export files to ingest")
    return files


@dataclass(frozen=True)
class Ingested:
    """What an ingest read (days and series per file) and what it changed in the store."""

    files: list[tuple[Path, int, int]]  # path, days, series
    report: object  # store.IngestReport
    fill: str
    left_out: tuple[Path, ...] = ()  # YouTube Studio tables of totals beside the days' files


def check_names(files: list[tuple[Path, str | None]]) -> None:
    """A series id given (--name) is not blank."""
    if any(name is not None and not name.strip() for _, name in files):
        raise ViewcastError("--name must not be empty: leave it out to name the series by file")


def ingest(
    ws: Paths,
    files: list[tuple[Path, str | None]],
    fmt: str = "auto",
    fill: str = "linear",
    test_days: int = DEFAULT_TEST_DAYS,
    val_days: int = DEFAULT_VAL_DAYS,
    allow_dates: bool = False,
    max_bytes: int | None = None,
    before_write: Callable[[list[tuple[Path, str | None]], list], None] | None = None,
) -> Ingested:
    """Read (file, series id) pairs, every one before anything is written, then merge them into
    the store in one write (`before_write` sees the files and what they hold first, and may
    refuse them). YouTube Studio's table of totals beside other files (an unzipped export
    folder) is left out: it holds no days."""
    if max_bytes is not None and max_bytes < 1:
        raise ViewcastError(f"--max-bytes must be positive, got {max_bytes}")
    tables = [path for path, _ in files if studio.table_of_totals(path)]
    if tables and len(tables) < len(files):  # alone, read_views refuses it with a hint
        left_out = set(tables)
        files = [(path, name) for path, name in files if path not in left_out]
    else:
        tables = []
    check_names(files)
    limit = max_bytes or MAX_BYTES
    batches = [read_views(path, name, fmt, allow_dates, limit) for path, name in files]
    repeats_stored(ws, files, batches)  # a re-export under another file name: not a 2nd copy
    if before_write is not None:
        before_write(files, batches)
    report = Store(ws).ingest(batches, fill=fill, test_days=test_days, val_days=val_days)
    read = [(path, len(b), len(b.names)) for (path, _), b in zip(files, batches, strict=True)]
    return Ingested(read, report, fill, tuple(tables))


def features(ws: Paths, spec) -> tuple[list[dict], Path]:
    """Every lag window's row counts, and the recorded spec's path."""
    summary = feats.summarise_spec(ws, spec)
    return summary, feats.save_spec(ws, spec, summary)


def made_features(ws: Paths):
    """The recorded feature spec, made when it is missing (the default lags) or stale (the store
    changed since: the same spec again). Each stage makes what it needs, like make: (spec, what
    was made, '' when nothing)."""
    found = feats.recorded_spec(ws)
    if found is not None and found[1]:
        return found[0], ""
    spec = found[0] if found is not None else feats.FeatureSpec()
    features(ws, spec)
    lags = ",".join(map(str, spec.lags))
    if found is None:
        return spec, f"features: none recorded yet, made them (lags {lags})"
    return (
        spec,
        f"features: the store changed since they were recorded, made them again (lags {lags})",
    )


# --- training -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    model: ModelConfig
    result: object  # train.TrainResult
    run_id: str
    made: str = ""  # what was made first (features), '' when nothing


def train_one(
    ws: Paths,
    model: dict,
    tcfg,
    series: list[str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Trained:
    """One model (ModelConfig fields; the target transform defaults to the one `viewcast
    features` recorded) on the training days of the chosen series (all split ones by default),
    early-stopped on validation, logged to MLflow under the name a sweep gives its configuration."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.outcome import training_outcome
    from pipeline.models.train import fit
    from pipeline.search.grids import config_name, how_trained

    recorded, made = made_features(ws)
    mcfg = ModelConfig(
        **(model | {"target_transform": model.get("target_transform") or recorded.target_transform})
    )
    spec = feats.FeatureSpec((mcfg.lags,), mcfg.target_transform)
    windows = feats.select_series(feats.build(ws, spec)[mcfg.lags], series)
    result = fit(windows, mcfg, tcfg, on_epoch)
    data = feats.data_params(ws, windows)
    outcome = training_outcome(windows, result, data, keep_intervals=not series)
    name = config_name(mcfg) + how_trained(mcfg, tcfg)  # as a sweep names it, for the UI
    run_id = tracking.log_training(
        ws, windows, mcfg, tcfg, result.model, result.device, outcome, data, run_name=name
    )
    return Trained(mcfg, result, run_id, made)


def train_direction(
    ws: Paths,
    lags: int,
    epochs: int,
    lr: float,
    loss: str = "ce",
    seed: int = 0,
    series: list[str] | None = None,
):
    """L7: the softmax classifier of tomorrow's direction (down, same, up) on the training
    days, logged as an MLflow run (stage study, tag task=direction); (run id, result)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.lecture.classify import train_direction as fit_direction

    store = Store(ws)
    windows = feats.select_series(
        feats.lag_windows(store.read_dev(), store.read_splits(), lags), series
    )
    result = fit_direction(windows, loss, epochs, lr, seed)
    tags = {"task": "direction"}
    with tracking.start_run(ws, f"direction {loss} lags{lags}", tracking.Stage.STUDY, tags) as run:
        run.params({"task": "direction", "lags": lags, "epochs": epochs, "lr": lr, "loss": loss})
        run.params({"seed": seed, "cut_down": result.cuts[0], "cut_up": result.cuts[1]})
        keys = ("train_accuracy", "val_accuracy", "majority_accuracy", "persistence_accuracy")
        run.metrics({k: getattr(result, k) for k in keys})
        for key, values in result.history.items():
            run.series(key, [(e, v, 0) for e, v in enumerate(values, 1)])
        return run.run_id, result


def sweep(
    ws: Paths,
    grid: str = "default",
    folds: int = 1,
    max_minutes: float | None = None,
    on_step=None,
    series: list[str] | None = None,
    stack: bool = True,
    seeds: int = 1,
    engine=None,
    horizon: int = 1,
):
    """A grid by name (lecture, default or a TOML file) as a resumable sweep: stacked (one
    model per shape) unless `stack` is off, each configuration bagged over `seeds` seeds,
    trained here or on a Ray cluster (`engine`, a pipeline.search.engines.Engine); `horizon` H
    > 1 adds the direct twins and scores every run H days ahead (val_mae_h<H>); the default grid
    adds the year-of-memory twins where every series has two years before validation (a TOML
    grid says `lags = 367` and `recent = [...]` itself)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import grids, sweeps

    grid, candidates = grids.grid_for(grid, lambda: Store(ws).dev_days())
    return sweeps.sweep(
        ws,
        grid,
        candidates,
        folds,
        max_minutes,
        on_step,
        series,
        stack=stack,
        seeds=seeds,
        engine=engine or Engine(),
        horizon=horizon,
        year=None if grid == "default" else False,
    )


def champion_or(ws: Paths, run_ids: list[str] | None) -> tuple[list[str], str | None]:
    """The runs to finalize (default: the champion) and the champion's run id, if any."""
    try:
        champion = tracking.champion_run(ws)
    except ViewcastError:
        if not run_ids:
            raise
        champion = None
    return run_ids or [champion], champion


# --- the main job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedTest:
    payload: dict  # final.json
    public_mae: float | None  # the champion's submission, None when already finalized


def run_inputs(
    ws: Paths, files: list[tuple[Path, str | None]] | None, demo: bool = False
) -> tuple[list[tuple[Path, str | None]], str]:
    """What `run` ingests, and a line saying what it runs on when no file is given: the files
    given (and the demo exports with `demo`); without files, nothing when the workspace holds
    series of its own, the demo exports only into an empty workspace."""
    chosen = list(files or [])
    if demo:
        return chosen + demo_files(ws), ""
    if chosen:
        return chosen, ""
    store = Store(ws)
    if store.generation() is not None:  # it held data: never the demo unless asked
        held = len(store.read_manifest()["series"])
        if not held:
            raise ViewcastError(
                f"the store in {ws.store} holds no series (all dropped): give exports to run on, "
                "or --demo for the demo data"
            )
        return [], f"no export given: running on the {held:,} series already in {ws.store}"
    return demo_files(ws), f"no data yet: running on the demo exports in {ws.demo_data}"


def drop(ws: Paths, names: list[str], force: bool = False) -> list[str]:
    """Take series out of the store (atomically, under the workspace lock); the series left.
    Refused once the sealed test is finalized (those days were scored), unless `force`, which
    is recorded in MLflow (a `drop` run naming the series)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import holdout

    with locked(ws):
        Store(ws).require_series(names)  # an unknown name first, finalized or not
        final = holdout.already_final(ws)
        if final is not None and not force:
            raise ViewcastError(
                f"{final}: its scores cover these series; `viewcast drop --force` drops them "
                "anyway (recorded in MLflow)"
            )
        left = Store(ws).drop(names)
        if final is not None:
            tags = {"dropped": ",".join(names), "forced": "True", "reason": final}
            with tracking.start_run(ws, "drop", tracking.Stage.DROP, tags) as run:
                run.params({"series": ",".join(names), "left": len(left)})
    return left


def run_all(
    ws: Paths,
    files: list[tuple[Path, str | None]] | None = None,
    grid: str = "default",
    max_minutes: float = 5.0,
    folds: int = 1,
    ensemble: int = 5,
    on_stage: StageHook = _quiet,
    on_step=None,
    seeds: int = 1,
    method: str = DEFAULT_ENSEMBLE_METHOD,
    horizon: int = 1,
) -> SealedTest:
    """Ingest (`files`; None: what `run_inputs` chooses), features, sweep, select, submit and
    finalize. A workspace whose test was finalized shows that result instead of scoring again
    (after ingest and features: no sweep, no select, so its champion stays the one tested).
    `horizon` H > 1: recursive or direct is one more grid axis and the champion is selected on
    val_mae_h<H> (the validation days' error over days 1..H)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import grids, holdout, selection, sweeps

    # options first: a bad one is refused before anything is ingested
    sweeps.check_options(folds, seeds, horizon, max_minutes)
    selection.check_ensemble(ensemble, method)
    if grid not in grids.GRIDS:
        grids.load_grid(grid)  # a TOML grid's every error, before any work
    # read first: a damaged report is its own line before any work, and is never scored again
    final = read_final(ws) if ws.final_report.exists() else None
    files = files if files is not None else run_inputs(ws, None)[0]
    metric = "val_mae" if horizon <= 1 else f"val_mae_h{horizon}"
    steps: list[tuple[str, Callable[[], object]]] = [
        ("ingest", lambda: ingest(ws, files)),
        ("features", lambda: features(ws, feats.FeatureSpec())[0]),
        (
            "sweep",
            lambda: sweep(ws, grid, folds, max_minutes, on_step, seeds=seeds, horizon=horizon),
        ),
        ("select", lambda: selection.select(ws, metric, ensemble=ensemble, method=method)),
    ]
    if final is not None:  # the champion stays the run the sealed test scored
        steps = steps[:2]
    if not files:  # [] : the store's series as they are, nothing to ingest
        steps = steps[1:]
    results: dict[str, object] = {}
    for name, step in steps:
        on_stage(name, None)
        results[name] = step()
        on_stage(name, results[name])
    on_stage("test", None)
    if final is not None:
        sealed = SealedTest(final, None)
    else:
        champion = results["select"].champion.run_id
        public = holdout.submit(ws, champion).public_mae
        sealed = SealedTest(holdout.finalize(ws, [champion], champion), public)
    on_stage("test", sealed)
    return sealed


# --- every morning ------------------------------------------------------------------------------


# --- one stage each: what the entry points call ---------------------------------------------------


def locked(ws: Paths, wait: float = 0.0):
    """The workspace's exclusive lock (another writer: wait up to `wait` s, then LockedError)."""
    return workspace_lock(ws, wait)


# --- the lecture ---------------------------------------------------------------------------------
