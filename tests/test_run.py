"""`viewcast run` (the main job) and `viewcast ui` (the MLflow UI on loopback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.config import Workspace

from .conftest import synthetic_views, write_totals


def test_run_is_the_whole_job_and_reruns_safely(home: Path, tiny_grid: Path, cli):
    files = [
        write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        for seed, name in ((0, "alpha"), (1, "beta"))
    ]
    result = cli("run", *files, "--grid", tiny_grid, "--max-minutes", "5")
    assert result.exit_code == 0, result.output
    out = result.output
    for stage in ("1. ingest", "2. features", "3. sweep", "4. select", "5. sealed test"):
        assert stage in out
    assert "7 of 7 configurations trained" in out
    for row in ("(champion)", "naive (baseline)", "seasonal-naive (baseline)"):
        assert row in out
    final = json.loads((home / "reports" / "final.json").read_text())
    assert final["series"] == 2 and final["champion"]["run_id"] in out

    again = cli("run", *files, "--grid", tiny_grid)
    assert again.exit_code == 0, again.output
    assert "store unchanged" in again.output
    assert "0 of 7 configurations trained" in again.output
    assert "the test was finalized on" in again.output
    assert json.loads((home / "reports" / "final.json").read_text()) == final


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_ui_serves_the_sweep_and_the_champion_alias(swept: Path):
    port = free_port()
    env = os.environ | {"VIEWCAST_HOME": str(swept)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, experiment = time.monotonic() + 120, None
        while experiment is None:
            try:
                experiment = get_json(f"{base}/experiments/get-by-name?experiment_name=viewcast")
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the UI did not start: {proc.stdout.read().decode()[-2000:]}")
                time.sleep(0.5)
        experiment_id = experiment["experiment"]["experiment_id"]
        request = urllib.request.Request(
            f"{base}/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())["runs"]
        stored = tracking.all_runs(Workspace(swept))
        assert {r["info"]["run_id"] for r in runs} == {r.run_id for r in stored}
        stages = [t["value"] for r in runs for t in r["data"]["tags"] if t["key"] == "stage"]
        assert (
            stages.count("sweep") == 1 and stages.count("train") == 8
        )  # 7 configurations + select's ensemble
        query = urllib.parse.urlencode({"name": tracking.REGISTERED_MODEL, "alias": "champion"})
        alias = get_json(f"{base}/registered-models/alias?{query}")
        assert alias["model_version"]["run_id"] == tracking.champion_run(Workspace(swept))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
