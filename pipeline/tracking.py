"""The one door to MLflow: the workspace's store, run records, named queries and run writers.

No other module of the package imports mlflow. Stages ask questions here ("the latest sweep",
"today's submissions", "the run behind the champion alias") and get plain `RunRecord`s back; they
write through `start_run` (a `RunWriter`) or the writers below.

Names are the same for every model family, so the UI's compare view lines runs up:
params `model.*`, `train.*`, `data.*`; per-epoch metrics `train_loss`, `val_mae_epoch`, `grad_norm`,
`lr`; final metrics `train_mae`, `val_mae` (the returned, best-epoch model: what selection reads),
`best_epoch`, `epochs_run`, `train_seconds`.
A training run never logs a test metric: test rows are not even opened on this path. Test scores
live only in submission and final runs (see pipeline.holdout).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import reports
from pipeline.config import ModelConfig, Workspace
from pipeline.errors import ViewcastError

if TYPE_CHECKING:
    from pipeline.features import LagWindows
    from pipeline.models import ViewsModel
    from pipeline.train import TrainConfig, TrainResult

EXPERIMENT = "viewcast"  # model training: sweeps, trainings, submissions, the lecture report
DAILY_EXPERIMENT = "viewcast-daily"  # daily operations (forecast, monitor: one run a day each)
# what MLflow 3's UI reads to open an experiment on its runs table, not the GenAI overview
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
MODEL_ARTIFACT = "model"
REGISTERED_MODEL = "viewcast"
CURVE_NAMES = {"val_mae": "val_mae_epoch"}  # the final `val_mae` is the restored model's
BATCH = 1000  # MLflow's limit of metrics per log_batch


class Stage(StrEnum):
    """What a run is (its `stage` tag): how every query finds runs."""

    SWEEP = "sweep"  # the parent run of a grid
    TRAIN = "train"  # one trained configuration (a sweep child, `viewcast train`, an ensemble)
    SUBMISSION = "submission"  # a public test score
    FINAL = "final"  # the one reveal of the private score
    REFIT = "refit"  # the champion's configuration on all history
    FORECAST = "forecast"  # one day's forecast file
    MONITOR = "monitor"  # live MAE, one point a day
    EXPERIMENT = "experiment"  # the lecture report
    STUDY = "study"  # a training inside the lecture report's studies

    @property
    def experiment(self) -> str:
        """The MLflow experiment its runs go to."""
        return DAILY_EXPERIMENT if self in (Stage.FORECAST, Stage.MONITOR) else EXPERIMENT


class SweepPurpose(StrEnum):
    """Why a sweep ran: `select` takes the latest selection sweep by default."""

    SELECTION = "selection"
    EXPERIMENT = "experiment"  # the lecture report's grid


class Tag:
    """Tag keys the stages write and the queries read."""

    STAGE = "stage"
    SWEEP_KEY = "sweep_key"  # content digest of a sweep: the same sweep resumes
    SWEEP_PURPOSE = "sweep_purpose"  # a SweepPurpose
    CONFIG_KEY = "config_key"  # content digest of a configuration
    BASELINE = "baseline"  # "True" for the baselines every sweep trains
    BASELINE_ROLE = "baseline_role"  # naive | seasonal-naive | linear-lstsq
    ENSEMBLE_KEY = "ensemble_key"
    SOURCE_RUN = "source_run_id"
    MODEL_ID = "model_id"  # the run's MLflow logged model (pyfunc), what the registry points at
    ERROR = "error"
    PARENT = "mlflow.parentRunId"


@dataclass(frozen=True)
class RunRecord:
    """What the stages read of an MLflow run (no MLflow types leave this module)."""

    run_id: str
    name: str
    status: str
    start_time: int  # milliseconds since the epoch
    artifact_uri: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    inputs: tuple[tuple[str, str], ...] = ()  # (context, digest) of each dataset input

    @property
    def stage(self) -> str | None:
        return self.tags.get(Tag.STAGE)

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(Tag.PARENT)

    @property
    def baseline(self) -> bool:
        return self.tags.get(Tag.BASELINE) == "True"


def _record(run) -> RunRecord:
    inputs = tuple(
        (next((t.value for t in i.tags if t.key.endswith("context")), ""), i.dataset.digest)
        for i in (run.inputs.dataset_inputs if run.inputs else [])
    )
    return RunRecord(
        run.info.run_id,
        run.info.run_name or "",
        run.info.status,
        int(run.info.start_time or 0),
        run.info.artifact_uri,
        dict(run.data.tags),
        dict(run.data.params),
        dict(run.data.metrics),
        inputs,
    )


# --- the store --------------------------------------------------------------------------------


_EXPERIMENTS: dict[tuple[str, int, str], str] = {}  # (store, inode, name) -> experiment id


def connect(ws: Workspace):
    """Point MLflow at the workspace's SQLite store (explicitly: never a global default). The
    experiment is looked up (or created) once per process and store file."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    for name in ("mlflow", "alembic"):  # schema migrations and store chatter are not for users
        logging.getLogger(name).setLevel(logging.WARNING)
    if ws.remote_tracking:
        return _connect_server(ws, mlflow)

    ws.mlruns.mkdir(parents=True, exist_ok=True)
    db = ws.mlruns / "mlflow.db"
    if db.exists() and db.stat().st_size == 0:  # MLflow would silently start an empty store
        raise ViewcastError(
            f"{db}: empty file (0 bytes), not an MLflow database; run `viewcast check`"
        )
    if not db.exists():
        _create_store(mlflow, db)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    try:
        _experiment_id(ws, mlflow)
    except Exception as err:  # SQLAlchemy and MLflow raise many types for a damaged database
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ViewcastError(
            f"{db}: not a readable MLflow database ({first}); run `viewcast check`"
        ) from None
    return mlflow


