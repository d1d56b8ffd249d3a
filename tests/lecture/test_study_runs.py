"""The studies as MLflow runs and their sections of the lecture's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.lecture import STUDIES, experiment


@pytest.mark.slow
def test_every_study_runs_and_writes_its_section_from_its_numbers(two_series: Path, cli):
    ws = Paths(two_series)
    (ws.reports).mkdir(parents=True, exist_ok=True)
    (ws.reports / experiment.GRID_PAGE).write_text("# The grid's page\n")
    args = [a for name in STUDIES for a in ("--only", name)]
    result = cli("experiment", "lecture", *args, "--study-epochs", "4")
    assert result.exit_code == 0, result.output
    page = (ws.reports / experiment.REPORT).read_text()
    assert page.startswith("# The grid's page"), "the grid's part is kept"
    titles = ["L4: escaping", "L5: small batches", "L6: the error", "L7: classification", "L8:"]
    positions = [page.index(t) for t in titles]
    assert positions == sorted(positions)
    for name in STUDIES:
        assert (ws.reports / "studies" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        section = (ws.reports / "studies" / f"{name}.md").read_text()
        verdicts = section.count("This is what the lecture says") + section.count(
            "The data does not show"
        )
        assert verdicts >= 1, name
    # the sentences follow the numbers
    numbers = json.loads((ws.reports / "studies" / "batchnorm.json").read_text())["runs"]
    helped = numbers["batch norm"]["sharpness"] < numbers["no batch norm"]["sharpness"]
    sentence = "This is what the lecture says (a smoother error surface)"
    assert (sentence in page) == helped
    escape = json.loads((ws.reports / "studies" / "escape.json").read_text())["escape"]
    assert f"{escape['eigenvalue']:.4g}" in page
    # each study is an MLflow run with its figure
    runs = [r for r in tracking.runs(ws, tracking.Stage.EXPERIMENT) if "study" in r.tags]
    assert sorted(r.tags["study"] for r in runs) == sorted(STUDIES)
    for run in runs:
        assert f"studies/{run.tags['study']}.png" in tracking.artifacts(ws, run.run_id, "studies")
    assert cli("experiment", "lecture", "--only", "nope").exit_code == 2
