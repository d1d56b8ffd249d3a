"""Run writers: params, metrics, curves, datasets, figures and model folders, each in few calls."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.features import SPLIT_NAMES
from pipeline.data.workspace import Paths
from pipeline.models.config import ModelConfig
from pipeline.tracking.connection import _experiment_id, connect, session
from pipeline.tracking.records import BATCH, DAILY_EXPERIMENT, MODEL_ARTIFACT, Stage, Tag
from pipeline.tracking.registry import EXAMPLE_FILE, log_pyfunc

if TYPE_CHECKING:
    from pipeline.data.features import LagWindows
    from pipeline.models.outcome import Outcome
    from pipeline.models.train import TrainConfig


# --- run writers ------------------------------------------------------------------------------


def flat_params(mcfg: ModelConfig, tcfg: TrainConfig, data: dict) -> dict[str, str]:
    """model.*, train.*, data.*: the whole configuration, the same keys for every family."""
    params = {f"model.{k}": v for k, v in asdict(mcfg).items()}
    params |= {f"train.{k}": v for k, v in asdict(tcfg).items()}
    params |= {f"data.{k}": v for k, v in data.items()}
    return {k: str(v) for k, v in params.items()}


def digest(*arrays: np.ndarray) -> str:
    """A short content hash of the data a run saw (MLflow dataset digest)."""
    h = hashlib.sha256()
    for a in arrays:
        for lo in range(0, len(a), 2**22):  # in pieces: the same hash, no copy of 100M rows
            h.update(np.ascontiguousarray(a[lo : lo + 2**22]).view(np.uint8).data)
    return h.hexdigest()[:16]


class RunWriter:
    """Writes to one open run: metrics, params, tags, datasets, artifacts and models."""

    def __init__(
        self,
        mlflow,
        run_id: str,
        experiment_id: str | None = None,
        artifact_uri: str | None = None,
    ) -> None:
        self._mlflow = mlflow
        self._client = mlflow.tracking.MlflowClient()
        self.run_id = run_id
        self.experiment_id = experiment_id  # None: read from the run when a model needs it
        self.artifact_uri = artifact_uri  # None: MLflow's client reads it from the run

    def metrics(self, values: dict[str, float]) -> None:
        """Final numbers (non-finite ones are left out: MLflow cannot show them)."""
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in values.items() if np.isfinite(v)]
        self.batch(batch)

    def series(self, key: str, points: list[tuple[int, float, int]]) -> None:
        """A time series: (step, value, timestamp in ms) points."""
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.entities import Metric

        self.batch([Metric(key, float(v), stamp, step) for step, v, stamp in points])

    def batch(self, metrics: list) -> None:
        for lo in range(0, len(metrics), BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[lo : lo + BATCH])

    def params(self, values: dict[str, object]) -> None:
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.entities import Param

        self._client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in values.items()])

    def tags(self, values: dict[str, object]) -> None:
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in values.items()])

    def dataset(
        self, x: np.ndarray, y: np.ndarray, source: str, name: str, key: str, context: str
    ) -> None:
        """Rows as an MLflow dataset input with a content digest and a context."""
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.data.numpy_dataset import from_numpy

        with warnings.catch_warnings():  # "file" and "" both map to the local source class
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            ds = from_numpy(features=x, targets=y, source=source, name=name, digest=key)
        self._mlflow.log_input(ds, context=context)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), folder)

    def artifacts(self, folder: Path, path: str | None = None) -> None:
        if self.artifact_uri is None:
            self._client.log_artifacts(self.run_id, str(folder), path)
            return
        # the run's own artifact store, from the URI its creation returned: MLflow's client would
        # read the run again first (a get_run, about 3.5 ms of a sweep member's record)
        # lazy: mlflow takes 2 s to import; only a run read or written pays
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.artifact_uri, tracking_uri=self._client.tracking_uri)
        repo.log_artifacts(str(folder), path)

    def figures(self, figures: dict[str, Callable[[Path], None]]) -> None:
        """Each figure drawn into a file of its name and logged at the run's top level."""
        if not figures:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, draw in figures.items():
                draw(Path(tmp) / name)
            self.artifacts(Path(tmp))

    def model(
        self,
        model,
        data: dict,
        example: tuple[np.ndarray, np.ndarray],
        files=(),
        pyfunc: bool = True,
    ) -> None:
        """The model folder (weights, config, the data it saw, the pyfunc input example and what
        each of `files` writes into it) as the run's `model/` artifact; with `pyfunc`, the same
        folder as an MLflow pyfunc model linked to the run (see `log_pyfunc`). Without it the
        run stays cheap and `registry.materialise` makes the pyfunc model later, from the
        folder alone."""
        # lazy: torch takes 2 s to import; only the paths that train or load a network pay
        from pipeline.models.families import save

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_ARTIFACT
            save(model, folder)
            (folder / "data.json").write_text(json.dumps(data, indent=1))
            x, days = example
            np.savez(folder / EXAMPLE_FILE, x=np.asarray(x), days=np.asarray(days))
            for write in files:
                write(folder)
            self.artifacts(folder, MODEL_ARTIFACT)
            if pyfunc:
                model_id = log_pyfunc(
                    self._client, self.run_id, folder, model.cfg, example, self.experiment_id
                )
        if pyfunc:
            self.tags({Tag.MODEL_ID: model_id})


