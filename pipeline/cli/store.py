"""Store maintenance: `viewcast drop` takes series out of the store."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.cli.main import Arg, JsonFlag, Opt, command
from pipeline.cli.terminal import console


@command()
def drop(
    ctx: typer.Context,
    series: Annotated[list[str], Arg(help="Series ids to take out (see `viewcast status`).")],
    force: Annotated[
        bool, Opt(help="Drop even after `finalize` (recorded in MLflow as a drop run).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Take series out of the store, all or none, under the workspace lock (a new store
    generation: a crash leaves the old one). Refused once the sealed test is finalized, unless
    --force."""
    left = jobs.drop(ctx.obj, series, force)
    console.print(f"dropped {', '.join(series)} from the store; {len(left)} series left")
    if as_json:
        show.emit({"dropped": series, "left": left})
