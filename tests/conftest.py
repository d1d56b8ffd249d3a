"""Shared fixtures: real demo files, seeded synthetic series, a temporary workspace, a CLI."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.sources.fixtures import apis  # noqa: F401  (the fake source APIs, for every test)

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
    return lambda *args: invoke(home, *args)


@pytest.fixture
def parquet_opens(monkeypatch) -> list[str]:
    """Every path pyarrow.parquet opens from now on in this test (read_table and ParquetFile,
    the store's reader)."""
    import pyarrow.parquet as pq

    opened: list[str] = []
    real = pq.read_table

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    class SpiedFile(pq.ParquetFile):
        def __init__(self, source, *args, **kwargs) -> None:
            opened.append(str(source))
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    monkeypatch.setattr(pq, "ParquetFile", SpiedFile)
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


def invoke(home: Path, *args: object):
    """`viewcast --home <home> ARGS...` in-process (the click Result)."""
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)])


def clone_workspace(src: Path, dst: Path) -> Path:
    """Copy a workspace (and the exports beside it) to `dst`, rewriting the absolute artifact
    paths MLflow keeps in its database, so the copy is a workspace of its own."""
    for export in src.parent.glob("*.csv"):
        shutil.copy2(export, dst.parent / export.name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    db = dst / "mlruns" / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            tables = [
                r[0] for r in con.execute("select name from sqlite_master where type='table'")
            ]
            for table in tables:
                for column in con.execute(f"pragma table_info('{table}')").fetchall():
                    if column[2].upper().startswith(("TEXT", "VARCHAR")):
                        con.execute(
                            f'update "{table}" set "{column[1]}" = '
                            f'replace("{column[1]}", ?, ?) where "{column[1]}" like ?',
                            (str(src), str(dst), f"%{src}%"),
                        )
    return dst


def ingest_two_series(home: Path) -> Path:
    """Two seeded 300-day series (60 val, 60 test days each) ingested into `home`."""
    for seed, name in ((0, "alpha"), (1, "beta")):
        path = write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        result = invoke(home, "ingest", path, "--name", name)
        assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def two_series(home: Path) -> Path:
    """A workspace with two seeded 300-day series ingested (60 val, 60 test days each)."""
    return ingest_two_series(home)


def shared_template(tmp_path_factory, name: str, build) -> Path:
    """A workspace built once for the whole run: by the first pytest-xdist worker that needs it
    (the others wait on a lock, then reuse it), or once per session without xdist. Tests get
    copies (`clone_workspace`), never the template itself."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    home, done = root / f"template-{name}" / "ws", root / f"template-{name}.done"
    with open(root / f"template-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(home.parent, ignore_errors=True)
            home.mkdir(parents=True)
            build(home)
            done.touch()
    return home


def build_swept(home: Path) -> None:
    """Two series after `sweep --grid tiny.toml` and `select`."""
    grid = home.parent / "tiny.toml"
    grid.write_text(TINY_GRID)
    ingest_two_series(home)
    for args in (("sweep", "--grid", grid), ("select",)):
        result = invoke(home, *args)
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def swept_template(tmp_path_factory) -> Path:
    """Built once per test run: two series after `sweep --grid tiny.toml` and `select`."""
    return shared_template(tmp_path_factory, "swept", build_swept)


@pytest.fixture
def swept(swept_template: Path, home: Path) -> Path:
    """`two_series` after `viewcast sweep --grid tiny.toml` and `viewcast select`: a fresh copy
    of the session's template for each test."""
    return clone_workspace(swept_template, home)


# --- a production workspace: real views, swept, selected, finalized and refit -------------------

FORTNIGHT = 14
# one configuration of the default grid: it beats the naive baselines on these validation days
PRODUCTION_GRID = """
[grid]
lags = 28
model = "relu"
layers = 2
width = 64
batchnorm = true
target_transform = "log1p"
scaling = "window-mean"
lr = 3e-3
epochs = 600
patience = 60
"""


def peyton_until_summer_2015() -> pd.DataFrame:
    """Peyton Manning's real daily Wikipedia views up to a calm summer's end (2015-06-30), with
    no missing day in the last 100."""
    views = pd.read_csv(RAW / "wikipedia-peyton-manning" / "views.csv")
    return views[views["Date"] <= "2015-06-30"].reset_index(drop=True)


@pytest.fixture
def series() -> pd.DataFrame:
    return peyton_until_summer_2015()


def export(rows: pd.DataFrame, path: Path) -> Path:
    """A YouTube Studio Totals.csv holding these rows."""
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def production_template(tmp_path_factory) -> Path:
    """Built once per test run: the series minus its last fortnight, swept, selected, finalized
    and refit."""
    rows = peyton_until_summer_2015().iloc[:-FORTNIGHT]
    return shared_template(
        tmp_path_factory,
        "production",
        lambda home: build_production(home, rows, PRODUCTION_GRID, "series", invoke),
    )


def build_production(home: Path, rows: pd.DataFrame, grid: str, series: str, run) -> None:
    """A workspace that forecasts: `rows` ingested as `series`, the grid swept, the champion
    selected, finalized and refit. `run(home, *args)` runs one command (in-process or not) and
    returns something with an exit code (`exit_code` or `returncode`)."""
    first = export(rows, home.parent / "export-0.csv")
    toml = home.parent / "series.toml"
    toml.write_text(grid)
    for args in (
        ("ingest", first, "--name", series),
        ("sweep", "--grid", toml),
        ("select",),
        ("finalize",),
        ("refit",),
    ):
        result = run(home, *args)
        code = getattr(result, "exit_code", getattr(result, "returncode", None))
        assert code == 0, (args, getattr(result, "output", getattr(result, "stderr", "")))


@pytest.fixture
def production(production_template: Path, home: Path) -> Path:
    """A fresh copy of the session's production workspace for each test."""
    return clone_workspace(production_template, home)


# --- servers started by tests (mlflow ui, mlflow server, mlflow models serve) -------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_env(**extra: str) -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH (MLflow starts `uvicorn`
    by name, as from an activated environment), plus `extra`."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return os.environ | {"PATH": path} | extra


def wait_for_http(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    """Poll `url` until it answers; fail if `proc` exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            assert proc.poll() is None, f"{proc.args[:4]} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{url} did not answer in {seconds:.0f} s"
            time.sleep(0.5)


# --- the fast tier -----------------------------------------------------------------------------

# a test that needs one of these is `slow` (`make test-fast` leaves it out): a swept or production
# workspace (built once per run, copied per test), a Ray cluster, a running server
SLOW_FIXTURES = {
    *("swept", "swept_template", "production", "production_template", "two_sweeps", "registry"),
    *("ray_head", "ui"),
}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    # the slow tests first (in their modules' order): the two workers then end together instead
    # of one waiting for the other's last long test
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
