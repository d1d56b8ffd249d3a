"""The `viewcast` command: thin Typer commands that parse options and call the stage modules."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import DEFAULT_TEST_DAYS, DEFAULT_VAL_DAYS, HOME_ENV, Workspace
from pipeline.errors import ViewcastError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Forecast tomorrow's daily views: ingest, features, train, select, test, forecast.",
)
console = Console(highlight=False)
if not console.is_terminal:  # logs and pipes: wide tables instead of folded cells
    console = Console(highlight=False, width=200)
MAX_ROWS = 25  # rows a table shows before it says how many more there are


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ViewcastError into one line on stderr and its exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ViewcastError as err:
            typer.echo(f"viewcast: error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            help="Workspace folder holding data/ and mlruns/ (default: the current folder).",
        ),
    ] = None,
) -> None:
    """viewcast: daily views forecasting, every run tracked in MLflow."""
    ctx.obj = Workspace.resolve(home)


@app.command()
@guarded
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="CSV exports, or folders of them.")],
    series: Annotated[
        str | None,
        typer.Option(help="Series id for single-series files (default: the file name)."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto, youtube-totals, youtube-chart, long, kaggle-wide or kaggle-long.",
        ),
    ] = "auto",
    fill: Annotated[
        str, typer.Option(help="Rule for missing days: linear, ffill or zero (flagged imputed).")
    ] = "linear",
    test_days: Annotated[
        int, typer.Option(help="Sealed test days at the end of each new series.")
    ] = DEFAULT_TEST_DAYS,
    val_days: Annotated[
        int, typer.Option(help="Validation days before the test days of each new series.")
    ] = DEFAULT_VAL_DAYS,
) -> None:
    """Read daily-view exports into the workspace's store (all files, or none, land)."""
    files = _expand(paths)
    _ingest(ctx.obj, [(path, series) for path in files], fmt, fill, test_days, val_days)


def _ingest(
    ws: Workspace,
    files: list[tuple[Path, str | None]],
    fmt: str = "auto",
    fill: str = "linear",
    test_days: int = DEFAULT_TEST_DAYS,
    val_days: int = DEFAULT_VAL_DAYS,
) -> None:
    """Read (file, series id) pairs and merge them into the store in one write, with a table."""
    from pipeline.ingest import read_views
    from pipeline.store import Store

    if test_days < 2 or val_days < 1:
        raise ViewcastError("--test-days must be at least 2 and --val-days at least 1")
    batches = [read_views(path, series=name, fmt=fmt) for path, name in files]
    store = Store(ws)
    fixed = store.read_splits()
    if store.generation() is not None and (fixed.test_days, fixed.val_days) != (
        test_days,
        val_days,
    ):
        typer.echo(
            f"viewcast: note: this workspace keeps its splits ({fixed.test_days} test, "
            f"{fixed.val_days} validation days); --test-days/--val-days are ignored",
            err=True,
        )
    report = store.ingest(batches, fill=fill, test_days=test_days, val_days=val_days)
    for (path, _), batch in zip(files, batches, strict=True):
        console.print(f"read {path}: {len(batch):,} days of {len(batch.names):,} series")
    added, updated = sum(report.added.values()), sum(report.updated.values())
    if not report.changed:
        console.print("store unchanged: every day was already there with the same views")
        return
    table = Table("series", "added", "updated", "imputed", title="ingested")
    touched = sorted(set(report.added) | set(report.updated))
    for name in touched[:MAX_ROWS]:
        table.add_row(
            name,
            f"{report.added.get(name, 0):,}",
            f"{report.updated.get(name, 0):,}",
            f"{report.imputed.get(name, 0):,}",
        )
    if touched:
        console.print(table)
    _more(len(touched))
    console.print(
        f"{added:,} days added, {updated:,} updated; {sum(report.imputed.values()):,} days "
        f"imputed ({fill}) in the store; {len(report.newly_split)} series newly split"
    )
    if report.unsplit:
        console.print(
            f"{len(report.unsplit)} series too short to split (more than {val_days + test_days} "
            f"days needed) are sealed until they are: {', '.join(report.unsplit[:5])}"
        )


