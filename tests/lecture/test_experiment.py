"""The lecture's grid, tables, figures and runs (reports/lecture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.lecture import experiment
from pipeline.search import grids


@pytest.mark.slow
def test_the_lecture_report_lists_every_configuration(two_series: Path, cli):
    result = cli("experiment", "lecture", "--only", "grid", "--epochs", "5", "--study-epochs", "3")
    assert result.exit_code == 0, result.output
    ws = Paths(two_series)
    page = (ws.reports / experiment.REPORT).read_text()
    for cand in grids.lecture_grid():
        assert f"| {cand.name} |" in page, cand.name
    for label, *_ in experiment.OPTIMISERS:
        assert f"| {label} |" in page
    assert page.count("| cpu |") == len(experiment.BATCH_SIZES)
    assert "| b | w_1 | w_2 | w_3 | w_4 | w_5 | w_6 | w_7 |" in page
    assert "test MAE" not in page.split("## L2")[0], "no test MAE before finalize"
    for figure in ("validation.png", "grad_norm.png", "optimisers.png"):
        assert (ws.reports / experiment.FIGURES / figure).read_bytes()[:4] == b"\x89PNG"

    (run,) = tracking.runs(ws, tracking.Stage.EXPERIMENT)
    studies = tracking.children(ws, run.run_id)
    assert len(studies) == len(experiment.OPTIMISERS) + len(experiment.BATCH_SIZES)
    assert {r.stage for r in studies} == {tracking.Stage.STUDY}
    assert {"lecture.md", "lecture"} <= tracking.artifacts(ws, run.run_id)

    # the experiment's sweep is not a selection sweep: `select` does not take it by default
    refused = cli("select")
    assert refused.exit_code == 2 and "no sweep in this workspace yet" in refused.stderr
    (sweep,) = tracking.runs(ws, tracking.Stage.SWEEP)
    assert sweep.tags["sweep_purpose"] == "experiment"

    # once the test is finalized, the tables show each model's test MAE
    assert cli("select", "--sweep", sweep.run_id, "--ensemble", "0").exit_code == 0
    assert cli("finalize").exit_code == 0
    trained = len(tracking.runs(ws, tracking.Stage.TRAIN))
    again = cli("experiment", "lecture", "--only", "grid", "--epochs", "5", "--study-epochs", "3")
    assert again.exit_code == 0, again.output
    assert len(tracking.runs(ws, tracking.Stage.TRAIN)) == trained, "sweep resumed"
    page = (ws.reports / experiment.REPORT).read_text()
    assert "| model | parameters | training MAE | validation MAE | test MAE |" in page
    assert "| test MAE | lowest training loss (any epoch, scaled) |" in page
    row = next(line for line in page.splitlines() if line.startswith("| linear-lags7 |"))
    assert len(row.split("|")) == 7 and row.split("|")[5].strip() not in ("", "-")
