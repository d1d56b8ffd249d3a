"""`python -m pipeline` is the `viewcast` command."""

from pipeline.cli import app

app(prog_name="viewcast")
