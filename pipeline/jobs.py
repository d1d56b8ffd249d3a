"""Jobs: the orchestration of the stages, for the CLI, the notebook and the tests alike.

A job takes a workspace and plain arguments, calls the stage modules in order and returns what
they produced; it never prints. Where a person waits, a job takes an optional callback (`on_stage`,
`on_step`, `on_epoch`) that the CLI turns into progress bars and tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.errors import DriftError, ViewcastError
from pipeline.data.workspace import (
    DEFAULT_TEST_DAYS,
    DEFAULT_VAL_DAYS,
    DEMO_FILES,
    Paths,
    read_final,
)
from pipeline.lecture import REPORT as LECTURE_REPORT  # noqa: F401  (the CLI's)
from pipeline.lecture import STUDIES as STUDIES  # the CLI's
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


def ingest(
    ws: Paths,
    files: list[tuple[Path, str | None]],
    fmt: str = "auto",
    fill: str = "linear",
    test_days: int = DEFAULT_TEST_DAYS,
    val_days: int = DEFAULT_VAL_DAYS,
    allow_dates: bool = False,
    max_bytes: int | None = None,
) -> Ingested:
    """Read (file, series id) pairs, every one before anything is written, then merge them into
    the store in one write."""
    from pipeline.data.ingest import MAX_BYTES, read_views
    from pipeline.data.store import Store

    limit = max_bytes or MAX_BYTES
    batches = [read_views(path, name, fmt, allow_dates, limit) for path, name in files]
    report = Store(ws).ingest(batches, fill=fill, test_days=test_days, val_days=val_days)
    read = [(path, len(b), len(b.names)) for (path, _), b in zip(files, batches, strict=True)]
    return Ingested(read, report, fill)


def features(ws: Paths, spec) -> tuple[list[dict], Path]:
    """Every lag window's row counts, and the recorded spec's path."""
    from pipeline.data import features as feats

    summary = feats.summarise_spec(ws, spec)
    return summary, feats.save_spec(ws, spec, summary)


# --- training -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    model: ModelConfig
    result: object  # train.TrainResult
    run_id: str


def train_one(
    ws: Paths,
    model: dict,
    tcfg,
    series: list[str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Trained:
    """One model (ModelConfig fields; the target transform defaults to the one `viewcast
    features` recorded) on the training days of the chosen series (all split ones by default),
    early-stopped on validation, logged to MLflow."""
    from pipeline import tracking
    from pipeline.data import features as feats
    from pipeline.models.outcome import training_outcome
    from pipeline.models.train import fit

    recorded = feats.load_spec(ws)
    mcfg = ModelConfig(
        **(model | {"target_transform": model.get("target_transform") or recorded.target_transform})
    )
    spec = feats.FeatureSpec((mcfg.lags,), mcfg.target_transform)
    windows = feats.select_series(feats.build(ws, spec)[mcfg.lags], series)
    result = fit(windows, mcfg, tcfg, on_epoch)
    data = feats.data_params(ws, windows)
    outcome = training_outcome(windows, result, data, keep_intervals=not series)
    run_id = tracking.log_training(
        ws, windows, mcfg, tcfg, result.model, result.device, outcome, data
    )
    return Trained(mcfg, result, run_id)


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
    from pipeline import tracking
    from pipeline.data import features as feats
    from pipeline.data.store import Store
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
):
    """A grid by name (lecture, default or a TOML file) as a resumable sweep: stacked (one
    model per shape) unless `stack` is off, each configuration bagged over `seeds` seeds,
    trained here or on a Ray cluster (`engine`, a pipeline.engines.Engine)."""
    from pipeline.data.store import Store
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
    )


def champion_or(ws: Paths, run_ids: list[str] | None) -> tuple[list[str], str | None]:
    """The runs to finalize (default: the champion) and the champion's run id, if any."""
    from pipeline import tracking

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
) -> SealedTest:
    """Ingest (default: the demo data), features, sweep, select, submit and finalize. A
    workspace whose test was finalized shows that result instead of scoring again."""
    from pipeline.data import features as feats
    from pipeline.search import holdout, selection

    files = files if files is not None else demo_files(ws)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("ingest", lambda: ingest(ws, files) if files else None),  # [] : already ingested
        ("features", lambda: features(ws, feats.FeatureSpec())[0]),
        ("sweep", lambda: sweep(ws, grid, folds, max_minutes, on_step, seeds=seeds)),
        ("select", lambda: selection.select(ws, ensemble=ensemble, method=method)),
    ]
    results: dict[str, object] = {}
    for name, step in steps:
        on_stage(name, None)
        results[name] = step()
        on_stage(name, results[name])
    on_stage("test", None)
    try:
        sealed = SealedTest(read_final(ws), None)
    except ViewcastError:
        champion = results["select"].champion.run_id
        public = holdout.submit(ws, champion).public_mae
        sealed = SealedTest(holdout.finalize(ws, [champion], champion), public)
    on_stage("test", sealed)
    return sealed


# --- every morning ------------------------------------------------------------------------------


def archive(files: list[Path], folder: Path) -> list[Path]:
    """Move ingested exports into `folder`, each name prefixed with its modification time (the
    same export name every day never collides); the new paths."""
    import shutil
    import time

    folder.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in files:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
        target, n = folder / f"{stamp}-{path.name}", 1
        while target.exists():
            target, n = folder / f"{stamp}-{n}-{path.name}", n + 1
        moved.append(Path(shutil.move(path, target)))
    return moved


