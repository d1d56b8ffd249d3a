"""The notebooks run top to bottom (with few epochs), so they cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # the notebooks, executed

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK = NOTEBOOKS / "01-lecture.ipynb"


def test_the_lecture_notebook_executes(monkeypatch):
    monkeypatch.setenv("VIEWCAST_NOTEBOOK_EPOCHS", "20")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "closed form: training MAE" in text
    assert text.count("saddle point") + text.count("local minimum") >= 2
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # the series, the learning curves, the validation forecast


def test_the_optimisation_notebook_executes(monkeypatch):
    monkeypatch.setenv("VIEWCAST_NOTEBOOK_EPOCHS", "6")
    monkeypatch.setenv("VIEWCAST_NOTEBOOK_DAYS", "700")
    path = NOTEBOOKS / "02-optimisation.ipynb"
    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    for title in ("L4: escaping", "L5: small batches", "L6: the error", "L7: class", "L8: batch"):
        assert title in shown
    assert shown.count("This is what the lecture says") + shown.count("does not show") >= 5
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5
