"""The lecture's jobs: what they refuse, and the sentence the CLI prints for a critical point."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import jobs
from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.lecture.report import critical_point_sentence
from tests.lecture.test_report import point


def test_the_cli_prints_the_lectures_own_sentence() -> None:
    assert jobs.critical_point_sentence(point()) == critical_point_sentence(point())


def test_diagnosing_a_run_that_is_not_there_is_one_line(two_series: Path) -> None:
    ws = Paths(two_series)
    with pytest.raises(ViewcastError, match="nosuchrun"):
        jobs.diagnose(ws, "nosuchrun")
    with pytest.raises(ViewcastError, match="unknown study 'nope'"):
        jobs.studies(ws, ("nope",), None, 1, lambda name: None)
