"""Sweeps on a Ray cluster (`--engine ray`), tested against a real local one: `ray start --head`
on 127.0.0.1 with 2 CPUs (two worker processes at once), stopped at the end of the module."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.data.errors import ViewcastError
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.search import engines, grids, selection, sweeps
from pipeline.search.engines import Engine
from pipeline.search.units import SweepData, plan_units
from pipeline.tracking import Stage
from tests.conftest import (
    TINY_GRID,
    clone_workspace,
    free_port,
    ingest_two_series,
    invoke,
    venv_env,
)

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on a free loopback port with 2 CPUs; `ray stop` at the end."""
    port = free_port()
    command = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += ["--num-cpus=2", "--num-gpus=0", "--include-dashboard=false"]
    command += ["--disable-usage-stats", "--object-store-memory=100000000"]
    env = venv_env(RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    yield f"127.0.0.1:{port}"
    stopped = subprocess.run([RAY, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr[-2000:]


@pytest.fixture(scope="module")
def two_homes(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two identical workspaces of two seeded series, and the tiny grid beside them."""
    first = tmp_path_factory.mktemp("local") / "ws"
    first.mkdir()
    ingest_two_series(first)
    second = clone_workspace(first, tmp_path_factory.mktemp("ray") / "ws")
    grid = first.parent / "tiny.toml"
    grid.write_text(TINY_GRID)
    return first, second, grid


def val_maes(home: Path) -> dict[str, float]:
    ws = Paths(home)
    runs = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    return {r.tags["config_key"]: r.metrics["val_mae"] for r in runs}


@pytest.mark.slow
def test_a_ray_sweep_trains_and_logs_what_a_local_one_does(ray_head, two_homes):
    local, on_ray, grid = two_homes
    # --seeds 2: stacks of bagged members travel to the workers and back
    assert invoke(local, "sweep", "--grid", grid, "--seeds", 2).exit_code == 0
    done = invoke(on_ray, "sweep", "--grid", grid, "--seeds", 2, "--engine", "ray",
                  "--address", ray_head, "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    here, there = val_maes(local), val_maes(on_ray)
    assert here.keys() == there.keys() and len(here) == 7  # 3 baselines + 4 configurations
    for key, value in here.items():
        assert there[key] == pytest.approx(value, rel=1e-4), key
    chosen = [selection.select(Paths(h), ensemble=0).champion for h in (local, on_ray)]
    assert chosen[0].name == chosen[1].name, "the same champion"
    assert chosen[1].score == pytest.approx(chosen[0].score, rel=1e-4)
    ws = Paths(on_ray)
    parent = tracking.latest_sweep(ws)
    assert tracking.get_run(ws, parent).params["engine"] == "ray"
    for run in tracking.sweep_children(ws, parent):  # the driver logged every member's run
        if run.metrics.get("epochs_run", 0) > 0:
            assert run.params["train.seeds"] == "2"
            assert "model" in tracking.artifacts(ws, run.run_id)
            assert {"training", "validation"} == {context for context, _ in run.inputs}


@pytest.mark.slow
def test_each_engine_says_how_long_each_unit_trained_and_goes_on_past_a_refused_one(
    ray_head, two_homes
):
    local, _, grid = two_homes
    store = Store(Paths(local))
    data = SweepData(store.read_dev(), store.read_splits(), None, 1)
    units = plan_units(list(enumerate(grids.toml_grid(grid), 1)), True)
    asked = []

    def linear_only(unit) -> bool:  # the budget refuses the networks
        asked.append(unit)
        return unit[0][1].model.model == "linear"

    here = list(engines.Local().train_units(data, units, True, linear_only))
    assert len(asked) == 4 and [u[0][1].model.lags for u, _, _ in here] == [7, 14]
    assert all(seconds > 0 for *_, seconds in here)
    with engines.opened(Engine("ray", ray_head)) as runner:
        there = list(runner.train_units(data, units, True, lambda unit: True))
    assert len(there) == 4 and all(seconds > 0 for *_, seconds in there)


@pytest.mark.slow
def test_a_ray_sweep_resumes_a_local_sweep_cut_by_its_budget(ray_head, tmp_path: Path):
    home = tmp_path / "ws"
    home.mkdir()
    ingest_two_series(home)
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY_GRID)
    ws, cands = Paths(home), grids.load_grid(str(grid))
    cut = sweeps.sweep(ws, str(grid), cands, max_minutes=1e-6, stack=False)
    assert 0 < cut.ran < cut.total and cut.skipped == cut.total - cut.ran
    rest = sweeps.sweep(ws, str(grid), cands, stack=False, engine=Engine("ray", ray_head))
    assert (rest.resumed, rest.ran, rest.skipped) == (cut.ran, cut.total - cut.ran, 0)
    assert rest.run_id == cut.run_id, "the same parent run"
    assert len(val_maes(home)) == cut.total


def test_the_cluster_runs_two_units_at_once(ray_head):
    with engines.opened(Engine("ray", ray_head)) as runner:
        assert runner.slots == 2
    with engines.opened(Engine("ray", ray_head, cpus=2)) as runner:
        assert runner.slots == 1


def test_a_gpu_task_on_a_cpu_cluster_is_refused_before_any_run(ray_head, two_homes):
    _, home, grid = two_homes
    before = tracking.all_runs(Paths(home))
    done = invoke(home, "sweep", "--grid", grid, "--engine", "ray", "--address", ray_head,
                  "--gpus-per-task", 0.5)  # fmt: skip
    assert done.exit_code == 2 and "the Ray cluster has no GPU" in done.stderr
    assert tracking.all_runs(Paths(home)) == before, "no run opened, none changed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--engine", "spark"), "unknown engine 'spark' (choose from local, ray)"),
        (
            ("--address", "127.0.0.1:6379"),
            "--address names a Ray cluster: use it with --engine ray",
        ),
        (("--engine", "ray", "--address", "nowhere"), "give the Ray head as host:port"),
        (("--engine", "ray", "--cpus-per-task", 0), "--cpus-per-task must be positive"),
    ],
)
def test_bad_engine_options_are_one_line(two_series: Path, args, message):
    done = invoke(two_series, "sweep", *args)
    assert done.exit_code == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.output


def test_an_unreachable_cluster_is_refused_at_once(two_series: Path):
    began = time.perf_counter()
    done = invoke(two_series, "sweep", "--engine", "ray", "--address", f"127.0.0.1:{free_port()}")
    assert done.exit_code == 2 and "cannot reach the Ray cluster at 127.0.0.1:" in done.stderr
    assert time.perf_counter() - began < 30, "no minutes of Ray's own retries"
    assert tracking.runs(Paths(two_series), Stage.SWEEP) == [], "no sweep run was opened"


def test_without_ray_installed_the_engine_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ViewcastError, match=r"pip install 'viewcast\[ray\]'"):
        engines.connect(Engine("ray"))
