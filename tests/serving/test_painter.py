"""The forecast picture's helper process: one-line failures, and this package even after a
pyfunc model put its code copy first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.serving import forecast as fc
from pipeline.serving.painter import Painter


def test_the_picture_is_drawn_after_a_pyfunc_model_put_its_code_first(
    production: Path, tmp_path: Path, monkeypatch
) -> None:
    """A pyfunc model loaded in the same process (a notebook) puts its code copy, a partial
    `pipeline` package, first on sys.path; the painter's spawned process still finds ours."""
    from pipeline.tracking.registry import _serving_code

    copy = _serving_code(tmp_path / "code")  # what a logged model carries
    monkeypatch.setattr(sys, "path", [str(copy.parent), *sys.path])  # as MLflow's load does
    done = fc.forecast(Paths(production))
    png = done.path.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sys.path[0] == str(copy.parent), "the caller's sys.path is left as it was"


def test_a_drawing_failure_is_one_line_naming_the_file(tmp_path: Path):
    with Painter() as paint, pytest.raises(ViewcastError, match=r"x\.png: drawing the forecast"):
        paint([], "no panels", str(tmp_path / "x.png"))  # subplots(0, 1) cannot be drawn
