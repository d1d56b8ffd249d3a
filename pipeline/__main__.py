"""`python -m pipeline` is the `viewcast` command."""

from pipeline.cli import app

if __name__ == "__main__":  # not when a spawned helper process imports the main module
    app(prog_name="viewcast")