@app.command()
@guarded
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each series: first and last date, days, imputed days, split boundaries."""
    from pipeline.store import Store

    manifest = Store(ctx.obj).read_manifest()
    if as_json:
        typer.echo(json.dumps(manifest, indent=1, ensure_ascii=False))
        return
    cols = ("series", "first", "last", "days", "imputed", "val_start", "test_start", "test_end")
    table = Table(*cols, title=f"store: {ctx.obj.store} (missing days: {manifest['fill']})")
    series = manifest["series"]
    for name, info in list(series.items())[:MAX_ROWS]:
        table.add_row(name, *(str(info[c] if info[c] is not None else "-") for c in cols[1:]))
    console.print(table)
    _more(len(series))


@app.command()
@guarded
def features(
    ctx: typer.Context,
    lags: Annotated[
        str, typer.Option(help="Lag windows N, comma-separated: x_1..x_N for each.")
    ] = "1,7,28,56",
    target_transform: Annotated[
        str, typer.Option(help="none or log1p, applied to every views value the model sees.")
    ] = "none",
    export: Annotated[
        Path | None,
        typer.Option(help="Write train/val rows to this .parquet or .csv file."),
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="The window to export (default: the largest).")
    ] = None,
) -> None:
    """Build the lag windows of the train/validation days and record the feature spec."""
    from pipeline import features as feats

    ws: Workspace = ctx.obj
    spec = feats.FeatureSpec(_parse_lags(lags), target_transform)
    windows = feats.build(ws, spec)
    summary = feats.summarise(windows)
    path = feats.save_spec(ws, spec, summary)
    table = Table("window N", "series", "train rows", "val rows", title="lag windows")
    for row in summary:
        table.add_row(*(f"{row[k]:,}" for k in ("window", "series", "train_rows", "val_rows")))
    console.print(table)
    console.print(f"feature spec (target transform: {target_transform}) written to {path}")
    if export is not None:
        chosen = window if window is not None else max(spec.lags)
        if chosen not in windows:
            raise ViewcastError(f"--window {chosen} is not one of --lags {lags}")
        feats.export(windows[chosen], export)
        console.print(f"window {chosen} exported to {export} ({len(windows[chosen]):,} rows)")


def _parse_lags(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ViewcastError(f"--lags must be comma-separated day counts, got {text!r}") from None


def _expand(paths: list[Path]) -> list[Path]:
    """Folders stand for the CSV files in them."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise ViewcastError(f"{path}: folder holds no .csv file")
            files += found
        else:
            files.append(path)
    return files


