"""Helpers of the search tests: the one sweep of a workspace and its runs."""

from __future__ import annotations

from pathlib import Path

from pipeline import tracking
from pipeline.data.workspace import Paths


def the_sweep(home: Path) -> tracking.RunRecord:
    (parent,) = tracking.runs(Paths(home), tracking.Stage.SWEEP)
    return parent


def children(home: Path, parent: str) -> list[tracking.RunRecord]:
    return tracking.children(Paths(home), parent)