def _connect_server(ws: Workspace, mlflow):
    """A team's tracking server ($MLFLOW_TRACKING_URI): runs, registry and artifacts there."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server: fail soon
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # our output is ours
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    try:
        _experiment_id(ws, mlflow)
    except Exception as err:  # requests and MLflow raise many types for a server that is away
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ViewcastError(
            f"{ws.tracking_uri}: the MLflow server does not answer ({first})"
        ) from None
    return mlflow


def _create_store(mlflow, db: Path) -> None:
    """A new store is built (MLflow's schema migrations, seconds long) in a temporary file and
    renamed into place, so a kill during the migrations never leaves a half-made database."""
    import uuid

    # a name of its own each time: MLflow keeps one engine per store URI for the whole process
    tmp = db.with_name(f".mlflow-{os.getpid()}-{uuid.uuid4().hex[:8]}.db")
    try:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}")
        mlflow.tracking.MlflowClient().search_experiments(max_results=1)  # runs the migrations
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _experiment_id(ws: Workspace, mlflow, name: str = EXPERIMENT) -> str:
    db = ws.mlruns / "mlflow.db"
    local = not ws.remote_tracking
    key = (ws.tracking_uri, db.stat().st_ino if local and db.exists() else -1, name)
    if key not in _EXPERIMENTS:
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            kind = dict([EXPERIMENT_KIND])
            location = (ws.mlruns / "artifacts").as_uri() if local else None  # or the server's
            experiment = mlflow.create_experiment(name, artifact_location=location, tags=kind)
        else:
            experiment = found.experiment_id
            if found.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:  # an older viewcast
                mlflow.tracking.MlflowClient().set_experiment_tag(experiment, *EXPERIMENT_KIND)
        if local:
            key = (ws.tracking_uri, db.stat().st_ino, name)  # the file exists once MLflow opened it
        _EXPERIMENTS[key] = experiment
    return _EXPERIMENTS[key]


@dataclass(frozen=True)
class Session:
    """The mlflow module, a client and the experiment ids of one workspace (training, daily)."""

    mlflow: Any
    client: Any
    experiment: str
    daily: str

    def search(self, query: str, order_by: list[str] | None = None, most: int = 50_000):
        runs = self.client.search_runs(
            [self.experiment, self.daily], query, order_by=order_by, max_results=most
        )
        return [_record(r) for r in runs]


def session(ws: Workspace) -> Session:
    """The workspace's store, ready for queries and writes."""
    mlflow = connect(ws)
    ids = _experiment_id(ws, mlflow), _experiment_id(ws, mlflow, DAILY_EXPERIMENT)
    return Session(mlflow, mlflow.tracking.MlflowClient(), *ids)


def ui_urls(ws: Workspace, port: int) -> dict[str, str]:
    """Direct links into the MLflow UI: the runs tables of both experiments and the model.
    MLflow 3.x's UI keeps a global GenAI / model-training switch (GenAI by default, stored in the
    browser) that wins over the experiment's kind tag; the URL parameter sets it per link."""
    s = session(ws)
    base, kind = f"http://127.0.0.1:{port}/#", "?workflowType=machine_learning"
    return {
        "runs": f"{base}/experiments/{s.experiment}/runs{kind}",
        "daily": f"{base}/experiments/{s.daily}/runs{kind}",
        "model": f"{base}/models/{REGISTERED_MODEL}{kind}",
    }


def serve_ui(ws: Workspace, port: int, ready: Callable[[], None] = lambda: None) -> int:
    """Run the MLflow UI on 127.0.0.1:port against the workspace's store until it exits; its
    exit code. The server (mlflow, uvicorn, huey workers) runs in a process group of its own:
    SIGTERM or SIGINT (Ctrl-C) to this process is passed on to the whole group, which is waited
    for (killed after 10 s), so the port is free when this returns."""
    import signal
    import subprocess
    import sys

    connect(ws)  # the store and experiments exist before the server reads them
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ws.tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, start_new_session=True)

    def forward(signum, frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ready()
        code = server.wait()
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        forward(signal.SIGKILL, None)  # what is left of the group (huey or uvicorn workers)
        server.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stopped = code in (-signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGINT)
    return 0 if stopped else code


# --- named queries ----------------------------------------------------------------------------


def get_run(ws: Workspace, run_id: str) -> RunRecord:
    """One run by id; an unknown id is a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        return _record(session(ws).client.get_run(run_id))
    except MlflowException:
        raise ViewcastError(f"no run {run_id!r} in this workspace") from None


def runs(ws: Workspace, stage: Stage, query: str = "", most: int = 50_000) -> list[RunRecord]:
    """Every run of one stage (newest first), optionally narrowed by an MLflow filter."""
    where = f"tags.{Tag.STAGE} = '{stage}'" + (f" and {query}" if query else "")
    return session(ws).search(where, ["attributes.start_time DESC"], most)


def all_runs(ws: Workspace) -> list[RunRecord]:
    """Every run of the workspace's experiment."""
    return session(ws).search("")


def running_runs(ws: Workspace) -> list[RunRecord]:
    """Runs whose status is still RUNNING (a writer is at work, or died without ending them)."""
    return session(ws).search("attributes.status = 'RUNNING'")


def find_sweep(ws: Workspace, key: str) -> RunRecord | None:
    """The sweep with this content key, if one was started."""
    found = runs(ws, Stage.SWEEP, f"tags.{Tag.SWEEP_KEY} = '{key}'", most=1)
    return found[0] if found else None


def latest_sweep(ws: Workspace) -> str:
    """The newest selection sweep (the lecture experiment's sweep is not one)."""
    for run in runs(ws, Stage.SWEEP):
        if run.tags.get(Tag.SWEEP_PURPOSE, SweepPurpose.SELECTION) == SweepPurpose.SELECTION:
            return run.run_id
    raise ViewcastError("no sweep in this workspace yet: run `viewcast sweep` first")


def sweep_children(ws: Workspace, parent: str, finished_only: bool = True) -> list[RunRecord]:
    """The training runs of a sweep (finished ones, unless told otherwise)."""
    query = f"tags.{Tag.PARENT} = '{parent}' and tags.{Tag.STAGE} = '{Stage.TRAIN}'"
    if finished_only:
        query += " and attributes.status = 'FINISHED'"
    return session(ws).search(query)


def sweep_child(ws: Workspace, parent: str, config_key: str) -> RunRecord | None:
    """The finished run of one configuration (by its content key) in a sweep."""
    found = [r for r in sweep_children(ws, parent) if r.tags.get(Tag.CONFIG_KEY) == config_key]
    return found[0] if found else None


def children(ws: Workspace, parent: str) -> list[RunRecord]:
    """Every run nested under a parent run, whatever its stage."""
    return session(ws).search(f"tags.{Tag.PARENT} = '{parent}'")


def submissions_today(ws: Workspace, now: dt.datetime) -> int:
    """Submissions started since midnight UTC of `now`."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = int(midnight.timestamp() * 1000)
    return len(runs(ws, Stage.SUBMISSION, f"attributes.start_time >= {since}"))


def epoch_history(ws: Workspace, run_id: str) -> dict[str, list[float]]:
    """Per-epoch training loss, gradient norm and validation MAE a run logged."""
    client = session(ws).client
    out = {}
    for key in ("train_loss", "grad_norm", "val_mae_epoch"):
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        out[key] = [m.value for m in points]
    return out


def metric_steps(ws: Workspace, run_id: str, key: str) -> dict[int, float]:
    """step -> value of one metric's history."""
    return {m.step: m.value for m in session(ws).client.get_metric_history(run_id, key)}


def artifacts(ws: Workspace, run_id: str, path: str | None = None) -> set[str]:
    """Paths of a run's artifacts (at the top level, or under `path`)."""
    return {a.path for a in session(ws).client.list_artifacts(run_id, path)}


def run_config(run: RunRecord) -> tuple[ModelConfig | None, TrainConfig]:
    """The ModelConfig and TrainConfig a training run logged as model.* and train.* params
    (no ModelConfig for an ensemble run)."""
    from pipeline.train import TrainConfig

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

    def __init__(self, mlflow, run_id: str, experiment_id: str | None = None) -> None:
        self._mlflow = mlflow
        self._client = mlflow.tracking.MlflowClient()
        self.run_id = run_id
        self.experiment_id = experiment_id  # None: read from the run when a model needs it

    def metrics(self, values: dict[str, float]) -> None:
        """Final numbers (non-finite ones are left out: MLflow cannot show them)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in values.items() if np.isfinite(v)]
        self.batch(batch)

    def series(self, key: str, points: list[tuple[int, float, int]]) -> None:
        """A time series: (step, value, timestamp in ms) points."""
        from mlflow.entities import Metric

        self.batch([Metric(key, float(v), stamp, step) for step, v, stamp in points])

    def batch(self, metrics: list) -> None:
        for lo in range(0, len(metrics), BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[lo : lo + BATCH])

    def params(self, values: dict[str, object]) -> None:
        from mlflow.entities import Param

        self._client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in values.items()])

    def tags(self, values: dict[str, object]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in values.items()])

    def dataset(
        self, x: np.ndarray, y: np.ndarray, source: str, name: str, key: str, context: str
    ) -> None:
        """Rows as an MLflow dataset input with a content digest and a context."""
        from mlflow.data.numpy_dataset import from_numpy

        with warnings.catch_warnings():  # "file" and "" both map to the local source class
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            ds = from_numpy(features=x, targets=y, source=source, name=name, digest=key)
        self._mlflow.log_input(ds, context=context)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), folder)

    def artifacts(self, folder: Path, path: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(folder), path)

    def model(self, model, data: dict, example: tuple[np.ndarray, np.ndarray], extra=None) -> None:
        """The model folder (weights, config, the data it saw, and what `extra(folder)` adds)
        as the run's `model/` artifact, and the same folder as an MLflow pyfunc model linked to
        the run (see `log_pyfunc`)."""
        from pipeline.models import save

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_ARTIFACT
            save(model, folder)
            (folder / "data.json").write_text(json.dumps(data, indent=1))
            if extra is not None:
                extra(folder)
            self.artifacts(folder, MODEL_ARTIFACT)
            model_id = log_pyfunc(
                self._client, self.run_id, folder, model.cfg, example, self.experiment_id
            )
        self.tags({Tag.MODEL_ID: model_id})


def _signature(cfg):
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    from pipeline.serving import DATE_COLUMN, lag_columns

    columns = [ColSpec("double", c) for c in lag_columns(cfg.lags)]
    if cfg.calendar != "none":  # the forecast day, for the weekday
        columns.append(ColSpec("string", DATE_COLUMN))
    return ModelSignature(Schema(columns), Schema([ColSpec("double", "views")]))


def _serving_code(root: Path) -> Path:
    """The modules a pyfunc model runs (serving, infer, config, errors) as a `pipeline` package
    under `root`: the logged model loads where viewcast is not installed."""
    import shutil

    package = root / "pipeline"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""viewcast\'s inference, copied for MLflow."""\n')
    for name in ("serving.py", "infer.py", "config.py", "errors.py"):
        shutil.copy2(Path(__file__).with_name(name), package / name)
    return package


@contextmanager
def _no_requirement_check() -> Iterator[None]:
    """MLflow compares a model's pip requirements with the installed packages on every save
    (about 35 ms of package metadata, 40% of a pyfunc model's cost in a sweep). viewcast pins
    the versions this very process imported (`mlflow.__version__`, ...), so the check cannot
    find a mismatch (and its warning is below the level we let MLflow log at): skipped."""
    from mlflow.utils import environment

    name = "warn_dependency_requirement_mismatches"
    check = getattr(environment, name, None)
    if check is None:  # an MLflow without the check
        yield
        return
    setattr(environment, name, lambda _requirements: None)
    try:
        yield
    finally:
        setattr(environment, name, check)


def log_pyfunc(
    client, run_id: str, folder: Path, cfg, example: tuple, experiment: str | None = None
) -> str:
    """A saved model folder as an MLflow 3 logged model (pyfunc flavour, NumPy inference) of the
    run: signature lag_1..lag_N (and the date, for a calendar model) -> views, an input example
    (`example`: windows and their days), pinned pip requirements. Built with
    the client's logged-model calls (about 0.05 s, against 0.2-0.4 s for `log_model`, which also
    reloads the model to validate the example: the tests load and serve it instead); the id.
    `experiment`: the run's experiment id (read from the run when not given)."""
    import mlflow
    import pandas as pd
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from pipeline import serving

    experiment = experiment or client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment, MODEL_ARTIFACT, source_run_id=run_id)
    x, days = example
    lags = cfg.lags
    frame = pd.DataFrame(x[:, :lags].astype(np.float64), columns=serving.lag_columns(lags))
    if cfg.calendar != "none":
        frame[serving.DATE_COLUMN] = np.asarray(days).astype("datetime64[D]").astype(str)
    requirements = [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"]
    requirements.append(f"pandas=={pd.__version__}")
    if cfg.trees:  # the hgb family's pickled trees
        import sklearn

        requirements.append(f"scikit-learn=={sklearn.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pyfunc"
        meta = Model(artifact_path=MODEL_ARTIFACT, run_id=run_id, model_id=logged.model_id)
        mlflow_logger = logging.getLogger("mlflow")
        level = mlflow_logger.level
        mlflow_logger.setLevel(logging.ERROR)  # "python_model is pickled": by reference, known
        try:
            with _no_requirement_check():
                mlflow.pyfunc.save_model(
                    path,
                    python_model=serving.ViewcastModel(),
                    artifacts={serving.MODEL_FOLDER: str(folder)},
                    code_paths=[str(_serving_code(Path(tmp) / "code"))],
                    signature=_signature(cfg),
                    input_example=frame,
                    pip_requirements=requirements,
                    mlflow_model=meta,
                )
        finally:
            mlflow_logger.setLevel(level)
        client.log_model_artifacts(logged.model_id, str(path))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id


@contextmanager
def start_run(
    ws: Workspace,
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
        yield RunWriter(mlflow, run.info.run_id, run.info.experiment_id)


def create_run(ws: Workspace, name: str, stage: Stage, tags: dict[str, str]) -> RunWriter:
    """A run that stays open across calls (a sweep's parent, the monitor run)."""
    s = session(ws)
    experiment = s.daily if stage.experiment == DAILY_EXPERIMENT else s.experiment
    run = s.client.create_run(experiment, tags={Tag.STAGE: str(stage), **tags}, run_name=name)
    return RunWriter(s.mlflow, run.info.run_id, run.info.experiment_id)


def writer(ws: Workspace, run_id: str) -> RunWriter:
    """Write to an existing run (annotations of a training run, a resumed sweep)."""
    return RunWriter(connect(ws), run_id)


def kill_run(ws: Workspace, run_id: str, reason: str) -> None:
    """End a run whose writer died: KILLED, with the reason as a `killed_reason` tag."""
    writer(ws, run_id).tags({"killed_reason": reason})
    set_status(ws, run_id, "KILLED")


def set_status(ws: Workspace, run_id: str, status: str) -> None:
    """RUNNING when a sweep resumes; FINISHED, KILLED or FAILED when it ends."""
    client = session(ws).client
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status)


def log_training(
    ws: Workspace,
    windows: LagWindows,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    result: TrainResult,
    data: dict,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    stage: Stage = Stage.TRAIN,
    curve_png: bool = True,
    keep_intervals: bool = True,
    oof=None,
) -> str:
    """One MLflow run per training: params, curves, final MAE, datasets, the model with its
    validation intervals (unless `keep_intervals` is off: windows of some series only) and its
    out-of-fold validation forecasts (`oof`, an ensembles.Forecasts, kept as oof.npz), and
    (unless `curve_png` is off: a sweep draws only its best, see `plot_learning_curve`) the PNG.
    Written
    in few calls: one batch of params, tags and metrics (more batches for long curves), one of
    dataset inputs, one artifact copy."""
    from mlflow.entities import Metric, Param

    s = session(ws)
    all_tags = {Tag.STAGE: str(stage), "device": result.device}
    if parent_run_id is not None:
        all_tags[Tag.PARENT] = parent_run_id
    created = s.client.create_run(
        s.experiment, tags=all_tags | (tags or {}), run_name=run_name or None
    )
    run = RunWriter(s.mlflow, created.info.run_id, created.info.experiment_id)
    now = int(time.time() * 1000)
    finals = {
        "train_mae": result.train_mae,
        "val_mae": result.val_mae,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.seconds,
    }
    finals |= {f"rows_{k}": v for k, v in result.rows.items()} | (metrics or {})
    val_rows = windows.rows("val")
    pred = result.val_pred
    if pred is None and len(val_rows):
        pred = windows.predict(result.model, val_rows)
    if "val_mae_vs_naive" not in finals:  # the scale-free selection metric (select --metric)
        from pipeline.metrics import validation_vs_naive

        finals["val_mae_vs_naive"] = validation_vs_naive(result.model, windows, pred)
    points = [Metric(k, float(v), now, 0) for k, v in finals.items() if np.isfinite(v)]
    params = [Param(k, v) for k, v in flat_params(mcfg, tcfg, data).items()]
    s.client.log_batch(run.run_id, metrics=points, params=params, tags=[])
    curves = [
        (CURVE_NAMES.get(key, key), epoch, float(value))
        for key, values in result.history.items()
        for epoch, value in enumerate(values, 1)
        if np.isfinite(value)
    ]
    if not bulk_curves(ws, run.run_id, curves, now):
        run.batch([Metric(k, v, now, e) for k, e, v in curves])
    _log_datasets(run, windows, data)
    if result.history and curve_png:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "learning_curve.png"
            reports.learning_curve(result.history, path)
            run.artifact(path)
    kept = kept_intervals(windows, val_rows, pred, data) if keep_intervals else None
    run.model(result.model, data, example_rows(windows), _writers(kept, oof))
    s.client.set_terminated(run.run_id, "FINISHED")
    return run.run_id


def example_rows(windows: LagWindows) -> tuple[np.ndarray, np.ndarray]:
    """The pyfunc model's input example: the last two training windows and their days."""
    rows = windows.rows("train")[-2:]
    return windows.x(rows), windows.day[rows]


def _writers(kept, oof):
    """One `extra(folder)` for RunWriter.model: the kept intervals and the out-of-fold file."""
    from pipeline.ensembles import OOF_FILE

    def write(folder: Path) -> None:
        if kept is not None:
            kept(folder)
        if oof is not None:
            oof.write(folder / OOF_FILE)

    return write


def kept_intervals(windows: LagWindows, rows: np.ndarray, pred: np.ndarray | None, data: dict):
    """What writes the model's validation intervals into its folder (`intervals.npz`, with
    the dev days' key): a forecast with this model as champion then scores nothing (8M
    validation windows at Kaggle scale). None without validation forecasts or dev file."""
    from pipeline import forecast

    source = Path(data.get("source") or "")
    if pred is None or not len(pred) or not source.is_file():
        return None
    found = forecast.intervals_from(windows, rows, pred)
    key = _dev_key(source, *_stamp(source))
    return lambda folder: forecast.write_intervals(folder / forecast.INTERVALS_FILE, found, key)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _dev_key(path: Path, size: int, mtime_ns: int) -> str:
    """The dev file's hash, once per file version in this process (a sweep logs 75 runs)."""
    from pipeline import forecast

    return forecast.dev_key(path)


METRIC_COLUMNS = ["key", "value", "timestamp", "run_uuid", "step", "is_nan"]
LATEST_COLUMNS = ["key", "value", "timestamp", "step", "is_nan", "run_uuid"]


def bulk_curves(
    ws: Workspace, run_id: str, curves: list[tuple[str, int, float]], stamp: int
) -> bool:
    """Write a run's per-epoch curves (key, step, value) straight into the workspace's SQLite
    store in one transaction: the rows MLflow's log_batch writes (metrics, and the latest value of
    each key), at a hundredth of its cost. Only for the workspace's own SQLite file, and only when
    its tables have the columns this code knows; otherwise False, and the caller uses log_batch."""
    import sqlite3

    if not curves or ws.remote_tracking:
        return False
    with sqlite3.connect(ws.mlruns / "mlflow.db", timeout=60) as con:
        known = [
            [r[1] for r in con.execute(f"pragma table_info({table})")]
            for table in ("metrics", "latest_metrics")
        ]
        if known != [METRIC_COLUMNS, LATEST_COLUMNS]:
            return False
        rows = [(k, v, stamp, run_id, e) for k, e, v in curves]
        con.executemany(
            "insert into metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "values (?, ?, ?, ?, ?, 0)",
            rows,
        )
        latest: dict[str, tuple] = {}
        for k, e, v in curves:  # MLflow's rule: the largest (step, timestamp, value) wins
            if k not in latest or (e, v) > (latest[k][1], latest[k][0]):
                latest[k] = (v, e)
        con.executemany(
            "insert into latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "values (?, ?, ?, ?, 0, ?) on conflict (key, run_uuid) do update set "
            "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
            "is_nan = 0 where excluded.step > latest_metrics.step or (excluded.step = "
            "latest_metrics.step and excluded.timestamp > latest_metrics.timestamp)",
            [(k, v, stamp, e, run_id) for k, (v, e) in latest.items()],
        )
    return True


def plot_learning_curve(ws: Workspace, run_id: str) -> Path:
    """Draw a run's learning curve from its logged curves and log it as learning_curve.png;
    the file's path (inside the run's artifacts when they are local)."""
    history = epoch_history(ws, run_id)
    if not history["train_loss"]:
        raise ViewcastError(f"run {run_id} has no learning curve (nothing was trained by descent)")
    curves = {"train_loss": history["train_loss"], "grad_norm": history["grad_norm"]}
    curves["val_mae"] = history["val_mae_epoch"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "learning_curve.png"
        reports.learning_curve(curves, path)
        writer(ws, run_id).artifact(path)
    return Path(get_run(ws, run_id).artifact_uri.removeprefix("file://")) / "learning_curve.png"


def log_ensemble(
    ws: Workspace,
    windows: LagWindows,
    model,
    members: list[str],
    scores: dict[str, float],
    data: dict,
    run_name: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    stage: Stage = Stage.TRAIN,
    val_pred: np.ndarray | None = None,
) -> str:
    """One MLflow run for an ensemble: its member runs, MAE, datasets and the model (with its
    validation intervals when `val_pred`, its validation forecasts, is given)."""
    with start_run(ws, run_name, stage, tags, parent_run_id) as run:
        params = {"model.model": "ensemble", "model.lags": model.cfg.lags}
        params |= {"ensemble.size": len(members), "ensemble.members": ",".join(members)}
        if getattr(model, "weights", None) is not None:  # a greedy ensemble's weighted mean
            params["ensemble.weights"] = ",".join(repr(w) for w in model.weights)
        params |= {f"data.{k}": v for k, v in data.items()}
        run.params(params)
        run.metrics(scores)
        _log_datasets(run, windows, data)
        kept = kept_intervals(windows, windows.rows("val"), val_pred, data)
        run.model(model, data, example_rows(windows), kept)
        return run.run_id


def log_failure(
    ws: Workspace, parent: str, name: str, mcfg: ModelConfig, tags: dict[str, str]
) -> None:
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
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    from pipeline.features import SPLIT_NAMES

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


# --- models and the registry ------------------------------------------------------------------


def model_folder(ws: Workspace, run_id: str) -> Path:
    """The folder of a run's logged model: read in place from the workspace's local artifact
    store, downloaded only from a remote one."""
    from urllib.parse import unquote, urlparse

    mlflow = connect(ws)
    try:
        uri = mlflow.tracking.MlflowClient().get_run(run_id).info.artifact_uri
        parsed = urlparse(uri)
        local = Path(unquote(parsed.path)) / MODEL_ARTIFACT
        if parsed.scheme == "file" and local.is_dir():
            return local
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT)
    except Exception as err:  # MLflow raises several types for an unknown run
        raise ViewcastError(f"no model logged under run {run_id!r}: {err}") from None
    return Path(folder)


def load_model(ws: Workspace, run_id: str) -> ViewsModel:
    """The exact model a training run logged (torch)."""
    from pipeline.models import load

    return load(model_folder(ws, run_id))


def load_predictor(ws: Workspace, run_id: str):
    """A run's model for prediction only: NumPy (no torch import) when it has weights.npz."""
    from pipeline import infer

    folder = model_folder(ws, run_id)
    if infer.has_weights(folder):
        return infer.load(folder)
    return load_model(ws, run_id)  # logged before weights.npz existed


def alias_run(ws: Workspace, alias: str) -> tuple[str, str] | None:
    """(run id, version) behind an alias of the workspace's registered model, or None."""
    from mlflow.exceptions import MlflowException

    try:
        version = session(ws).client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None
    return version.run_id, str(version.version)


def champion_run(ws: Workspace) -> str:
    """The run id behind the `champion` alias."""
    found = alias_run(ws, "champion")
    if found is None:
        raise ViewcastError("no champion yet: run `viewcast select` first")
    return found[0]


def register_alias(ws: Workspace, run_id: str, alias: str, tags: dict[str, float | str]) -> str:
    """Point an alias of the workspace's registered model at a run's model (a new version only
    when the alias moves to another run); returns the version."""
    from mlflow.exceptions import MlflowException

    client = session(ws).client
    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, alias)
        if current.run_id == run_id:
            return str(current.version)
    except MlflowException:  # no registered model or no alias yet
        if not client.search_registered_models(f"name = '{REGISTERED_MODEL}'"):
            client.create_registered_model(
                REGISTERED_MODEL, description="viewcast: tomorrow's views from the last N days"
            )
    run = client.get_run(run_id)
    model_id = run.data.tags.get(Tag.MODEL_ID)
    if model_id:  # the pyfunc model: models:/viewcast@alias loads with mlflow.pyfunc
        version = client.create_model_version(
            REGISTERED_MODEL, f"models:/{model_id}", run_id=run_id, model_id=model_id
        )
    else:  # a run logged before models were pyfunc: its plain folder
        source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        version = client.create_model_version(REGISTERED_MODEL, source, run_id=run_id)
    for k, v in tags.items():
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        client.set_model_version_tag(REGISTERED_MODEL, version.version, k, text)
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version.version)
    return str(version.version)
