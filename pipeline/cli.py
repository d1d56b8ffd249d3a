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
