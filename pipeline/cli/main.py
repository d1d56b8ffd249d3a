"""The `viewcast` command: thin Typer commands that parse options and call the stage modules."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.cli.guard import guard
from pipeline.cli.terminal import console
from pipeline.data import features as feats
from pipeline.data.check import require_whole
from pipeline.data.errors import ViewcastError
from pipeline.data.features import Transform
from pipeline.data.ingest import Format
from pipeline.data.store import Store
from pipeline.data.table import Fill
from pipeline.data.workspace import DEFAULT_TEST_DAYS as TEST_DAYS
from pipeline.data.workspace import DEFAULT_VAL_DAYS as VAL_DAYS
from pipeline.data.workspace import HOME_ENV, TRACKING_ENV, Paths
from pipeline.models.config import DEFAULT_ENSEMBLE_METHOD as DEFAULT_METHOD
from pipeline.models.config import (
    Calendar,
    Device,
    EnsembleMethod,
    Family,
    Loss,
    Optimizer,
    Scaling,
    Schedule,
    Solver,
)

app = typer.Typer(
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # plain click help and errors: a bad option is one `Error:` line
    pretty_exceptions_enable=False,
    help="Forecast tomorrow's daily views: ingest, features, train, select, test, forecast.",
)
Opt, Arg = typer.Option, typer.Argument
JsonFlag = Annotated[bool, Opt("--json", help="Print JSON on stdout (tables go to stderr).")]
SeriesFilter = Annotated[list[str] | None, Opt(help="Only these series (repeat the option).")]
# choices (defined once, in the modules that validate them): --help lists them and a bad value
# is refused before any work
ExperimentName = Literal["lecture"]
Task = Literal["views", "direction"]
Name = Annotated[str | None, Opt("--name", help="Series id of single-series files.")]
OldName = Annotated[
    str | None, Opt("--series", hidden=True, help="Deprecated: the old name of --name.")
]


def command(
    name: str | None = None,
    writes: bool = True,
    wait: float | None = None,
    group: typer.Typer | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A Typer command (of `app`, or of a `group` such as `pull`) whose ViewcastError becomes
    one line on stderr and its exit code (2, 3 drift, 4 busy, 5 a source down, 6 a source's
    credentials), never a traceback. A command that `writes` the workspace holds its lock
    (another writer waits up to --wait seconds, or `wait`, then exits 4); readers do not."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = kwargs.get("ctx") or args[0]
            call = functools.partial(function, *args, **kwargs)
            return guard(ctx, call, writes, wait, bool(kwargs.get("as_json")))

        return (group or app).command(name)(wrapper)

    return decorate


def _version(value: bool) -> None:
    if value:
        typer.echo(f"viewcast {metadata.version('viewcast')}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        Opt(envvar=HOME_ENV, help="Paths folder holding data/ and mlruns/ (default: here)."),
    ] = None,
    wait: Annotated[float, Opt(envvar="VIEWCAST_WAIT", help="Seconds a writer waits if busy.")] = 5,
    tracking_uri: Annotated[
        str | None,
        Opt(help=f"A team's MLflow server (http://...; else ${TRACKING_ENV} if it names one)."),
    ] = None,
    debug: Annotated[bool, Opt(help="Show the traceback of an unexpected error.")] = False,
    version: Annotated[
        bool, Opt("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """viewcast: daily views forecasting, every run tracked in MLflow."""
    if tracking_uri:
        if not tracking_uri.startswith(("http://", "https://")):
            raise typer.BadParameter("a tracking server's URL: http://host:port or https://...")
        os.environ[TRACKING_ENV] = tracking_uri  # every module (and subprocess) sees it
    ctx.obj = Paths.resolve(home)
    if ctx.obj.home.exists() and not ctx.obj.home.is_dir():
        raise typer.BadParameter(f"{ctx.obj.home} is a file, not a folder", param_hint="--home")
    if not wait >= 0:
        raise typer.BadParameter(f"seconds, 0 or more; got {wait:g}", param_hint="--wait")
    ctx.meta["wait"] = wait
    ctx.meta["debug"] = debug


# --- data ---------------------------------------------------------------------------------------


@command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], Arg(help="CSV exports, or folders of them.")],
    name: Name = None,
    fmt: Annotated[
        Format, Opt("--format", help="The export's format (auto: by its header).")
    ] = "auto",
    fill: Annotated[Fill, Opt(help="Missing days.")] = "linear",
    test_days: Annotated[int, Opt(help="Sealed test days of each new series.")] = TEST_DAYS,
    val_days: Annotated[int, Opt(help="Validation days of each new series.")] = VAL_DAYS,
    allow_dates: Annotated[bool, Opt(help="Dates 1900-2100 (default 2005-next year).")] = False,
    max_bytes: Annotated[int | None, Opt(help="Largest file to read (default 4 GiB).")] = None,
    as_json: JsonFlag = False,
    series: OldName = None,
) -> None:
    """Read daily-view exports into the workspace's store (all files, or none, land)."""
    name = name if name is not None else show.deprecated("--series", "--name", series)
    files = [(path, name) for path in jobs.expand(paths)]
    done = jobs.ingest(ctx.obj, files, fmt, fill, test_days, val_days, allow_dates, max_bytes)
    show.ingested(done)
    if as_json:
        show.emit({"files": done.files, "fill": done.fill, **show.plain(done.report)})


