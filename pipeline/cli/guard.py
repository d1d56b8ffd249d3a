"""Every command's body runs inside `guard`: a ViewcastError is one line on stderr and its exit
code, an unexpected error one line pointing to --debug, and a writer holds the workspace lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import typer

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.data.errors import ViewcastError

EXIT_BUG = 1  # an unexpected error: one line, the traceback with --debug


def guard(
    ctx: typer.Context,
    call: Callable[[], Any],
    writes: bool = True,
    wait: float | None = None,
    as_json: bool = False,
) -> Any:
    """Run a command's body: its ViewcastError as one line and its exit code, an unexpected
    error as one line (the traceback with --debug); a writer holds the workspace lock."""
    seconds = ctx.meta.get("wait", 0.0) if wait is None else wait
    try:
        with show.tables_to_stderr(as_json):
            if not writes:
                return call()
            with jobs.locked(ctx.obj, seconds):
                return call()
    except ViewcastError as err:
        typer.echo(f"viewcast: error: {_one_line(str(err))}", err=True)
        raise typer.Exit(err.exit_code) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        if ctx.meta.get("debug"):
            raise
        where = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        typer.echo(
            f"viewcast: unexpected error ({where}); run `viewcast --debug "
            f"{_command_words(ctx)} ...` for the traceback and please report it",
            err=True,
        )
        raise typer.Exit(EXIT_BUG) from None


def _command_words(ctx: click.Context) -> str:
    """`status`, or `pull wikipedia` for a group's command: the words after `viewcast`."""
    words = []
    while ctx.parent is not None:
        words.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(words))


def _one_line(text: str) -> str:
    """Control characters (a damaged file's header may hold any) escaped: one line, always."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