@contextmanager
def start_run(
    ws: Paths,
    name: str,
    stage: Stage,
    tags: dict[str, str] | None = None,
    parent: str | None = None,
) -> Iterator[RunWriter]:
    """An MLflow run of the given stage (nested under `parent` if given); FINISHED when the
    block ends, FAILED when it raises."""
    mlflow = connect(ws)
    with mlflow.start_run(
        experiment_id=_experiment_id(ws, mlflow, stage.experiment),
        run_name=name,
        parent_run_id=parent,
        nested=parent is not None,
        tags={Tag.STAGE: str(stage), **(tags or {})},
    ) as run:
        yield RunWriter(mlflow, run.info.run_id, run.info.experiment_id, run.info.artifact_uri)


def create_run(ws: Paths, name: str, stage: Stage, tags: dict[str, str]) -> RunWriter:
    """A run that stays open across calls (a sweep's parent, the monitor run)."""
    s = session(ws)
    experiment = s.daily if stage.experiment == DAILY_EXPERIMENT else s.experiment
    run = s.client.create_run(experiment, tags={Tag.STAGE: str(stage), **tags}, run_name=name)
    return RunWriter(s.mlflow, run.info.run_id, run.info.experiment_id, run.info.artifact_uri)


def writer(ws: Paths, run_id: str) -> RunWriter:
    """Write to an existing run (annotations of a training run, a resumed sweep)."""
    return RunWriter(connect(ws), run_id)


def kill_run(ws: Paths, run_id: str, reason: str) -> None:
    """End a run whose writer died: KILLED, with the reason as a `killed_reason` tag."""
    writer(ws, run_id).tags({"killed_reason": reason})
    set_status(ws, run_id, "KILLED")


def set_status(ws: Paths, run_id: str, status: str) -> None:
    """RUNNING when a sweep resumes; FINISHED, KILLED or FAILED when it ends."""
    client = session(ws).client
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status)


def log_training(
    ws: Paths,
    windows: LagWindows,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    model,
    device: str,
    outcome: Outcome,
    data: dict,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    stage: Stage = Stage.TRAIN,
    pyfunc: bool = False,
) -> str:
    """One MLflow run per training, written as `outcome` (pipeline.models.outcome) says: params,
    final metrics and curves in one log_batch (more only past 1,000 points), the dataset inputs
    in one call, its figures, and the model folder with the outcome's files; an MLflow pyfunc
    model only with `pyfunc` (a refit), else when someone needs one (`materialise`)."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.entities import Metric, Param

    s = session(ws)
    all_tags = {Tag.STAGE: str(stage), "device": device}
    if parent_run_id is not None:
        all_tags[Tag.PARENT] = parent_run_id
    created = s.client.create_run(
        s.experiment, tags=all_tags | (tags or {}), run_name=run_name or None
    )
    info = created.info
    run = RunWriter(s.mlflow, info.run_id, info.experiment_id, info.artifact_uri)
    now = int(time.time() * 1000)
    points = [Metric(k, float(v), now, 0) for k, v in outcome.metrics.items() if np.isfinite(v)]
    points += [Metric(k, v, now, e) for k, e, v in outcome.curves]
    params = [Param(k, v) for k, v in flat_params(mcfg, tcfg, data).items()]
    s.client.log_batch(run.run_id, metrics=points[:BATCH], params=params, tags=[])
    run.batch(points[BATCH:])
    _log_datasets(run, windows, data)
    run.figures(outcome.figures)
    run.model(model, data, example_rows(windows), outcome.model_files, pyfunc)
    s.client.set_terminated(run.run_id, "FINISHED")
    return run.run_id


def example_rows(windows: LagWindows) -> tuple[np.ndarray, np.ndarray]:
    """The pyfunc model's input example: the last two training windows and their days."""
    rows = windows.rows("train")[-2:]
    return windows.x(rows), windows.day[rows]