@command(writes=False)
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show each series: first and last date, days, imputed days, split boundaries."""
    manifest = Store(ctx.obj).read_manifest()
    if as_json:
        typer.echo(json.dumps(manifest, indent=1, ensure_ascii=False))
        return
    cols = ("series", "first", "last", "days", "imputed", "val_start", "test_start", "test_end")
    rows = [
        [name, *(str(info[c] if info[c] is not None else "-") for c in cols[1:])]
        for name, info in manifest["series"].items()
    ]
    show.table(f"store: {ctx.obj.store} (missing days: {manifest['fill']})", cols, rows)


@command()
def features(
    ctx: typer.Context,
    lags: Annotated[str, Opt(help="Lag windows N, comma-separated: x_1..x_N each.")] = "1,7,28,56",
    target_transform: Annotated[Transform, Opt(help="On every views value.")] = "none",
    export: Annotated[Path | None, Opt(help="Write train/val rows to .parquet or .csv.")] = None,
    window: Annotated[int | None, Opt(help="The window to export (default: the largest).")] = None,
) -> None:
    """Build the lag windows of the train/validation days and record the feature spec."""
    spec = feats.FeatureSpec(_parse_lags(lags), target_transform)
    summary, path = jobs.features(ctx.obj, spec)
    keys = ("window", "series", "train_rows", "val_rows")
    rows = [[f"{row[k]:,}" for k in keys] for row in summary]
    show.table("lag windows", ("window N", "series", "train rows", "val rows"), rows)
    console.print(f"feature spec (target transform: {target_transform}) written to {path}")
    if export is not None:
        chosen = window if window is not None else max(spec.lags)
        if chosen not in spec.lags:
            raise ViewcastError(f"--window {chosen} is not one of --lags {lags}")
        rows = feats.build(ctx.obj, feats.FeatureSpec((chosen,), target_transform))[chosen]
        feats.export(rows, export)
        console.print(f"window {chosen} exported to {export} ({len(rows):,} rows)")


def _parse_lags(text: str) -> tuple[int, ...]:
    """--lags everywhere: comma-separated day counts ("1,7,28,56"; one for `train`)."""
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ViewcastError(f"--lags must be comma-separated day counts, got {text!r}") from None


@command()
def check(
    ctx: typer.Context,
    repair: Annotated[bool, Opt(help="Fix what is safe to fix.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify the store and the MLflow database after a crash; exit 2 while damage remains."""
    found = jobs.check(ctx.obj, repair)
    show.findings(found, ctx.obj, as_json)
    require_whole(found, ctx.obj, repair)


# --- training and selection ---------------------------------------------------------------------


