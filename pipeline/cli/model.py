"""`viewcast model log RUN_ID...`: any training run as an MLflow pyfunc model, when you need it."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import jobs
from pipeline.cli import terminal as show
from pipeline.cli.main import Arg, JsonFlag, app, command
from pipeline.cli.terminal import console

model_app = typer.Typer(
    help="MLflow models of runs: a sweep logs each configuration's weights, not a model.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


@command("log", group=model_app)
def log_model(
    ctx: typer.Context,
    run_ids: Annotated[list[str], Arg(help="Training run ids (the MLflow UI shows them).")],
    as_json: JsonFlag = False,
) -> None:
    """Log runs' models as MLflow pyfunc models (signature, input example, pinned requirements),
    loadable with mlflow.pyfunc.load_model("models:/<model id>"); a run that has one keeps it."""
    done = jobs.log_models(ctx.obj, run_ids)
    for run_id, model_id in done:
        console.print(f"run {run_id}: MLflow model models:/{model_id}")
    if as_json:
        show.emit([{"run_id": r, "model_id": m} for r, m in done])
