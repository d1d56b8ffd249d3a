"""bench/make_panel.py: a seeded Kaggle-shaped wide CSV that viewcast ingests as kaggle-wide."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "make_panel.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_panel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_panel_has_the_competitions_shape_and_ingests(tmp_path: Path, cli):
    panel = load_script()
    path = tmp_path / "train_2.csv"
    panel.write_panel(path, pages=300, days=200, seed=3)
    again = tmp_path / "again.csv"
    panel.write_panel(again, pages=300, days=200, seed=3)
    assert path.read_bytes() == again.read_bytes(), "seeded"
    frame = pd.read_csv(path)
    assert list(frame.columns[:2]) == ["Page", "2015-07-01"] and frame.shape == (300, 201)
    values = frame.iloc[:, 1:].to_numpy(float)
    empty = np.isnan(values)
    late = empty[:, :30].all(axis=1) & ~empty[:, -30:].all(axis=1)
    assert 0.05 < empty.mean() < 0.20  # 5-8% per page, plus the late starts
    assert 0.03 < late.mean() < 0.2, "about a tenth of the pages begin late"
    levels = np.nanmedian(values, axis=1)
    assert levels.min() < 100 and levels.max() > 100_000, "tens to hundreds of thousands and more"
    result = cli("ingest", path, "--format", "kaggle-wide")
    assert result.exit_code == 0, result.output
    status = json.loads(cli("status", "--json").stdout)["series"]
    assert len(status) == 300