@command()
def train(
    ctx: typer.Context,
    lags: Annotated[str, Opt(help="Window N: the model sees x_1..x_N (one day count).")] = "56",
    model: Annotated[Family, Opt(help="The model family.")] = "relu",
    layers: Annotated[int, Opt(help="Hidden layers of a relu network (1-6).")] = 3,
    width: Annotated[int, Opt(help="Sigmoids, or units per relu layer.")] = 100,
    leaves: Annotated[int, Opt(help="hgb: leaves per tree (lr, epochs: shrinkage, trees).")] = 31,
    batchnorm: Annotated[bool, Opt(help="Batch normalisation after each layer.")] = False,
    dropout: Annotated[float, Opt(help="Dropout after each relu layer.")] = 0.0,
    target_transform: Annotated[
        Transform | None, Opt(help="Default: what `viewcast features` recorded.")
    ] = None,
    scaling: Annotated[
        Scaling, Opt(help="Each row over its window's mean, median or last week's mean.")
    ] = "none",
    calendar: Annotated[
        Calendar, Opt(help="weekday: the target day's day of week as 7 inputs.")
    ] = "none",
    optimizer: Annotated[Optimizer, Opt(help="The optimiser.")] = "adam",
    lr: Annotated[float, Opt(help="Learning rate.")] = 1e-3,
    momentum: Annotated[float, Opt(help="Momentum of --optimizer momentum.")] = 0.9,
    alpha: Annotated[float, Opt(help="RMSProp's alpha.")] = 0.99,
    weight_decay: Annotated[float, Opt(help="L2 weight decay.")] = 0.0,
    schedule: Annotated[Schedule, Opt(help="Learning-rate schedule.")] = "constant",
    warmup_epochs: Annotated[float, Opt(help="Linear warm-up length.")] = 0.0,
    step_epochs: Annotated[int, Opt(help="Step decay: epochs between decays.")] = 100,
    gamma: Annotated[float, Opt(help="Step decay factor.")] = 0.5,
    batch_size: Annotated[int, Opt(help="Rows per step; 0 = the full batch.")] = 0,
    rows_per_epoch: Annotated[
        int,
        Opt(
            help="0: every training row an epoch; N: N windows drawn (seeded), gathered per batch."
        ),
    ] = 0,
    epochs: Annotated[int, Opt(help="Most epochs to run.")] = 500,
    patience: Annotated[int, Opt(help="Epochs without a better val MAE; 0 = never.")] = 100,
    loss: Annotated[
        Loss, Opt(help="mae is the lecture's L; huber: mse near 0, mae beyond.")
    ] = "mae",
    clip: Annotated[float, Opt(help="Max gradient norm; 0 = no clipping.")] = 0.0,
    solver: Annotated[Solver, Opt(help="lstsq: closed form (linear model).")] = "gd",
    device: Annotated[Device, Opt(help="Where to train.")] = "auto",
    amp: Annotated[bool, Opt(help="bfloat16 mixed precision on CUDA.")] = False,
    seed: Annotated[int, Opt(help="Seed for weights and batch order.")] = 0,
    series: SeriesFilter = None,
    task: Annotated[
        Task, Opt(help="views: tomorrow's views; direction: down, same or up (L7).")
    ] = "views",
    as_json: JsonFlag = False,
) -> None:
    """Train one model on the training days, early-stop on validation, log it to MLflow."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.train import TrainConfig

    windows = _parse_lags(lags)
    if len(windows) != 1:
        raise ViewcastError(f"train takes one window (--lags N), got {lags!r}; sweeps take more")
    lags = windows[0]
    if task == "direction":
        run_id, found = jobs.train_direction(ctx.obj, lags, epochs, lr, "ce", seed, series)
        show.direction(found, run_id)
        if as_json:
            show.emit({"run_id": run_id, **show.plain(found)})
        return
    options = dict(locals())
    model_fields = ("lags", "model", "layers", "width", "batchnorm", "dropout", "scaling")
    model_fields += ("calendar", "leaves")
    mcfg = {k: options[k] for k in model_fields} | {"target_transform": target_transform}
    tcfg = TrainConfig(**{k: options[k] for k in TrainConfig.__dataclass_fields__ if k in options})
    with show.epoch_progress(epochs) as on_epoch:
        done = jobs.train_one(ctx.obj, mcfg, tcfg, series, on_epoch)
    if done.made:
        console.print(done.made)
    r = done.result
    how = "(closed-form least squares)" if solver == "lstsq" else f"({optimizer}, lr {lr:g})"
    header = ("train MAE", "val MAE", "epochs run", "best epoch", "seconds", "device", "run id")
    row = [show.fmt(r.train_mae), show.fmt(r.val_mae), str(r.epochs_run), str(r.best_epoch)]
    row += [f"{r.seconds:.1f}", r.device, done.run_id]
    show.table(f"{model} on {show.days(lags)} {how}", header, [row])
    console.print(f"compare runs in the MLflow UI: viewcast --home {ctx.obj.home} ui")
    if as_json:
        keys = ("train_mae", "val_mae", "best_epoch", "epochs_run", "seconds", "device")
        show.emit({"run_id": done.run_id, "model": show.plain(done.model)} | show.pick(r, keys))


HorizonOpt = Annotated[
    int,
    Opt(
        help="Days you forecast: above 1, each network's direct H-day twin joins the grid and "
        "every run is scored on val_mae_h<H> (days 1..H from each validation day)."
    ),
]


@command()
def sweep(
    ctx: typer.Context,
    grid: Annotated[
        str, Opt(help="lecture, default (panel on a large store), panel, or a TOML file.")
    ] = "default",
    folds: Annotated[int, Opt(help="Rolling-origin validation windows (mean).")] = 1,
    max_minutes: Annotated[float | None, Opt(help="Start no configuration after this.")] = None,
    stack: Annotated[bool, Opt(help="Train each shape's configurations as one model.")] = True,
    seeds: Annotated[int, Opt(help="Bag each configuration over K seeds (their mean).")] = 1,
    engine: Annotated[
        str, Opt(help="local, or ray: each stack a task on a Ray cluster.")
    ] = "local",
    address: Annotated[
        str | None, Opt(help="Ray cluster (host:port); default RAY_ADDRESS, else a local Ray.")
    ] = None,
    cpus_per_task: Annotated[float, Opt(help="Ray: CPUs each stack asks for.")] = 1.0,
    gpus_per_task: Annotated[
        float, Opt(help="Ray: GPUs each stack asks for (0.25 = a quarter).")
    ] = 0.0,
    horizon: HorizonOpt = 1,
    as_json: JsonFlag = False,
) -> None:
    """Train a grid (plus the baselines) as nested MLflow runs; re-running resumes it."""
    where = jobs.Engine(engine, address, cpus_per_task, gpus_per_task)
    with show.sweep_progress() as step:
        report = jobs.sweep(
            ctx.obj,
            grid,
            folds,
            max_minutes,
            step,
            stack=stack,
            seeds=seeds,
            engine=where,
            horizon=horizon,
        )
    show.swept(report)
    if as_json:
        show.emit({"grid": grid, **show.plain(report)})


EnsembleChoice = Annotated[
    EnsembleMethod,
    Opt(
        help="greedy: forward selection on the folds' validation forecasts; "
        "top: the mean of the K best (no --folds)."
    ),
]


@command()
def select(
    ctx: typer.Context,
    metric: Annotated[
        str, Opt(help="val_mae, val_mae_vs_naive (per-series MAE / naive), val_mae_h<H>.")
    ] = "val_mae",
    sweep_run: Annotated[str | None, Opt("--sweep", help="Parent run (default: latest).")] = None,
    top: Annotated[int, Opt(help="Rows of the table.")] = 10,
    ensemble: Annotated[int, Opt(help="Let one ensemble compete (K >= 2); 0 = no.")] = 5,
    ensemble_method: EnsembleChoice = DEFAULT_METHOD,
    log_models: Annotated[
        bool, Opt(help="Also make the --top runs MLflow models (the champion always is).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pick the champion on validation MAE and register it with the alias `champion` (an
    MLflow pyfunc model, as are an ensemble's members; other runs keep their model folder). On
    val_mae_h<H> the champion takes day 1 from the val_mae champion (a stepwise model)."""
    if top < 1:
        raise ViewcastError(f"--top must be at least 1, got {top}")
    chosen = jobs.select(
        ctx.obj, metric, sweep_run, ensemble, ensemble_method, top if log_models else 0
    )
    show.champion(chosen, top)
    if as_json:
        show.emit(show.plain(chosen) | {"champion": show.plain(chosen.champion)})