def daily(
    ws: Paths,
    files: list[tuple[Path, str | None]],
    k: float = 2.0,
    m: int = 3,
    horizon: int = 1,
    on_stage: StageHook = _quiet,
    done: Path | None = None,
) -> None:
    """Ingest, monitor and forecast under the workspace lock (another holder: LockedError, exit
    4); DriftError (exit 3) after the forecast is written when monitoring found drift. With
    `done`, the ingested files move there once they are in the store (no file: no ingest)."""
    from pipeline.data.lock import workspace_lock
    from pipeline.serving.forecast import forecast
    from pipeline.serving.monitor import monitor

    def take_in():
        if not files:
            return None
        result = ingest(ws, files)
        if done is not None:
            archive([path for path, _ in files], done)
        return result

    with workspace_lock(ws):
        for name, step in (
            ("ingest", take_in),
            ("monitor", lambda: monitor(ws, k, m)),
            ("forecast", lambda: forecast(ws, None, horizon, force=False)),
        ):
            on_stage(name, None)
            result = step()
            on_stage(name, result)
            if name == "monitor":
                monitoring = result
    if monitoring.drift:
        raise DriftError(f"drift since {monitoring.drift_since}: see `viewcast monitor`")


# --- one stage each: what the entry points call ---------------------------------------------------


def locked(ws: Paths, wait: float = 0.0):
    """The workspace's exclusive lock (another writer: wait up to `wait` s, then LockedError)."""
    from pipeline.data.lock import workspace_lock

    return workspace_lock(ws, wait)


def check(ws: Paths, repair: bool = False) -> list:
    """Every finding of the store and of MLflow (repaired where it is safe with `repair`)."""
    from pipeline.data.check import check_store
    from pipeline.tracking.health import check_mlflow

    return check_store(ws, repair) + check_mlflow(ws, repair)


def select(
    ws: Paths,
    metric: str = "val_mae",
    sweep_run: str | None = None,
    ensemble: int = 5,
    method: str = DEFAULT_ENSEMBLE_METHOD,
):
    """The champion of a sweep (default: the latest) on validation, aliased `champion`."""
    from pipeline.search import selection

    return selection.select(ws, metric, sweep_run, ensemble, method)


def plot(ws: Paths, run_id: str) -> Path:
    """A training run's learning curve, drawn from its logged curves and logged beside them."""
    from pipeline.search.sweeps import draw_learning_curve

    return draw_learning_curve(ws, run_id)


def submit(ws: Paths, run_id: str | None = None):
    """One public test score of a run (default: the champion), within the daily budget."""
    from pipeline import tracking
    from pipeline.search import holdout

    return holdout.submit(ws, run_id or tracking.champion_run(ws))


def leaderboard(ws: Paths) -> list[dict]:
    """Every submission's public score, best first."""
    from pipeline.search import holdout

    return holdout.leaderboard(ws)


def finalize(ws: Paths, run_ids: list[str] | None = None) -> dict:
    """The one reveal of the private test scores (default: the champion)."""
    from pipeline.search import holdout

    return holdout.finalize(ws, *champion_or(ws, run_ids))


def ui(ws: Paths, port: int, ready: Callable[[dict[str, str]], None]) -> int:
    """The MLflow UI on the workspace's runs (blocks until it stops); its exit code."""
    from pipeline import tracking

    urls = tracking.ui_urls(ws, port)
    return tracking.serve_ui(ws, port, lambda: ready(urls))


def refit(ws: Paths):
    """The champion's configuration on all history, aliased `production`."""
    from pipeline.serving.forecast import refit as refit_champion

    return refit_champion(ws)


def forecast(ws: Paths, date: str | None = None, horizon: int = 1, force: bool = False):
    """Days D..D+H-1 of every series with intervals (data/forecasts/<D>.csv and .png)."""
    from pipeline.serving.forecast import forecast as forecast_days

    return forecast_days(ws, date, horizon, force)


def monitor(ws: Paths, ratio: float = 2.0, days: int = 3):
    """Live MAE of past forecasts against the ingested actuals (the result says drift)."""
    from pipeline.serving.monitor import monitor as live_errors

    return live_errors(ws, ratio, days)


# --- the lecture ---------------------------------------------------------------------------------


def experiment(ws: Paths, series, epochs, study_epochs: int, on_config) -> object:
    """The lecture's grid, tables, figures and diagnostics: reports/lecture.md."""
    from pipeline.lecture import experiment as lecture

    return lecture.run(ws, series, epochs, study_epochs, on_config)


def studies(ws: Paths, chosen: tuple[str, ...], series, epochs: int, on_study) -> None:
    """The lecture's studies (L4-L8), appended to reports/lecture.md."""
    from pipeline.lecture.study_runs import run_studies

    run_studies(ws, chosen, series, epochs, on_study)


def diagnose(ws: Paths, run_id: str, loss: str = "mae"):
    """Where a training ended (Hessian eigenvalues) and its gradient norm against the loss."""
    from pipeline.lecture import diagnostics

    return diagnostics.diagnose_run(ws, run_id, loss)


def escape(ws: Paths, run_id: str, loss: str, steps: int, lr: float):
    """L4: the loss along the lowest-curvature eigenvector from where a training ended."""
    from pipeline.lecture import diagnostics

    return diagnostics.escape_run(ws, run_id, loss, steps, lr)


def critical_point_sentence(point) -> str:
    """The lecture's one-sentence reading of a critical point."""
    from pipeline.lecture.report import critical_point_sentence as sentence

    return sentence(point)
