"""Shared fixtures: real demo files, seeded synthetic series, a temporary workspace, a CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
RAW = Path(__file__).resolve().parents[1] / "data" / "raw"


@pytest.fixture
def raw() -> Path:
    """The real exports shipped in data/raw (see each folder's SOURCE.md)."""
    return RAW


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty workspace folder."""
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def cli(home: Path):
    """Run `viewcast --home <home> ARGS...`; returns the click Result (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--home", str(home), *map(str, args)])

    return invoke


@pytest.fixture
def parquet_opens(monkeypatch) -> list[str]:
    """Every path pyarrow.parquet.read_table opens from now on in this test."""
    import pyarrow.parquet as pq

    opened: list[str] = []
    real = pq.read_table

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    return opened


def synthetic_views(days: int = 400, seed: int = 0, level: float = 1000.0) -> np.ndarray:
    """A seeded daily series with trend, weekly cycle, noise and a few spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekly = 1 + 0.3 * np.sin(2 * np.pi * t / 7)
    trend = 1 + t / days
    spikes = np.where(rng.random(days) < 0.02, rng.uniform(2, 5, days), 1.0)
    return np.round(level * weekly * trend * spikes * rng.lognormal(0, 0.1, days))


def write_totals(path: Path, views: np.ndarray, start: str = "2021-01-01") -> Path:
    """A YouTube Studio Totals.csv (Date,Views) for the given views."""
    dates = pd.date_range(start, periods=len(views), freq="D")
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Views": views.astype(int)}).to_csv(
        path, index=False
    )
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder with a digest of its bytes."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


TINY_GRID = """
[base]
epochs = 40
patience = 0
lr = 0.01
scaling = "window-mean"
target_transform = "log1p"
width = 8
layers = 1
[grid]
lags = [7, 14]
model = ["linear", "relu"]
"""


@pytest.fixture
def tiny_grid(tmp_path: Path) -> Path:
    """A 4-configuration TOML grid that trains in well under a second per run."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    return path


@pytest.fixture
def two_series(home: Path, cli) -> Path:
    """A workspace with two seeded 300-day series ingested (60 val, 60 test days each)."""
    for seed, name in ((0, "alpha"), (1, "beta")):
        path = write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        assert cli("ingest", path, "--series", name).exit_code == 0
    return home


@pytest.fixture
def swept(two_series: Path, tiny_grid: Path, cli) -> Path:
    """`two_series` after `viewcast sweep --grid tiny.toml` and `viewcast select`."""
    result = cli("sweep", "--grid", tiny_grid)
    assert result.exit_code == 0, result.output
    result = cli("select")
    assert result.exit_code == 0, result.output
    return two_series