@command()
def plot(ctx: typer.Context, run_id: Annotated[str, Arg(help="A training run id.")]) -> None:
    """Draw a training run's learning curve (a stacked sweep draws only its 10 best)."""
    console.print(f"learning curve: {jobs.plot(ctx.obj, run_id)}")


# --- the sealed test ----------------------------------------------------------------------------


@command()
def submit(
    ctx: typer.Context,
    run_id: Annotated[str | None, Arg(help="A training run id.")] = None,
    champion: Annotated[bool, Opt(help="Submit the champion (the default).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Score a run on the public half of the test days (a budget of submissions per day)."""
    if run_id is not None and champion:
        raise ViewcastError("give a RUN_ID or --champion, not both")
    done = jobs.submit(ctx.obj, run_id)
    show.submission(done)
    if as_json:
        show.emit(show.plain(done))


@command(writes=False)
def leaderboard(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The submissions so far, best public MAE first."""
    rows = jobs.leaderboard(ctx.obj)
    if as_json:
        show.emit(rows)
        return
    show.leaderboard(rows)


@command()
def finalize(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str] | None, Arg(help="One or two runs (default: the champion).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Reveal the private test score, once: writes reports/final.json, final.md and final.png."""
    payload = jobs.finalize(ctx.obj, run_ids)
    if as_json:
        show.emit(payload)
        return
    show.final(payload)
    console.print(f"report: {payload['report']} (MLflow run {payload['final_run_id']})")


# --- the main job and the UI -------------------------------------------------------------------


@command("run")
def run_all(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        Arg(help="Exports or folders (default: the workspace's series; demo data when empty)."),
    ] = None,
    name: Name = None,
    demo: Annotated[bool, Opt(help="Add the demo exports (data/raw) to the workspace.")] = False,
    grid: Annotated[
        str, Opt(help="lecture, default (panel on a large store), panel, or a TOML file.")
    ] = "default",
    max_minutes: Annotated[float, Opt(help="Time budget of the sweep (cuts the grid).")] = 5.0,
    folds: Annotated[int, Opt(help="Rolling-origin validation windows.")] = 1,
    ensemble: Annotated[int, Opt(help="Let one ensemble compete (K >= 2); 0 = no.")] = 5,
    ensemble_method: EnsembleChoice = DEFAULT_METHOD,
    seeds: Annotated[int, Opt(help="Bag each configuration over K seeds (their mean).")] = 1,
    horizon: HorizonOpt = 1,
    as_json: JsonFlag = False,
) -> None:
    """The main job: ingest, features, sweep, select, submit, finalize, and a summary table
    (`--horizon H`: the champion selected on val_mae_h<H>)."""
    ws: Paths = ctx.obj
    given = [(path, name) for path in jobs.expand(paths)] if paths else None
    files, note = jobs.run_inputs(ws, given, demo)
    if note:
        console.print(note)
    on_stage = show.run_stage()
    with show.sweep_progress() as step:
        sealed = jobs.run_all(
            ws,
            files,
            grid,
            max_minutes,
            folds,
            ensemble,
            on_stage,
            step,
            seeds=seeds,
            method=ensemble_method,
            horizon=horizon,
        )
    show.summary(sealed.payload, ws)
    if as_json:
        show.emit(sealed.payload | {"public_mae": sealed.public_mae})


@command(writes=False)
def ui(ctx: typer.Context, port: Annotated[int, Opt(help="Port on 127.0.0.1.")] = 5000) -> None:
    """Start the MLflow UI on 127.0.0.1 against this workspace's store (Ctrl-C stops it)."""
    if ctx.obj.remote_tracking:
        console.print(f"this workspace logs to the MLflow server {ctx.obj.tracking_uri}: open it")
        return
    code = jobs.ui(ctx.obj, port, lambda urls: show.ui_links(ctx.obj, urls))
    if code:
        raise ViewcastError(f"the MLflow UI exited with code {code} (is port {port} taken?)")


# --- daily forecasts (cli/daily.py), the lecture's commands (cli/lecture.py) -------------------
