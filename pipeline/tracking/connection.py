"""The workspace's MLflow store: connect (SQLite in mlruns/ or a team server), sessions, the UI."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data.atomic import fsync
from pipeline.data.errors import ViewcastError, first_line
from pipeline.data.workspace import Paths
from pipeline.tracking.records import (
    DAILY_EXPERIMENT,
    EXPERIMENT,
    EXPERIMENT_KIND,
    REGISTERED_MODEL,
    _record,
)

if TYPE_CHECKING:
    pass


# --- the store --------------------------------------------------------------------------------


_EXPERIMENTS: dict[tuple[str, int, str], str] = {}  # (store, inode, name) -> experiment id


def connect(ws: Paths):
    """Point MLflow at the workspace's SQLite store (explicitly: never a global default). The
    experiment is looked up (or created) once per process and store file."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # lazy: mlflow takes 2 s to import; only a run read or written pays
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
        first = first_line(err)
        raise ViewcastError(
            f"{db}: not a readable MLflow database ({first}); run `viewcast check`"
        ) from None
    return mlflow


def _connect_server(ws: Paths, mlflow):
    """A team's tracking server ($MLFLOW_TRACKING_URI): runs, registry and artifacts there."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server: fail soon
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # our output is ours
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    try:
        _experiment_id(ws, mlflow)
    except Exception as err:  # requests and MLflow raise many types for a server that is away
        first = first_line(err)
        raise ViewcastError(
            f"{ws.tracking_uri}: the MLflow server does not answer ({first})"
        ) from None
    return mlflow


_EMPTY_STORES: dict[str, bytes] = {}  # MLflow version -> a new store's file after its migrations


def _create_store(mlflow, db: Path) -> None:
    """A new store is built in a temporary file and renamed into place, so a kill never leaves a
    half-made database. MLflow's schema migrations (1-2 s) run once per process: an empty store
    is the same file for one MLflow version, so later stores start from a copy of the first."""
    # a name of its own each time: MLflow keeps one engine per store URI for the whole process
    tmp = db.with_name(f".mlflow-{os.getpid()}-{uuid.uuid4().hex[:8]}.db")
    try:
        empty = _EMPTY_STORES.get(mlflow.__version__)
        if empty is None:
            mlflow.set_tracking_uri(f"sqlite:///{tmp}")
            mlflow.tracking.MlflowClient().search_experiments(max_results=1)  # the migrations
            _EMPTY_STORES[mlflow.__version__] = tmp.read_bytes()
        else:
            tmp.write_bytes(empty)
        fsync(tmp)
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _experiment_id(ws: Paths, mlflow, name: str = EXPERIMENT) -> str:
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


def session(ws: Paths) -> Session:
    """The workspace's store, ready for queries and writes."""
    mlflow = connect(ws)
    ids = _experiment_id(ws, mlflow), _experiment_id(ws, mlflow, DAILY_EXPERIMENT)
    return Session(mlflow, mlflow.tracking.MlflowClient(), *ids)


def ui_urls(ws: Paths, port: int) -> dict[str, str]:
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


def port_taken(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port already (MLflow's server would log the bind
    error and exit 0)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def serve_ui(ws: Paths, port: int, ready: Callable[[], None] = lambda: None) -> int:
    """Run the MLflow UI on 127.0.0.1:port against the workspace's store until it exits; its
    exit code. The server (mlflow, uvicorn) runs in a process group of its own:
    SIGTERM or SIGINT (Ctrl-C) to this process is passed on to the whole group, which is waited
    for (killed after 10 s), so the port is free when this returns."""
    connect(ws)  # the store and experiments exist before the server reads them
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ws.tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # MLflow 3's job runner (a huey consumer of 10 workers, for GenAI judges and prompt
    # optimisation) is nothing this UI shows: off unless the environment asks for it (the UI
    # answers in 5.1 s instead of 6.6, 2 processes instead of 10)
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | dict(os.environ)
    server = subprocess.Popen(command, start_new_session=True, env=env)

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
