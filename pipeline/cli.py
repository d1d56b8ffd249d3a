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
    from pipeline.ingest import read_views
    from pipeline.store import Store

    ws: Workspace = ctx.obj
    if test_days < 2 or val_days < 1:
        raise ViewcastError("--test-days must be at least 2 and --val-days at least 1")
    files = _expand(paths)
    batches = [read_views(path, series=series, fmt=fmt) for path in files]
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
    for path, batch in zip(files, batches, strict=True):
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

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
    progress = Progress(
        TextColumn("[bold]epoch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("train loss {task.fields[loss]:.4g}  val MAE {task.fields[val]:,.1f}"),
        console=console,
        disable=not console.is_terminal,
        transient=True,
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
