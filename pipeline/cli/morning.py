"""What the morning's commands print: refit, forecast, monitor, pull and daily (the tables and
lines of pipeline.cli.terminal, for the commands a timer runs)."""

from __future__ import annotations

import math

from pipeline import jobs
from pipeline.cli.terminal import MAX_ROWS, console, days, fmt, ingested, table


def refit(result) -> None:
    console.print(
        f"refit the champion (run {result.source_run_id}) on {result.rows:,} days for "
        f"{result.epochs} epochs: train MAE {fmt(result.train_mae)}; run {result.run_id}, "
        f"registered as version {result.version}, alias production"
    )


def forecast(result) -> None:
    if not result.written:
        ahead = ""
        if result.held is not None and result.held != result.horizon:
            ahead = f" (it holds {days(result.held)} ahead; {result.horizon} asked)"
        console.print(f"{result.path} exists{ahead}: nothing to do (--force replaces it)")
        return
    skipped = f"; {len(result.skipped)} series left out (too short or silent too long)"
    console.print(
        f"forecast for {result.date}: {result.rows:,} rows written to {result.path} with model "
        f"version {result.model_version} (run {result.model_run_id}); MLflow run {result.run_id}"
        + (skipped if result.skipped else "")
    )
    if result.late:
        console.print(
            f"{result.late:,} series {'ends' if result.late == 1 else 'end'} before the day "
            f"before {result.date} (up to {days(result.late_days)} missing): forecast from their "
            "last day, their intervals as many days ahead"
        )
    if result.unbounded_from:
        console.print(
            f"rows from {result.unbounded_from} on have no interval where they lie further past "
            "their series' last day than the champion's out-of-sample errors reach (empty bounds)"
        )


def inside(coverage: dict) -> str:
    """'83% / 96%': the share of actuals inside the 80% and 95% intervals ('-': none had one)."""
    shares = (coverage[f"coverage_{level}"] for level in (80, 95))
    return " / ".join("-" if math.isnan(c) else f"{c:.0f}%" for c in shares)


def monitoring(result) -> None:
    if not result.days:
        console.print("monitor: no forecast has actuals yet")
        return
    header = ("date", "series", "live MAE", f"> {result.k:g} x val MAE", "inside 80% / 95%")
    rows = [
        [d["date"], str(d["series"]), fmt(d["live_mae"]), "yes" if d["above"] else "", inside(d)]
        for d in result.days
    ]
    table("live MAE per day", header, rows[-MAX_ROWS:])
    if len(result.horizons) > 1:  # multi-day forecasts: each of their days scored too
        rows = [
            [str(d["h"]), f"{d['rows']:,}", fmt(d["live_mae"]), inside(d)] for d in result.horizons
        ]
        header = ("day of the forecast", "rows", "live MAE", "inside 80% / 95%")
        table("live MAE by day of the forecast (D = 1)", header, rows[:MAX_ROWS])
    console.print(
        f"validation MAE {fmt(result.reference_mae)}; {days(len(result.days))} scored, "
        f"{result.logged_days} logged (new or changed) to MLflow run {result.run_id}; actuals "
        f"inside the 80% / 95% intervals: {inside(result.coverage)}"
    )


def daily_stage(stage: str, result) -> None:
    """`viewcast daily`'s stage callback: what ingest, monitor and forecast did."""
    printers = {"pull": pulled, "ingest": ingested, "monitor": monitoring, "forecast": forecast}
    if result is not None:
        printers[stage](result)


def pulled(done: jobs.Pulled) -> None:
    """Each source's pull, then what the store took in."""
    rows = []
    for s in done.sources:
        what = (
            f"failed: {s.error}"
            if s.error
            else "nothing new"
            if s.nothing_new
            else f"{days(s.days)} to {s.last_day} (final to {s.final_through})"
        )
        rows.append([s.source, s.name, what, f"{s.revised:,}" if s.revised else ""])
    table("pull", ("source", "series", "pulled", "revised"), rows)
    if done.report is not None and done.report.changed:
        added = sum(done.report.added.values())
        updated = sum(done.report.updated.values())
        console.print(f"store: {days(added)} added, {updated:,} updated")
    elif not any(s.error for s in done.sources):
        console.print("store unchanged")