def log_ensemble(
    ws: Paths,
    windows: LagWindows,
    model,
    members: list[str],
    scores: dict[str, float],
    data: dict,
    run_name: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    stage: Stage = Stage.TRAIN,
    model_files: list | None = None,
) -> str:
    """One MLflow run for an ensemble: its member runs, MAE, datasets and the model (with
    `model_files`, such as its validation intervals)."""
    with start_run(ws, run_name, stage, tags, parent_run_id) as run:
        params = {"model.model": "ensemble", "model.lags": model.cfg.lags}
        params |= {"ensemble.size": len(members), "ensemble.members": ",".join(members)}
        if getattr(model, "weights", None) is not None:  # a greedy ensemble's weighted mean
            params["ensemble.weights"] = ",".join(repr(w) for w in model.weights)
        if getattr(model, "first", None) is not None:  # a stepwise model's day-1 weights
            params["ensemble.first"] = ",".join(repr(w) for w in model.first)
        params |= {f"data.{k}": v for k, v in data.items()}
        run.params(params)
        run.metrics(scores)
        _log_datasets(run, windows, data)
        run.model(model, data, example_rows(windows), model_files or [])
        return run.run_id


def log_failure(ws: Paths, parent: str, name: str, mcfg: ModelConfig, tags: dict[str, str]) -> None:
    """A configuration that cannot train (diverged, too few rows) is a FAILED run with why."""
    mlflow = connect(ws)
    experiment = _experiment_id(ws, mlflow)
    with mlflow.start_run(
        experiment_id=experiment, run_name=name, parent_run_id=parent, nested=True, tags=tags
    ) as run:
        mlflow.log_params({f"model.{k}": v for k, v in asdict(mcfg).items()})
    set_status(ws, run.info.run_id, "FAILED")


class _Taken:
    """values[index], gathered piece by piece when sliced (for `digest`)."""

    def __init__(self, values: np.ndarray, index: np.ndarray) -> None:
        self.values, self.index = values, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, piece: slice) -> np.ndarray:
        return self.values[self.index[piece]]


def _log_datasets(run: RunWriter, windows: LagWindows, data: dict) -> None:
    """Training and validation rows as MLflow dataset inputs, with content digests (one call)."""
    # lazy: mlflow takes 2 s to import; only a run read or written pays
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for split in ("train", "val"):
        target = windows.target[windows.split == SPLIT_NAMES.index(split)]
        if not len(target):  # a refit on all history has no validation rows
            continue
        key = digest(target, _Taken(windows.values, target))
        context = "training" if split == "train" else "validation"
        with warnings.catch_warnings():  # "file" and "" both map to the local source class
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            ds = from_numpy(  # MLflow reads only the shape and dtype: a zero-copy stand-in
                features=np.broadcast_to(windows.values[:1], (len(target), windows.n)),
                targets=np.broadcast_to(windows.values[:1], (len(target),)),
                source=data["source"],
                name=f"{split}-lags{windows.n}",
                digest=key,
            )
        entity = ds._to_mlflow_entity()
        tag = InputTag("mlflow.data.context", context)
        inputs.append(DatasetInput(entity, tags=[tag]))
    run._client.log_inputs(run.run_id, datasets=inputs)
