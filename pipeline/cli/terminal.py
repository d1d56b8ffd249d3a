"""What the CLI prints: tables, one-line summaries and progress bars, on a terminal or in logs.

The commands in pipeline.cli parse options and call jobs; the results come here to be shown.
Tables show MAX_ROWS rows and say how many more there are; progress bars appear on a terminal only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import PurePath

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from pipeline import jobs
from pipeline import plots as reports
from pipeline.data import studio
from pipeline.data.atomic import restore
from pipeline.data.workspace import Paths

console = Console(highlight=False)
if not console.is_terminal:  # logs and pipes: wide tables instead of folded cells
    console = Console(highlight=False, width=200)
MAX_ROWS = 25  # rows a table shows before it says how many more there are


def days(n: int) -> str:
    """'1 day', '2 days', '1,200 days'."""
    return f"{n:,} day{'s' * (n != 1)}"


def fmt(value: float | None) -> str:
    return reports.fmt_mae(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print the first MAX_ROWS rows as a table, and how many more there are."""
    table = Table(*header, title=title)
    for row in rows[:MAX_ROWS]:
        table.add_row(*row)
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... and {len(rows) - MAX_ROWS:,} more (use --json for all)")


def progress(label: str, fields: str):
    """A progress bar for a terminal only (timers and logs get plain lines)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(fields),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )


def ingested(done: jobs.Ingested) -> None:
    """What was read, and a table of what changed."""
    report = done.report
    if report.kept_splits is not None:
        test, val = report.kept_splits
        typer.echo(
            f"viewcast: note: this workspace keeps its splits ({test} test, {val} validation "
            "days); --test-days/--val-days are ignored",
            err=True,
        )
    for path, n, series in done.files:
        console.print(f"read {path}: {days(n)} of {series:,} series")
    for path in done.left_out:
        console.print(f"left out {path}: {studio.TABLE}")
    if not report.changed:
        console.print("store unchanged: every day was already there with the same views")
        return
    touched = sorted(set(report.added) | set(report.updated))
    counts = (report.added, report.updated, report.imputed)
    rows = [[name, *(f"{c.get(name, 0):,}" for c in counts)] for name in touched]
    if rows:
        table("ingested", ("series", "added", "updated", "imputed"), rows)
    added, updated = sum(report.added.values()), sum(report.updated.values())
    console.print(
        f"{days(added)} added, {updated:,} updated; {days(sum(report.imputed.values()))} "
        f"imputed ({done.fill}) in the store; {len(report.newly_split)} series newly split"
    )
    if report.unsplit:
        n = len(report.unsplit)
        more = f" and {n - 5:,} more" if n > 5 else ""
        verb, pronoun = ("is", "it is") if n == 1 else ("are", "they are")
        console.print(
            f"{n:,} series too short to split {verb} sealed until {pronoun} long enough: "
            f"{', '.join(report.unsplit[:5])}{more}"
        )


def sweep_step(progress, task):
    """The sweep's progress: a bar on a terminal, one line per configuration in logs."""

    def on_step(done: int, total: int, cand, val_mae: float | None) -> None:
        progress.update(task, completed=done, total=total, name=cand.name)
        if val_mae is not None:
            console.print(f"[{done}/{total}] {cand.name}: val MAE {fmt(val_mae)}")

    return on_step


def swept(report) -> None:
    resumed = f", {report.resumed} already done (resumed)" if report.resumed else ""
    cut = f", {report.skipped} left out by --max-minutes" if report.skipped else ""
    failed = f", {report.failed} failed (see their runs' error tag)" if report.failed else ""
    console.print(
        f"sweep {report.grid}: {report.ran} of {report.total} configurations trained in "
        f"{report.seconds:.0f} s{resumed}{cut}{failed}; parent run {report.run_id}"
    )
    if report.ran:
        console.print(
            f"time: {report.train_seconds:.1f} s training, {report.log_seconds:.1f} s MLflow "
            f"logging, {report.plot_seconds:.1f} s learning curves"
        )


def selection(selection, top: int) -> None:
    rows = [
        [
            str(rank),
            row.name + (" (baseline)" if row.baseline else ""),
            fmt(row.score),
            fmt(row.train_mae),
            row.run_id,
        ]
        for rank, row in enumerate(selection.ranking[:top], start=1)
    ]
    title = f"sweep {selection.sweep_id}: ranked by {selection.metric} (validation only)"
    table(title, ("rank", "configuration", selection.metric, "train MAE", "run id"), rows)


def final(payload: dict, baselines: tuple[str, ...] | None = None) -> None:
    """The final scores: the same rows as reports/final.md."""
    rows = reports.final_rows(payload, baselines)
    table("final test (one day ahead, MAE in views)", reports.FINAL_HEADER, rows)


def sealed_test(sealed: jobs.SealedTest) -> None:
    if sealed.public_mae is not None:
        console.print(f"submitted the champion: public MAE {fmt(sealed.public_mae)}")
        return
    console.print(
        f"the test was finalized on {sealed.payload['finalized_at']}: it is revealed once per "
        "workspace, so this run shows that result and keeps its champion (no sweep, no select; "
        "use a new --home for a fresh test)"
    )