def _progress(label: str, fields: str):
    """A progress bar for a terminal only (timers and logs get plain lines)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(fields),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )


def _more(total: int) -> None:
    if total > MAX_ROWS:
        console.print(f"... and {total - MAX_ROWS:,} more (use --json for all)")


@app.command()
@guarded
def train(
    ctx: typer.Context,
    lags: Annotated[int, typer.Option(help="Window N: the model sees x_1..x_N.")] = 56,
    model: Annotated[str, typer.Option(help="linear, sigmoid or relu.")] = "relu",
    layers: Annotated[int, typer.Option(help="Hidden layers of a relu network (1-6).")] = 3,
    width: Annotated[int, typer.Option(help="Sigmoids, or units per relu layer.")] = 100,
    batchnorm: Annotated[bool, typer.Option(help="Batch normalisation after each layer.")] = False,
    dropout: Annotated[float, typer.Option(help="Dropout after each relu layer.")] = 0.0,
    target_transform: Annotated[
        str | None,
        typer.Option(help="none or log1p (default: what `viewcast features` recorded)."),
    ] = None,
    scaling: Annotated[
        str, typer.Option(help="none, or window-mean: divide each row by its input mean.")
    ] = "none",
    optimizer: Annotated[
        str, typer.Option(help="sgd, momentum, adagrad, rmsprop or adam.")
    ] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    momentum: Annotated[float, typer.Option(help="Momentum of --optimizer momentum.")] = 0.9,
    alpha: Annotated[float, typer.Option(help="RMSProp's alpha.")] = 0.99,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    schedule: Annotated[
        str, typer.Option(help="constant, linear, cosine or step (after any warm-up).")
    ] = "constant",
    warmup_epochs: Annotated[float, typer.Option(help="Linear warm-up length.")] = 0.0,
    step_epochs: Annotated[int, typer.Option(help="Step decay: epochs between decays.")] = 100,
    gamma: Annotated[float, typer.Option(help="Step decay factor.")] = 0.5,
    batch_size: Annotated[int, typer.Option(help="Rows per step; 0 = the full batch.")] = 0,
    epochs: Annotated[int, typer.Option(help="Most epochs to run.")] = 500,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better val MAE; 0 = never.")
    ] = 100,
    loss: Annotated[str, typer.Option(help="mae (the lecture's L) or mse.")] = "mae",
    clip: Annotated[float, typer.Option(help="Max gradient norm; 0 = no clipping.")] = 0.0,
    solver: Annotated[
        str, typer.Option(help="gd, or lstsq: closed-form least squares (linear model).")
    ] = "gd",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    amp: Annotated[bool, typer.Option(help="bfloat16 mixed precision on CUDA.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for weights and batch order.")] = 0,
    series: Annotated[
        list[str] | None, typer.Option(help="Train on these series only (repeat the option).")
    ] = None,
) -> None:
    """Train one model on the training days, early-stop on validation, log it to MLflow."""
    from pipeline import features as feats
    from pipeline import tracking
    from pipeline.models import ModelConfig
    from pipeline.train import TrainConfig, fit

    ws: Workspace = ctx.obj
    spec = feats.load_spec(ws)
    transform = target_transform or spec.target_transform
    mcfg = ModelConfig(
        lags=lags, model=model, layers=layers, width=width, batchnorm=batchnorm,
        dropout=dropout, target_transform=transform, scaling=scaling,
    )  # fmt: skip
    tcfg = TrainConfig(
        optimizer=optimizer, lr=lr, momentum=momentum, alpha=alpha, weight_decay=weight_decay,
        schedule=schedule, warmup_epochs=warmup_epochs, step_epochs=step_epochs, gamma=gamma,
        batch_size=batch_size, epochs=epochs, patience=patience, loss=loss, clip=clip,
        solver=solver, seed=seed, device=device, amp=amp,
    )  # fmt: skip
    windows = feats.select_series(
        feats.build(ws, feats.FeatureSpec((lags,), transform))[lags], series
    )
    progress = _progress(
        "epoch", "train loss {task.fields[loss]:.4g}  val MAE {task.fields[val]:,.1f}"
    )
    with progress:
        task = progress.add_task("train", total=epochs, loss=float("nan"), val=float("nan"))

        def on_epoch(epoch: int, record: dict[str, float]) -> None:
            progress.update(task, completed=epoch, loss=record["train_loss"], val=record["val_mae"])

        result = fit(windows, mcfg, tcfg, on_epoch)
    data = feats.describe(ws, windows)
    run_id = tracking.log_training(ws, windows, mcfg, tcfg, result, data)
    table = Table(
        "train MAE", "val MAE", "epochs run", "best epoch", "seconds", "device", "run id",
        title=f"{model} on {lags} days "
        + ("(closed-form least squares)" if solver == "lstsq" else f"({optimizer}, lr {lr:g})"),
    )  # fmt: skip
    table.add_row(
        f"{result.train_mae:,.1f}",
        f"{result.val_mae:,.1f}",
        str(result.epochs_run),
        str(result.best_epoch),
        f"{result.seconds:.1f}",
        result.device,
        run_id,
    )
    console.print(table)
    console.print(f"compare runs in the MLflow UI: mlflow ui --backend-store-uri {ws.tracking_uri}")


# --- model selection and the sealed test -------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.1f}"


def _run_sweep(ws: Workspace, grid: str, folds: int, max_minutes: float | None):
    """Sweep with a progress bar on a terminal and one line per configuration in logs."""
    from pipeline import selection

    candidates = selection.load_grid(grid)
    progress = _progress("sweep", "{task.fields[name]}")
    with progress:
        task = progress.add_task("sweep", total=len(candidates) + 3, name="")

        def on_step(done: int, total: int, cand, val_mae: float | None) -> None:
            progress.update(task, completed=done, total=total, name=cand.name)
            if val_mae is not None:
                console.print(f"[{done}/{total}] {cand.name}: val MAE {_fmt(val_mae)}")

        report = selection.sweep(ws, grid, candidates, folds, max_minutes, on_step)
    resumed = f", {report.resumed} already done (resumed)" if report.resumed else ""
    cut = f", {report.skipped} left out by --max-minutes" if report.skipped else ""
    failed = f", {report.failed} failed (see their runs' error tag)" if report.failed else ""
    console.print(
        f"sweep {grid}: {report.ran} of {report.total} configurations trained in "
        f"{report.seconds:.0f} s{resumed}{cut}{failed}; parent run {report.run_id}"
    )
    return report


@app.command()
@guarded
def sweep(
    ctx: typer.Context,
    grid: Annotated[
        str, typer.Option(help="lecture, default, or a TOML file ([base] and [grid] tables).")
    ] = "default",
    folds: Annotated[
        int, typer.Option(help="Rolling-origin validation windows; the score is their mean.")
    ] = 1,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop starting configurations after this long.")
    ] = None,
) -> None:
    """Train a grid (plus the baselines) as nested MLflow runs; re-running resumes it."""
    _run_sweep(ctx.obj, grid, folds, max_minutes)


def _selection_table(selection, top: int) -> Table:
    table = Table(
        "rank", "configuration", selection.metric, "train MAE", "run id",
        title=f"sweep {selection.sweep_id}: ranked by {selection.metric} (validation only)",
    )  # fmt: skip
    for rank, row in enumerate(selection.ranking[:top], start=1):
        name = row.name + (" (baseline)" if row.baseline else "")
        table.add_row(str(rank), name, _fmt(row.score), _fmt(row.train_mae), row.run_id)
    return table


@app.command()
@guarded
def select(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option(help="A validation metric of the runs.")] = "val_mae",
    sweep_run: Annotated[
        str | None, typer.Option("--sweep", help="Parent run id (default: the latest sweep).")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows of the table.")] = 10,
    ensemble: Annotated[
        int, typer.Option(help="Also score the mean of the K best configurations; 0 = no.")
    ] = 5,
) -> None:
    """Pick the champion on validation MAE and register it with the alias `champion`."""
    from pipeline import selection as sel
    from pipeline.tracking import REGISTERED_MODEL

    chosen = sel.select(ctx.obj, metric, sweep_run, ensemble)
    console.print(_selection_table(chosen, top))
    if chosen.note:
        console.print(chosen.note)
    console.print(
        f"champion: {chosen.champion.name} (run {chosen.champion.run_id}), registered as "
        f"{REGISTERED_MODEL} version {chosen.version}, alias champion"
    )


@app.command()
@guarded
def submit(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="A training run id.")] = None,
    champion: Annotated[bool, typer.Option(help="Submit the champion (the default).")] = False,
) -> None:
    """Score a run on the public half of the test days (a budget of submissions per day)."""
    from pipeline import holdout, selection

    if run_id is not None and champion:
        raise ViewcastError("give a RUN_ID or --champion, not both")
    chosen = run_id or selection.champion_run(ctx.obj)
    result = holdout.submit(ctx.obj, chosen)
    console.print(
        f"{result.name} (run {result.source_run_id}): public MAE {_fmt(result.public_mae)}, "
        f"val MAE {_fmt(result.val_mae)}; submission {result.used} of {result.budget} today; "
        f"recorded as run {result.run_id}"
    )


@app.command()
@guarded
def leaderboard(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The submissions so far, best public MAE first."""
    from pipeline import holdout

    rows = holdout.leaderboard(ctx.obj)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table("#", "submitted (UTC)", "configuration", "val MAE", "public MAE", "run id",
                  title="public leaderboard")  # fmt: skip
    for rank, row in enumerate(rows[:MAX_ROWS], start=1):
        table.add_row(str(rank), row["submitted"], row["name"], _fmt(row["val_mae"]),
                      _fmt(row["public_mae"]), row["run_id"])  # fmt: skip
    console.print(table)
    _more(len(rows))


