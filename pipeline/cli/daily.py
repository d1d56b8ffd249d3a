"""The daily commands: backtest (days ahead), refit, forecast, monitor and daily (a timer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline import jobs
from pipeline.cli import morning
from pipeline.cli import terminal as show
from pipeline.cli.main import Arg, JsonFlag, Name, OldName, Opt, command
from pipeline.data.errors import DriftError, ViewcastError


@command()
def backtest(
    ctx: typer.Context,
    run_id: Annotated[str | None, Arg(help="A training run id (default: the champion).")] = None,
    champion: Annotated[bool, Opt(help="Backtest the champion (the default).")] = False,
    horizon: Annotated[int, Opt(help="Days ahead scored: h = 1..H.")] = 28,
    origins: Annotated[int, Opt(help="Rolling origins, the last one H days before the end.")] = 8,
    step: Annotated[int, Opt(help="Days between origins.")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Refit a run's configuration at rolling origins and score it h = 1..H days ahead: MAE,
    SMAPE, MASE and interval coverage per h (before `finalize` on the dev days only)."""
    if run_id is not None and champion:
        raise ViewcastError("give a RUN_ID or --champion, not both")
    done = jobs.backtest(ctx.obj, run_id, horizon, origins, step)
    show.backtested(done)
    if as_json:
        show.emit(show.plain(done))


@command()
def refit(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Retrain the champion's configuration on all history; register it as `production`."""
    done = jobs.refit(ctx.obj)
    morning.refit(done)
    if as_json:
        show.emit(show.plain(done))


@command("forecast")
def forecast_command(
    ctx: typer.Context,
    date: Annotated[str | None, Opt(help="Day D, YYYY-MM-DD (default: after the data).")] = None,
    horizon: Annotated[int, Opt(help="Days D..D+H-1 (predictions fed back).")] = 1,
    force: Annotated[bool, Opt(help="Replace an existing forecast file.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Forecast day D for every series with intervals; writes data/forecasts/<D>.csv and .png."""
    done = jobs.forecast(ctx.obj, date, horizon, force)
    morning.forecast(done)
    if as_json:
        show.emit(show.plain(done) | {"forecasts": show.csv_rows(done.path)})


Drift = Annotated[float, Opt(help="Drift when live MAE > this x validation MAE ...")]


DriftDays = Annotated[int, Opt(help="... on this many days in a row.")]


OldK = Annotated[float | None, Opt("--k", hidden=True, help="Deprecated: --drift-ratio.")]


OldM = Annotated[int | None, Opt("--m", hidden=True, help="Deprecated: --drift-days.")]


@command("monitor")
def monitor_command(
    ctx: typer.Context,
    drift_ratio: Drift = 2.0,
    drift_days: DriftDays = 3,
    as_json: JsonFlag = False,
    k: OldK = None,
    m: OldM = None,
) -> None:
    """Live MAE of past forecasts against ingested actuals; exit code 3 on drift."""
    ratio, days = drift_options(drift_ratio, drift_days, k, m)
    result = jobs.monitor(ctx.obj, ratio, days)
    if as_json:
        show.emit(show.plain(result) | {"drift": result.drift})
    else:
        morning.monitoring(result)
    if result.drift:
        raise DriftError(
            f"drift: live MAE above {ratio:g} x validation MAE "
            f"({show.fmt(ratio * result.reference_mae)}) for {show.days(days)} in a row since "
            f"{result.drift_since}"
        )


@command(wait=0)  # a timer's run exits at once when the workspace is busy (exit 4)
def daily(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, Arg(help="The new exports (files or folders); none with --pull.")
    ] = None,
    name: Name = None,
    drift_ratio: Drift = 2.0,
    drift_days: DriftDays = 3,
    horizon: Annotated[int, Opt(help="Forecast days D..D+H-1.")] = 1,
    archive: Annotated[
        Path | None, Opt(help="Move ingested files here (an empty folder is no new export).")
    ] = None,
    pull: Annotated[
        bool, Opt(help="Pull every registered source first (`viewcast sources` lists them).")
    ] = False,
    series: OldName = None,
    k: OldK = None,
    m: OldM = None,
) -> None:
    """For a timer: pull the registered sources (--pull) and ingest the new exports, monitor,
    forecast, under an exclusive workspace lock. Folders are read oldest file first (the newest
    export's revised days win).

    Exit codes: 0 done, 2 error, 3 drift, 5 a source stayed down, 6 a source refused its
    credentials (3, 5 and 6: the forecast is still written, from what arrived), 4 another run
    holds the workspace."""
    if not paths and not pull:
        raise ViewcastError("give the new exports (files or folders), or --pull")
    found = jobs.expand(paths or [], by_age=True, allow_empty=archive is not None)
    name = name if name is not None else show.deprecated("--series", "--name", series)
    files = [(p, name) for p in found]
    ratio, days = drift_options(drift_ratio, drift_days, k, m)
    jobs.daily(ctx.obj, files, ratio, days, horizon, morning.daily_stage, archive, pull)


def drift_options(ratio: float, days: int, k: float | None, m: int | None) -> tuple[float, int]:
    """--drift-ratio and --drift-days, or the deprecated --k and --m (with a warning)."""
    k = show.deprecated("--k", "--drift-ratio", k)
    m = show.deprecated("--m", "--drift-days", m)
    return (ratio if k is None else k), (days if m is None else m)