def windows(summary: list[dict]) -> None:
    rows = ", ".join(f"{days(r['window'])}: {r['train_rows']:,}/{r['val_rows']:,}" for r in summary)
    console.print(f"lag windows (train/val rows): {rows}")


def champion(chosen, top: int) -> None:
    """select's ranking, and where the champion was registered."""
    selection(chosen, top)
    if chosen.note:
        console.print(chosen.note)
    console.print(
        f"champion: {chosen.champion.name} (run {chosen.champion.run_id}), registered as "
        f"{chosen.registered} version {chosen.version}, alias champion"
    )
    windows = getattr(chosen, "windows", 1)
    if windows > 1:
        console.print(f"its intervals: calibrated on {windows} validation windows")


def submission(result) -> None:
    console.print(
        f"{result.name} (run {result.source_run_id}): public MAE {fmt(result.public_mae)}, "
        f"val MAE {fmt(result.val_mae)}; submission {result.used} of {result.budget} today; "
        f"recorded as run {result.run_id}"
    )


def backtested(result) -> None:
    """Days 1-7, then every 7th and the last: the numbers per horizon (--json: every h)."""
    horizon = result.plan.horizon
    shown = [r for r in result.steps if r["h"] <= 7 or r["h"] % 7 == 0 or r["h"] == horizon]
    header = ["h", "paths", "MAE", "SMAPE %", "MASE", "80% cover", "95% cover", "sqrt(h) 80/95"]

    def cells(r: dict) -> list[str]:
        if not r.get("paths"):
            return [str(r["h"]), "0"] + ["-"] * 6
        return [
            str(r["h"]),
            f"{r['paths']:,}",
            fmt(r["mae"]),
            f"{r['smape']:.1f}",
            f"{r['mase']:.3f}",
            f"{r['coverage_80']:.1f}",
            f"{r['coverage_95']:.1f}",
            f"{r['sqrt_coverage_80']:.0f} / {r['sqrt_coverage_95']:.0f}",
        ]

    sealed = "dev days only, the test sealed" if result.sealed else "every day (finalized)"
    title = (
        f"backtest of run {result.source_run_id}: {result.plan.origins} origins "
        f"{days(result.plan.step)} apart, {len(result.series)} series, {sealed}"
    )
    table(title, header, [cells(r) for r in shown])
    if result.skipped:
        console.print(f"left out (too short): {', '.join(result.skipped[:10])}")
    console.print(f"{result.seconds:.1f} s; run {result.run_id}; picture {result.figure}")


def summary(payload: dict, ws) -> None:
    """The end of `viewcast run`: the champion against the naive baselines, and where to look."""
    console.rule("summary")
    final(payload, baselines=("naive", "seasonal-naive"))
    console.print(f"report: {ws.reports / 'final.md'}")
    console.print(
        "compare the sweep's runs: viewcast ui, then open http://127.0.0.1:5000 (experiment "
        "'viewcast': the sweep is the parent run; tick its children and press Compare)"
    )


def leaderboard(rows: list[dict]) -> None:
    header = ("#", "submitted (UTC)", "configuration", "val MAE", "public MAE", "SMAPE", "MASE")
    keys = ("submitted", "name", "val_mae", "public_mae")

    def ratio(value: float, digits: str) -> str:
        return format(value, digits) if value == value else "-"  # NaN: an older submission

    cells = [
        [
            str(rank),
            *(fmt(r[k]) if k.endswith("_mae") else r[k] for k in keys),
            ratio(r["public_smape"], ".2f"),
            ratio(r["public_mase"], ".3f"),
        ]
        for rank, r in enumerate(rows, start=1)
    ]
    table("public leaderboard", header, cells)


def lecture(report, page) -> None:
    """The lecture experiment's outcome: the best model, the findings, where the page is."""
    console.print(f"best on validation: {report.best}")
    for finding in report.findings:
        console.print(f"- {finding}")
    console.print(f"report: {page} (figures in the folder beside it)")


RUN_TITLES = {
    "ingest": "1. ingest",
    "features": "2. features",
    "sweep": "3. sweep",
    "select": "4. select (validation only)",
    "test": "5. sealed test",
}


def run_stage():
    """`viewcast run`'s stage callback: a rule before each stage, its result after it."""
    printers = {
        "ingest": ingested,
        "features": windows,
        "test": sealed_test,
        "sweep": swept,
        "select": lambda r: selection(r, 5),
    }

    def on_stage(stage: str, result) -> None:
        if result is None:
            console.rule(RUN_TITLES[stage])
        else:
            printers[stage](result)

    return on_stage


