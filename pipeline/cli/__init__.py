"""The `viewcast` command (Typer): parse, call a job, print."""

from pipeline.cli.app import app

__all__ = ["app"]