def _final_table(payload: dict, baselines: tuple[str, ...] | None = None) -> Table:
    """The final scores: the finalized runs, then the baselines (all, or the named ones)."""
    periods = ("val", "public", "private", "test")
    table = Table("model", "val MAE", "public MAE", "private MAE", "test MAE",
                  title="final test (one day ahead, MAE in views)")  # fmt: skip
    for entry in payload["runs"]:
        star = " (champion)" if entry["run_id"] == payload["champion"]["run_id"] else ""
        table.add_row(entry["name"] + star, *(_fmt(entry[f"{p}_mae"]) for p in periods))
    for name, scores in payload["baselines"].items():
        if baselines is None or name in baselines:
            table.add_row(f"{name} (baseline)", *(_fmt(scores[f"{p}_mae"]) for p in periods))
    return table


@app.command()
@guarded
def finalize(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="One or two run ids (default: the champion).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Reveal the private test score, once: writes reports/final.json, final.md and final.png."""
    from pipeline import holdout, selection

    ws: Workspace = ctx.obj
    try:
        champion = selection.champion_run(ws)
    except ViewcastError:
        if not run_ids:
            raise
        champion = None
    payload = holdout.finalize(ws, run_ids or [champion], champion)
    if as_json:
        typer.echo(json.dumps(payload, indent=1))
        return
    console.print(_final_table(payload))
    console.print(f"report: {payload['report']} (MLflow run {payload['final_run_id']})")


# --- the main job and the UI -------------------------------------------------------------------


@app.command("run")
@guarded
def run_all(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="CSV exports or folders (default: the shipped demo data)."),
    ] = None,
    grid: Annotated[str, typer.Option(help="lecture, default or a TOML grid file.")] = "default",
    max_minutes: Annotated[
        float, typer.Option(help="Time budget of the sweep (the grid is cut to fit).")
    ] = 5.0,
    folds: Annotated[int, typer.Option(help="Rolling-origin validation windows.")] = 1,
    ensemble: Annotated[
        int, typer.Option(help="Let the mean of the K best configurations compete; 0 = no.")
    ] = 5,
    target_transform: Annotated[
        str, typer.Option(help="Recorded feature spec: none or log1p.")
    ] = "log1p",
) -> None:
    """The main job: ingest, features, sweep, select, submit, finalize, and a summary table."""
    from pipeline import features as feats
    from pipeline import holdout, selection
    from pipeline.config import DEMO_FILES

    ws: Workspace = ctx.obj
    if paths:
        files = [(path, None) for path in _expand(paths)]
    else:
        root = ws.demo_data
        files = [(root / name, series) for name, series in DEMO_FILES.items()]
        missing = [str(path) for path, _ in files if not path.is_file()]
        if missing:
            raise ViewcastError(f"no demo data at {missing[0]}: give export files to ingest")
    console.rule("1. ingest")
    _ingest(ws, files)
    console.rule("2. features")
    spec = feats.FeatureSpec(target_transform=target_transform)
    summary = feats.summarise(feats.build(ws, spec))
    feats.save_spec(ws, spec, summary)
    rows = ", ".join(f"{r['window']} days: {r['train_rows']:,}/{r['val_rows']:,}" for r in summary)
    console.print(f"lag windows (train/val rows): {rows}")
    console.rule("3. sweep")
    _run_sweep(ws, grid, folds, max_minutes)
    console.rule("4. select (validation only)")
    chosen = selection.select(ws, ensemble=ensemble)
    console.print(_selection_table(chosen, 5))
    console.rule("5. sealed test")
    try:
        payload = holdout.read_final(ws)
        console.print(
            f"the test was finalized on {payload['finalized_at']}: it is revealed once per "
            "workspace, so this run shows that result (use a new --home for a fresh test)"
        )
    except ViewcastError:
        result = holdout.submit(ws, chosen.champion.run_id)
        console.print(f"submitted the champion: public MAE {_fmt(result.public_mae)}")
        payload = holdout.finalize(ws, [chosen.champion.run_id], chosen.champion.run_id)
    console.rule("summary")
    console.print(_final_table(payload, baselines=("naive", "seasonal-naive")))
    console.print(f"report: {ws.reports / 'final.md'}")
    console.print(
        "compare the sweep's runs: viewcast ui, then open http://127.0.0.1:5000 (experiment "
        "'viewcast': the sweep is the parent run; tick its children and press Compare)"
    )