def findings(found: list, ws, as_json: bool = False) -> None:
    """`viewcast check`'s findings, or that the workspace is whole."""
    if as_json:
        typer.echo(json.dumps([asdict(f) for f in found], indent=1))
        return
    if not found:
        console.print(f"{ws.home}: store and MLflow database are whole; no run left RUNNING")
        return
    rows = [[f.file, f.problem, "repaired" if f.repaired else ""] for f in found]
    table("check", ("file", "problem", ""), rows)


def config_line(done: int, total: int, cand, val_mae: float | None) -> None:
    """One line per trained configuration (the lecture experiment's progress)."""
    if val_mae is not None:
        console.print(f"[{done}/{total}] {cand.name}: val MAE {fmt(val_mae)}")


@contextmanager
def sweep_progress():
    """A sweep's progress bar (a terminal only) with its per-configuration callback."""
    bar = progress("sweep", "{task.fields[name]}")
    with bar:
        yield sweep_step(bar, bar.add_task("sweep", total=None, name=""))


@contextmanager
def epoch_progress(epochs: int):
    """A training's progress bar (a terminal only) with its per-epoch callback."""
    bar = progress("epoch", "train loss {task.fields[loss]:.4g}  val MAE {task.fields[val]}")
    with bar:
        task = bar.add_task("train", total=epochs, loss=float("nan"), val="-")

        def on_epoch(epoch: int, record: dict[str, float]) -> None:
            bar.update(task, completed=epoch, loss=record["train_loss"], val=fmt(record["val_mae"]))

        yield on_epoch


def ui_links(ws: Paths, urls: dict[str, str]) -> None:
    console.print(f"MLflow UI for {ws.home} (Ctrl-C stops it):")
    console.print(f"  runs (sweeps, trainings, tests): {urls['runs']}")
    console.print(f"  daily forecasts and monitoring:  {urls['daily']}")
    console.print(f"  registered model and aliases:    {urls['model']}")


def direction(found, run_id: str) -> None:
    """`viewcast train --task direction`: accuracy against the two baselines."""
    header = ("train accuracy", "val accuracy", "majority class", "same as today", "run id")
    row = [
        f"{found.train_accuracy:.3f}",
        f"{found.val_accuracy:.3f}",
        f"{found.majority_accuracy:.3f}",
        f"{found.persistence_accuracy:.3f}",
        run_id,
    ]
    lo, hi = found.cuts
    table(f"tomorrow's direction (down < {lo:+.3f} <= same <= {hi:+.3f} < up)", header, [row])


def study_line(name: str) -> None:
    console.print(f"study {name}...")


def escaped(found) -> None:
    """`viewcast diagnose --escape`: what stepping along u did, in words from the numbers."""
    e = found.escape
    if e.eigenvalue >= 0:
        where = f"no negative curvature (lowest eigenvalue {e.eigenvalue:.3g}): not a saddle"
    else:
        where = f"lowest Hessian eigenvalue {e.eigenvalue:.3g} ({e.method}): negative curvature"
    console.print(f"{found.name}: {where}")
    verb = "lowers" if e.drop > 0 else "does not lower"
    console.print(
        f"a step of {e.best_eta:+.3g} along its eigenvector {verb} the loss by {e.drop:.3g}; "
        f"the best step along a random direction of the same length: {e.random_drop:.3g}"
    )
    if found.stay:
        better = "lower" if found.leave[-1] < found.stay[-1] else "not lower"
        console.print(
            f"after {len(found.stay) - 1} gradient-descent steps: {found.leave[-1]:.4g} from the "
            f"escaped point, {found.stay[-1]:.4g} from the trained one ({better})"
        )
    console.print(f"figure: {found.figure}")


# --- JSON for scripts (--json) ------------------------------------------------------------------


def plain(obj) -> dict:
    """A result dataclass as JSON-ready values (paths as text, NaN and inf as null)."""
    return _clean(dataclasses.asdict(obj))


def pick(obj, keys: tuple[str, ...]) -> dict:
    return _clean({k: getattr(obj, k) for k in keys})


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item"):  # NumPy scalars
        return _clean(value.item())
    return value


def csv_rows(path) -> list[dict]:
    """A forecast file's rows (series ids as ingested: see atomic.neutralise)."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    import pandas as pd

    frame = pd.read_csv(path, dtype={"series_id": str})
    frame["series_id"] = frame["series_id"].map(restore)
    return _clean(frame.to_dict(orient="records"))


@contextmanager
def tables_to_stderr(on: bool):
    """With --json, tables and progress go to stderr: stdout carries the JSON alone."""
    if not on:
        yield
        return
    console.file = sys.stderr
    try:
        yield
    finally:
        console.file = None  # back to whatever sys.stdout is (CliRunner swaps it per call)


def emit(payload: dict | list) -> None:
    """The one JSON document on stdout (tables and progress went to stderr)."""
    typer.echo(json.dumps(_clean(payload), indent=1, ensure_ascii=False))


def deprecated(old: str, new: str, value: object) -> object:
    """An old option's value, with a one-line warning on stderr when it was given."""
    if value is not None:
        typer.echo(f"viewcast: warning: {old} is deprecated, use {new}", err=True)
    return value
