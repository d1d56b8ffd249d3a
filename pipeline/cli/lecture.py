"""The lecture's commands: experiment and diagnose."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.cli.main import Arg, ExperimentName, JsonFlag, Loss, Opt, SeriesFilter, command
from pipeline.cli.terminal import console
from pipeline.data.errors import ViewcastError


@command()
def experiment(
    ctx: typer.Context,
    name: Annotated[ExperimentName, Arg(help="The experiment.")],
    series: SeriesFilter = None,
    epochs: Annotated[int | None, Opt(help="Cap the grid's epochs (default 2,000).")] = None,
    study_epochs: Annotated[int, Opt(help="Epochs of each study's trainings.")] = 200,
    only: Annotated[
        list[str] | None,
        Opt(help="Only: grid, escape, sharpness, landscape, direction or batchnorm (repeatable)."),
    ] = None,
) -> None:
    """The lecture's tables, figures, diagnostics and studies (L4-L8): reports/lecture.md."""
    for option, value in (("--epochs", epochs), ("--study-epochs", study_epochs)):
        if value is not None and value < 1:
            raise ViewcastError(f"{option} must be at least 1, got {value}")
    parts = list(only or ["grid", *jobs.STUDIES])
    unknown = sorted(set(parts) - {"grid", *jobs.STUDIES})
    if unknown:
        choices = ", ".join(["grid", *jobs.STUDIES])
        raise ViewcastError(f"--only {unknown[0]!r} is not one of {choices}")
    if "grid" in parts:
        report = jobs.experiment(ctx.obj, series, epochs, study_epochs, show.config_line)
        show.lecture(report, ctx.obj.reports / jobs.LECTURE_REPORT)
    chosen = tuple(p for p in jobs.STUDIES if p in parts)
    if chosen:
        jobs.studies(ctx.obj, chosen, series, study_epochs, show.study_line)
        page = ctx.obj.reports / jobs.LECTURE_REPORT
        console.print(f"studies: {', '.join(chosen)}; report: {page}")


@command()
def diagnose(
    ctx: typer.Context,
    run_id: Annotated[str, Arg(help="A training run id.")],
    loss: Annotated[Loss, Opt(help="mae is the training loss.")] = "mae",
    escape: Annotated[bool, Opt(help="L4: step along the lowest-curvature eigenvector.")] = False,
    escape_steps: Annotated[int, Opt(help="Then N gradient-descent steps from both points.")] = 0,
    escape_lr: Annotated[float, Opt(help="Their learning rate.")] = 1e-2,
    as_json: JsonFlag = False,
) -> None:
    """Where a training ended (Hessian eigenvalues: minimum, maximum or saddle) and its gradient
    norm against the loss over epochs; with --escape, the loss along the most negative
    curvature direction. Figures are logged to the run."""
    if escape:
        found = jobs.escape(ctx.obj, run_id, loss, escape_steps, escape_lr)
        show.escaped(found)
        if as_json:
            show.emit(show.plain(found))
        return
    result = jobs.diagnose(ctx.obj, run_id, loss)
    if as_json:
        show.emit(asdict(result))  # strict JSON: a non-finite number is null
        return
    console.print(f"{result.name}: {jobs.critical_point_sentence(result.point)}")
    if result.stuck_epochs:
        console.print(
            f"stuck but not at a small gradient (L6) in {len(result.stuck_epochs)} epochs, "
            f"from epoch {result.stuck_epochs[0]}"
        )
    console.print(f"figure: {result.figure}")