@app.command()
@guarded
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 against this workspace's store (Ctrl-C stops it)."""
    import subprocess
    import sys

    from pipeline import tracking

    ws: Workspace = ctx.obj
    tracking.connect(ws)  # the store and experiment exist before the server reads them
    command = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ws.tracking_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    console.print(f"MLflow UI for {ws.home}: http://127.0.0.1:{port} (Ctrl-C stops it)")
    try:
        code = subprocess.call(command)
    except KeyboardInterrupt:
        code = 0
    if code:
        raise ViewcastError(f"the MLflow UI exited with code {code} (is port {port} taken?)")


# --- daily forecasts ---------------------------------------------------------------------------


@app.command()
@guarded
def refit(ctx: typer.Context) -> None:
    """Retrain the champion's configuration on all history; register it as `production`."""
    from pipeline.forecast import refit as do_refit

    result = do_refit(ctx.obj)
    console.print(
        f"refit the champion (run {result.source_run_id}) on {result.rows:,} days for "
        f"{result.epochs} epochs: train MAE {_fmt(result.train_mae)}; run {result.run_id}, "
        f"registered as version {result.version}, alias production"
    )


def _forecast(ws: Workspace, date: str | None, horizon: int, force: bool) -> None:
    from pipeline.forecast import forecast as do_forecast

    result = do_forecast(ws, date, horizon, force)
    if not result.written:
        console.print(f"{result.path} exists: nothing to do (--force replaces it)")
        return
    skipped = f"; {len(result.skipped)} series left out (too short or silent too long)"
    console.print(
        f"forecast for {result.date}: {result.rows:,} rows written to {result.path} with model "
        f"version {result.model_version} (run {result.model_run_id}); MLflow run {result.run_id}"
        + (skipped if result.skipped else "")
    )


