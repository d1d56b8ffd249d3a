"""The `viewcast` command (Typer): parse, call a job, print."""

from pipeline.cli import daily, lecture, model, sources, store  # noqa: F401  (their commands register on the app)
from pipeline.cli.main import app

__all__ = ["app"]
