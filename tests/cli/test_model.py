"""`viewcast model log`: a lazy training run becomes an MLflow pyfunc model, once."""

from __future__ import annotations

import json

from pipeline import tracking
from pipeline.data.workspace import Paths


def test_model_log_makes_a_run_an_mlflow_model_once(cli, home, raw):
    assert cli("ingest", raw / "codingtrain-2021" / "Totals.csv", "--name", "ct").exit_code == 0
    trained = cli("train", "--model", "linear", "--lags", "7", "--epochs", "5", "--json")
    assert trained.exit_code == 0, trained.output
    run_id = json.loads(trained.stdout)["run_id"]
    ws = Paths(home)
    assert tracking.Tag.MODEL_ID not in tracking.get_run(ws, run_id).tags, "a training run is lazy"
    first = cli("model", "log", run_id, "--json")
    assert first.exit_code == 0, first.output
    (made,) = json.loads(first.stdout)
    assert made["run_id"] == run_id and made["model_id"].startswith("m-")
    assert tracking.get_run(ws, run_id).tags[tracking.Tag.MODEL_ID] == made["model_id"]
    assert json.loads(cli("model", "log", run_id, "--json").stdout) == [made]
    s = tracking.session(ws)
    assert len(s.client.search_logged_models([s.experiment])) == 1
    unknown = cli("model", "log", "f" * 32)
    assert unknown.exit_code == 2
    assert unknown.stderr == f"viewcast: error: no run '{'f' * 32}' in this workspace\n"
    with tracking.start_run(ws, "a sweep", tracking.Stage.SWEEP, {}) as parent:
        pass  # a run of another stage logs no model
    refused = cli("model", "log", parent.run_id)
    assert refused.exit_code == 2 and refused.stderr == (
        f"viewcast: error: run {parent.run_id} is a sweep run, with no model: give a training run\n"
    )