@app.command("forecast")
@guarded
def forecast_command(
    ctx: typer.Context,
    date: Annotated[
        str | None, typer.Option(help="Day D, YYYY-MM-DD (default: after the last ingested day).")
    ] = None,
    horizon: Annotated[int, typer.Option(help="Days D..D+H-1 (predictions fed back).")] = 1,
    force: Annotated[bool, typer.Option(help="Replace an existing forecast file.")] = False,
) -> None:
    """Forecast day D for every series with intervals; writes data/forecasts/<D>.csv."""
    _forecast(ctx.obj, date, horizon, force)


def _monitor(ws: Workspace, k: float, m: int, as_json: bool):
    from dataclasses import asdict

    from pipeline.monitor import monitor as do_monitor

    result = do_monitor(ws, k, m)
    if as_json:
        typer.echo(json.dumps(asdict(result) | {"drift": result.drift}, indent=1))
        return result
    if not result.days:
        console.print("monitor: no forecast has actuals yet")
        return result
    table = Table("date", "series", "live MAE", f"> {k:g} x val MAE", title="live MAE per day")
    for d in result.days[-MAX_ROWS:]:
        table.add_row(d["date"], str(d["series"]), _fmt(d["live_mae"]), "yes" if d["above"] else "")
    console.print(table)
    console.print(
        f"validation MAE {_fmt(result.reference_mae)}; {len(result.days)} days scored, "
        f"{result.logged_days} newly logged to MLflow run {result.run_id}"
    )
    return result


