"""A team's MLflow: with MLFLOW_TRACKING_URI (or --tracking-uri) naming a tracking server, every
command logs there (runs, registry aliases, artifacts), tested against a real `mlflow server`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths
from tests.conftest import TINY_GRID, free_port, peyton_until_summer_2015, venv_env, wait_for_http

pytestmark = pytest.mark.slow  # a team's MLflow server, started and stopped


@pytest.fixture(autouse=True)
def own_tracking_env(monkeypatch):
    """--tracking-uri sets $MLFLOW_TRACKING_URI for the process: restored after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a free loopback port: SQLite backend, artifacts served by it."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'team.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts")]
    env = venv_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no GenAI job runner
    proc = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", proc)
    yield url, root
    # a throwaway server: killed at once (a SIGTERM waits about 5 s for uvicorn's shutdown)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_every_stage_logs_to_the_team_server(server, home: Path, cli, monkeypatch):
    url, root = server
    rows = peyton_until_summer_2015().tail(400)
    export = home.parent / "peyton.csv"
    rows.to_csv(export, index=False)
    grid = home.parent / "tiny.toml"
    grid.write_text(TINY_GRID)
    for args in (
        ("ingest", export, "--name", "peyton"),
        ("sweep", "--grid", grid),
        ("select",),
        ("finalize",),
        ("refit",),
        ("forecast",),
    ):
        result = cli("--tracking-uri", url, *args)
        assert result.exit_code == 0, (args, result.output)
        assert "View experiment at" not in result.output
    assert not (home / "mlruns").exists(), "nothing is written to the workspace's own store"

    # what the team sees on the server: the runs, the aliases, the artifacts
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    ws = Paths(home)
    assert ws.remote_tracking and ws.tracking_uri == url
    sweep = tracking.latest_sweep(ws)
    assert len(tracking.sweep_children(ws, sweep)) == 8  # 7 configurations + select's ensemble
    (forecast_run,) = tracking.runs(ws, tracking.Stage.FORECAST)
    assert tracking.artifacts(ws, forecast_run.run_id, "forecast")
    assert list((root / "artifacts").rglob("weights.npz")), "artifacts live in the server's store"
    prod_id, _ = tracking.alias_run(ws, "production")
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    model = mlflow.pyfunc.load_model("models:/viewcast@production")
    lags = model.metadata.get_input_schema().input_names()
    views = rows["Views"].to_numpy(np.float64)[::-1][: len(lags)]
    got = model.predict(pd.DataFrame([views], columns=lags))["views"][0]
    want = tracking.load_predictor(ws, prod_id).predict(views[None, :].astype(np.float32))[0]
    assert got == pytest.approx(max(want, 0.0), rel=1e-6)


def test_a_server_that_is_away_is_one_line(home: Path, cli):
    away = f"http://127.0.0.1:{free_port()}"
    result = cli("--tracking-uri", away, "select")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"viewcast: error: {away}: the MLflow server does not answer")
    assert cli("--tracking-uri", "ftp://x", "status").exit_code == 2
