"""The forecast picture's helper process: one-line failures, this package even after a pyfunc
model put its code copy first, and a caller's script not run again in it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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


def test_a_script_without_a_main_guard_runs_its_top_level_once(tmp_path: Path):
    """`python script.py` with no `if __name__ == "__main__":` (the README's API example saved
    as a file): the spawned helper must not run the script's top level again."""
    ran, png = tmp_path / "ran.txt", tmp_path / "x.png"
    script = tmp_path / "draw.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pipeline.data.errors import ViewcastError
            from pipeline.serving.painter import Painter

            with open({str(ran)!r}, "a") as log:
                log.write("ran\\n")
            try:
                with Painter() as paint:
                    paint([], "no panels", {str(png)!r})
            except ViewcastError as err:
                print(err)
            """
        )
    )
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert ran.read_text() == "ran\n", "the script's top level ran once"
    assert done.stdout.startswith(f"{png}: drawing the forecast failed")
    main = sys.modules["__main__"]  # this process's: left as it was
    before = (vars(main).get("__file__"), vars(main).get("__spec__"), "__file__" in vars(main))
    with Painter():
        pass
    assert (vars(main).get("__file__"), vars(main).get("__spec__"), "__file__" in vars(main)) == (
        before
    )