@app.command("monitor")
@guarded
def monitor_command(
    ctx: typer.Context,
    k: Annotated[float, typer.Option(help="Drift when live MAE > k x validation MAE ...")] = 2.0,
    m: Annotated[int, typer.Option(help="... on m consecutive days.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Live MAE of past forecasts against ingested actuals; exit code 3 on drift."""
    from pipeline.errors import DriftError

    result = _monitor(ctx.obj, k, m, as_json)
    if result.drift:
        raise DriftError(
            f"drift: live MAE above {k:g} x validation MAE ({_fmt(k * result.reference_mae)}) "
            f"for {m} days in a row since {result.drift_since}"
        )


@app.command()
@guarded
def daily(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="The new exports (files or folders).")],
    series: Annotated[
        str | None, typer.Option(help="Series id for single-series files (as for ingest).")
    ] = None,
    k: Annotated[float, typer.Option(help="Drift threshold factor (see monitor).")] = 2.0,
    m: Annotated[int, typer.Option(help="Drift days in a row (see monitor).")] = 3,
    horizon: Annotated[int, typer.Option(help="Forecast days D..D+H-1.")] = 1,
) -> None:
    """For a timer: ingest, monitor, forecast, under an exclusive workspace lock.

    Exit codes: 0 done, 2 error, 3 drift (the forecast is still written), 4 another run holds
    the workspace."""
    from pipeline.errors import DriftError
    from pipeline.lock import workspace_lock

    ws: Workspace = ctx.obj
    with workspace_lock(ws):
        _ingest(ws, [(path, series) for path in _expand(paths)])
        result = _monitor(ws, k, m, as_json=False)
        _forecast(ws, None, horizon, force=False)
    if result.drift:
        raise DriftError(f"drift since {result.drift_since}: see `viewcast monitor`")


# --- the lecture's experiments and diagnostics -------------------------------------------------


@app.command()
@guarded
def experiment(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment: lecture.")],
    series: Annotated[
        list[str] | None, typer.Option(help="Run on these series only (repeat the option).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Cap the grid's epochs (default: the lecture grid's 2,000).")
    ] = None,
    study_epochs: Annotated[
        int, typer.Option(help="Epochs of each batch-size and optimiser study run.")
    ] = 200,
) -> None:
    """The lecture's tables, figures and diagnostics: writes reports/lecture.md."""
    from pipeline import experiment as exp

    if name != "lecture":
        raise ViewcastError(f"unknown experiment {name!r} (there is one: lecture)")
    ws: Workspace = ctx.obj

    def on_step(done: int, total: int, cand, val_mae: float | None) -> None:
        if val_mae is not None:
            console.print(f"[{done}/{total}] {cand.name}: val MAE {_fmt(val_mae)}")

    report = exp.run(ws, series, epochs, study_epochs, on_step)
    console.print(f"best on validation: {report.best}")
    for finding in report.findings:
        console.print(f"- {finding}")
    console.print(f"report: {ws.reports / exp.REPORT} (figures in {ws.reports / exp.FIGURES}/)")


@app.command()
@guarded
def diagnose(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A training run id.")],
    loss: Annotated[str, typer.Option(help="mae (the training loss) or mse.")] = "mae",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Where a training ended (Hessian eigenvalues: minimum, maximum or saddle) and its gradient
    norm against the loss over epochs; the figure is logged to the run."""
    from dataclasses import asdict

    from pipeline import diagnostics as diag

    ws: Workspace = ctx.obj
    result = diag.diagnose_run(ws, run_id, loss)
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=1))
        return
    console.print(f"{result.name}: {diag.describe(result.point)}")
    if result.stuck_epochs:
        console.print(
            f"stuck but not at a small gradient (L6) in {len(result.stuck_epochs)} epochs, "
            f"from epoch {result.stuck_epochs[0]}"
        )
    console.print(f"figure: {result.figure}")
