"""The MLflow half of viewcast check: runs left running, a corrupt database."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.tracking import connection


def test_runs_left_running_are_ended_with_the_reason(swept: Path, cli):
    ws = Paths(swept)
    s = tracking.session(ws)
    orphan = s.client.create_run(s.experiment, run_name="killed mid-run").info.run_id
    listed = json.loads(cli("check", "--json").stdout)
    assert [f["problem"] for f in listed] == [f"run {orphan} (killed mid-run) left RUNNING"]
    assert cli("check", "--repair").exit_code == 0
    run = tracking.get_run(ws, orphan)
    assert run.status == "KILLED" and run.tags["killed_reason"] == "no live writer (check)"


def test_a_corrupt_database_is_named_not_repaired(swept: Path, cli, monkeypatch):
    db = swept / "mlruns" / "mlflow.db"
    db.write_bytes(db.read_bytes()[:4096] + b"\x00" * 4096)
    monkeypatch.setattr(connection, "_EXPERIMENTS", {})
    result = cli("check", "--repair")
    assert result.exit_code == 2
    assert "mlflow.db" in result.stdout and "integrity" in result.stdout
