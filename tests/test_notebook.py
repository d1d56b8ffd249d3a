"""notebooks/01-lecture.ipynb runs top to bottom (with few epochs), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01-lecture.ipynb"


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
