"""One stage each, as the entry points call them (the CLI and the Python API call jobs only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline import tracking
from pipeline.data.check import check_store
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.jobs.build import champion_or
from pipeline.models.config import DEFAULT_ENSEMBLE_METHOD
from pipeline.serving.forecast import forecast as forecast_days
from pipeline.serving.forecast import refit as refit_champion
from pipeline.tracking.health import check_mlflow


def check(ws: Paths, repair: bool = False) -> list:
    """Every finding of the store and of MLflow (repaired where it is safe with `repair`)."""
    return check_store(ws, repair) + check_mlflow(ws, repair)


def select(
    ws: Paths,
    metric: str = "val_mae",
    sweep_run: str | None = None,
    ensemble: int = 5,
    method: str = DEFAULT_ENSEMBLE_METHOD,
    log_models: int = 0,
):
    """The champion of a sweep (default: the latest) on validation, aliased `champion`; with
    `log_models` K the K best runs become MLflow models too."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import selection

    return selection.select(ws, metric, sweep_run, ensemble, method, log_models)


def log_models(ws: Paths, run_ids: list[str]) -> list[tuple[str, str]]:
    """`viewcast model log`: each run's MLflow pyfunc model, made if it has none; (run, id)."""
    return [(run_id, tracking.materialise(ws, run_id)) for run_id in run_ids]


def plot(ws: Paths, run_id: str) -> Path:
    """A training run's learning curve, drawn from its logged curves and logged beside them."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search.sweeps import draw_learning_curve

    return draw_learning_curve(ws, run_id)


def submit(ws: Paths, run_id: str | None = None):
    """One public test score of a run (default: the champion), within the daily budget."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import holdout

    return holdout.submit(ws, run_id or tracking.champion_run(ws))


def backtest(
    ws: Paths, run_id: str | None = None, horizon: int = 28, origins: int = 8, step: int = 7
):
    """A run's (default: the champion's) rolling-origin backtest, per horizon h = 1..H."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search.backtest import Plan
    from pipeline.search.backtest import backtest as rolling_origins

    plan = Plan(horizon, origins, step)  # bad numbers are refused before any work
    return rolling_origins(ws, run_id or tracking.champion_run(ws), plan)


def leaderboard(ws: Paths) -> list[dict]:
    """Every submission's public score, best first."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import holdout

    return holdout.leaderboard(ws)


def finalize(ws: Paths, run_ids: list[str] | None = None) -> dict:
    """The one reveal of the private test scores (default: the champion)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.search import holdout

    return holdout.finalize(ws, *champion_or(ws, run_ids))


def ui(ws: Paths, port: int, ready: Callable[[dict[str, str]], None]) -> int:
    """The MLflow UI on the workspace's runs (blocks until it stops); its exit code."""
    if not 1 <= port <= 65535:  # the server would die with a traceback and exit 0
        raise ViewcastError(f"--port must be 1 to 65535, got {port}")
    if tracking.port_taken(port):
        raise ViewcastError(f"port {port} on 127.0.0.1 is taken: give another --port")
    urls = tracking.ui_urls(ws, port)
    return tracking.serve_ui(ws, port, lambda: ready(urls))


def refit(ws: Paths):
    """The champion's configuration on all history, aliased `production`."""
    return refit_champion(ws)


def forecast(ws: Paths, date: str | None = None, horizon: int = 1, force: bool = False):
    """Days D..D+H-1 of every series with intervals (data/forecasts/<D>.csv and .png)."""
    return forecast_days(ws, date, horizon, force)


def monitor(ws: Paths, ratio: float = 2.0, days: int = 3):
    """Live MAE of past forecasts against the ingested actuals (the result says drift)."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    from pipeline.serving.monitor import monitor as live_errors

    return live_errors(ws, ratio, days)
