"""Named queries: stages ask a question (the latest sweep, today's submissions) and get plain
RunRecords back."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import TYPE_CHECKING

from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.models.config import Blend, ModelConfig
from pipeline.models.safe import CURVES_FILE, read_curves
from pipeline.tracking.connection import session
from pipeline.tracking.records import RunRecord, Stage, SweepPurpose, Tag, _record
from pipeline.tracking.registry import model_folder

if TYPE_CHECKING:
    from pipeline.models.train import TrainConfig


# --- named queries ----------------------------------------------------------------------------


def get_run(ws: Paths, run_id: str) -> RunRecord:
    """One run by id; an unknown id is a one-line error."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.exceptions import MlflowException

    try:
        return _record(session(ws).client.get_run(run_id))
    except MlflowException:
        raise ViewcastError(f"no run {run_id!r} in this workspace") from None


def runs(ws: Paths, stage: Stage, query: str = "", most: int = 50_000) -> list[RunRecord]:
    """Every run of one stage (newest first), optionally narrowed by an MLflow filter."""
    where = f"tags.{Tag.STAGE} = '{stage}'" + (f" and {query}" if query else "")
    return session(ws).search(where, ["attributes.start_time DESC"], most)


def all_runs(ws: Paths) -> list[RunRecord]:
    """Every run of the workspace's experiment."""
    return session(ws).search("")


def running_runs(ws: Paths) -> list[RunRecord]:
    """Runs whose status is still RUNNING (a writer is at work, or died without ending them)."""
    return session(ws).search("attributes.status = 'RUNNING'")


def find_sweep(ws: Paths, key: str) -> RunRecord | None:
    """The sweep with this content key, if one was started."""
    found = runs(ws, Stage.SWEEP, f"tags.{Tag.SWEEP_KEY} = '{key}'", most=1)
    return found[0] if found else None


def latest_sweep(ws: Paths) -> str:
    """The newest selection sweep (the lecture experiment's sweep is not one)."""
    for run in runs(ws, Stage.SWEEP):
        if run.tags.get(Tag.SWEEP_PURPOSE, SweepPurpose.SELECTION) == SweepPurpose.SELECTION:
            return run.run_id
    raise ViewcastError("no sweep in this workspace yet: run `viewcast sweep` first")


def sweep_parent(ws: Paths, run_id: str) -> str:
    """A sweep's parent run given by id (`select --sweep`): an unknown id, or a run of another
    stage, is a one-line error."""
    stage = get_run(ws, run_id).tags.get(Tag.STAGE, "")
    if stage != Stage.SWEEP:
        what = f"a {stage} run" if stage else "not a viewcast run"
        raise ViewcastError(
            f"run {run_id} is {what}, not a sweep: give the parent run `viewcast sweep` printed"
        )
    return run_id


def sweep_children(ws: Paths, parent: str, finished_only: bool = True) -> list[RunRecord]:
    """The training runs of a sweep (finished ones, unless told otherwise)."""
    query = f"tags.{Tag.PARENT} = '{parent}' and tags.{Tag.STAGE} = '{Stage.TRAIN}'"
    if finished_only:
        query += " and attributes.status = 'FINISHED'"
    return session(ws).search(query)


def sweep_child(ws: Paths, parent: str, config_key: str) -> RunRecord | None:
    """The finished run of one configuration (by its content key) in a sweep."""
    found = [r for r in sweep_children(ws, parent) if r.tags.get(Tag.CONFIG_KEY) == config_key]
    return found[0] if found else None


def children(ws: Paths, parent: str) -> list[RunRecord]:
    """Every run nested under a parent run, whatever its stage."""
    return session(ws).search(f"tags.{Tag.PARENT} = '{parent}'")


def submissions_today(ws: Paths, now: dt.datetime) -> int:
    """Submissions started since midnight UTC of `now`."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = int(midnight.timestamp() * 1000)
    return len(runs(ws, Stage.SUBMISSION, f"attributes.start_time >= {since}"))


def epoch_curves(ws: Paths, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
    """The epochs and values of the training loss, gradient norm and validation MAE of a run:
    every epoch from its model folder's curves file, else the thinned curves MLflow holds (runs
    logged before the file, or with no model folder)."""
    try:
        path = model_folder(ws, run_id) / CURVES_FILE
    except ViewcastError:  # no model folder: a failed run, or one logged by hand
        path = None
    if path is not None and path.is_file():
        found = read_curves(path)
        return {k: found.get(k, ([], [])) for k in ("train_loss", "grad_norm", "val_mae_epoch")}
    client = session(ws).client
    out = {}
    for key in ("train_loss", "grad_norm", "val_mae_epoch"):
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        out[key] = ([m.step for m in points], [m.value for m in points])
    return out


def epoch_history(ws: Paths, run_id: str) -> dict[str, list[float]]:
    """The logged values of the training loss, gradient norm and validation MAE, epoch order."""
    return {key: values for key, (_, values) in epoch_curves(ws, run_id).items()}


def metric_steps(ws: Paths, run_id: str, key: str) -> dict[int, float]:
    """step -> value of one metric's history (the latest point at each step)."""
    return {step: value for step, (value, _) in metric_points(ws, run_id, key).items()}


def metric_points(ws: Paths, run_id: str, key: str) -> dict[int, tuple[float, int]]:
    """step -> (value, timestamp in ms) of one metric's latest point at each step (MLflow
    returns the history by timestamp)."""
    history = session(ws).client.get_metric_history(run_id, key)
    return {m.step: (m.value, m.timestamp) for m in history}


def artifacts(ws: Paths, run_id: str, path: str | None = None) -> set[str]:
    """Paths of a run's artifacts (at the top level, or under `path`)."""
    return {a.path for a in session(ws).client.list_artifacts(run_id, path)}


def ensemble_parts(run: RunRecord) -> tuple[list[str], Blend]:
    """An ensemble run's member runs and how it blends them (its ensemble.* params)."""

    def floats(key: str) -> tuple[float, ...] | None:
        found = run.params.get(key)
        return tuple(float(w) for w in found.split(",")) if found else None

    members = run.params["ensemble.members"].split(",")
    return members, Blend(floats("ensemble.weights"), floats("ensemble.first"))


def run_config(run: RunRecord) -> tuple[ModelConfig | None, TrainConfig]:
    """The ModelConfig and TrainConfig a training run logged as model.* and train.* params
    (no ModelConfig for an ensemble run)."""
    # lazy: torch takes 2 s to import; only the paths that train or load a network pay
    from pipeline.models.train import TrainConfig

    def parse(cls, prefix: str):
        parsers = {"bool": lambda v: v == "True", "int": int, "float": float, "str": str}
        return {
            f.name: parsers[str(f.type)](run.params[f"{prefix}.{f.name}"])
            for f in fields(cls)
            if f"{prefix}.{f.name}" in run.params
        }

    model = (
        None
        if run.params.get("model.model") == "ensemble"
        else ModelConfig(**parse(ModelConfig, "model"))
    )
    return model, TrainConfig(**parse(TrainConfig, "train"))
