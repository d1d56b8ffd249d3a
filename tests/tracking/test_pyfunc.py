"""The models someone loads (champion, ensemble members, production, `viewcast model log`) are
MLflow pyfunc models: loaded by MLflow, served by MLflow; the others stay model folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.models.infer import paths
from pipeline.tracking import registry as model_registry
from pipeline.tracking.pyfunc import lag_columns
from tests.conftest import free_port, peyton_until_summer_2015, venv_env, wait_for_http


def last_windows(lags: int, count: int = 3) -> pd.DataFrame:
    """The series' last `count` windows of `lags` days, as the pyfunc input (lag_1 = newest)."""
    views = peyton_until_summer_2015()["Views"].to_numpy(np.float64)
    rows = [views[len(views) - k - lags : len(views) - k][::-1] for k in range(count)]
    return pd.DataFrame(np.array(rows), columns=lag_columns(lags))


@pytest.fixture
def registry(production: Path):
    ws = Paths(production)
    tracking.connect(ws)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    return ws


@pytest.mark.parametrize("alias", ["champion", "production"])
def test_the_aliases_load_with_mlflow_pyfunc_and_predict_like_viewcast(registry, alias):
    ws = registry
    run_id, version = tracking.alias_run(ws, alias)
    model = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}@{alias}")
    ours = tracking.load_predictor(ws, run_id)
    x = last_windows(ours.cfg.lags)
    got = model.predict(x)
    assert list(got.columns) == ["views"]
    want = np.maximum(ours.predict(x.to_numpy(np.float32)), 0)
    np.testing.assert_allclose(got["views"].to_numpy(), want, rtol=1e-6)
    # the days after it, as `forecast --horizon 3` draws them (the parameter in the signature)
    three = model.predict(x, params={"horizon": 3})
    assert list(three.columns) == ["views", "views_2", "views_3"]
    days = paths(ours, x.to_numpy(np.float32), np.zeros(len(x), np.int64), 3)
    np.testing.assert_allclose(three.to_numpy(), days, rtol=1e-6)
    np.testing.assert_array_equal(three["views"], got["views"])
    assert model.metadata.signature.params.to_dict() == [
        {"name": "horizon", "type": "long", "default": 1, "shape": None}
    ]
    with pytest.raises(ValueError, match="horizon must be at least 1"):
        model.predict(x, params={"horizon": 0})
    # the version points at an MLflow 3 logged model of the run, with a signature and example
    meta = model.metadata
    assert meta.model_id == tracking.get_run(ws, run_id).tags[tracking.Tag.MODEL_ID]
    assert meta.get_input_schema().input_names() == lag_columns(ours.cfg.lags)
    local = mlflow.artifacts.download_artifacts(f"models:/{tracking.REGISTERED_MODEL}@{alias}")
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == lag_columns(ours.cfg.lags) and len(example) == 2
    source = tracking.session(ws).client.get_model_version(tracking.REGISTERED_MODEL, version)
    assert source.source == f"models:/{meta.model_id}"


def test_only_the_models_someone_loads_are_mlflow_models(registry, cli):
    """A sweep logs each configuration's model folder, not a pyfunc model: MLflow's models list
    holds the champion (an ensemble's members too) and the production refit, and `viewcast
    model log` turns any other run into one, once."""
    ws = registry
    s = tracking.session(ws)
    children = tracking.sweep_children(ws, tracking.latest_sweep(ws))
    logged = s.client.search_logged_models([s.experiment], max_results=1000)
    by_run = {m.source_run_id: m for m in logged}
    champion, _ = tracking.alias_run(ws, "champion")
    production, _ = tracking.alias_run(ws, "production")
    wanted = {champion, production}
    ensemble = tracking.get_run(ws, champion).params.get("ensemble.members")
    wanted |= set(ensemble.split(",")) if ensemble else set()
    assert set(by_run) == wanted
    assert all(
        by_run[r].model_id == tracking.get_run(ws, r).tags[tracking.Tag.MODEL_ID] for r in wanted
    )
    lazy = [c for c in children if c.run_id not in wanted]  # the baselines, here
    assert lazy and all(tracking.Tag.MODEL_ID not in c.tags for c in lazy)
    files = {p.name for p in tracking.model_folder(ws, lazy[0].run_id).iterdir()}
    assert {"model.json", "weights.npz", "example.npz"} <= files

    first = cli("model", "log", lazy[0].run_id, "--json")
    assert first.exit_code == 0, first.output
    (made,) = json.loads(first.stdout)
    again = json.loads(cli("model", "log", lazy[0].run_id, "--json").stdout)
    assert again == [made], "idempotent"
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{made['model_id']}"))
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt")]
    x = last_windows(lazy[0].metrics and tracking.load_predictor(ws, lazy[0].run_id).cfg.lags)
    served = mlflow.pyfunc.load_model(f"models:/{made['model_id']}").predict(x)["views"]
    ours = np.maximum(
        tracking.load_predictor(ws, lazy[0].run_id).predict(x.to_numpy(np.float32)), 0
    )
    np.testing.assert_allclose(served.to_numpy(), ours, rtol=1e-6)
    unknown = cli("model", "log", "0" * 32)
    assert unknown.exit_code == 2 and "no run" in unknown.stderr


def test_a_logged_model_pins_the_versions_it_was_saved_with(registry):
    """The requirements are this process's own versions (why MLflow's per-save comparison with
    the installed packages is skipped), and MLflow's check is back in place after the save."""
    from mlflow.utils import environment

    ws = registry
    champion, _ = tracking.alias_run(ws, "champion")
    local = mlflow.artifacts.download_artifacts(
        f"models:/{tracking.get_run(ws, champion).tags[tracking.Tag.MODEL_ID]}"
    )
    pins = (Path(local) / "requirements.txt").read_text().split()
    assert pins == [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]
    check = environment.warn_dependency_requirement_mismatches
    assert check.__module__ == "mlflow.utils.requirements_utils"
    with pytest.raises(RuntimeError), model_registry._no_requirement_check():
        assert environment.warn_dependency_requirement_mismatches(["numpy==0.0.1"]) is None
        raise RuntimeError("a failed save")
    assert environment.warn_dependency_requirement_mismatches is check


def test_a_loaded_model_imports_no_torch_and_runs_its_own_copy_of_the_code(registry):
    """In a fresh process: the pyfunc loads the inference modules it carries, not the package."""
    ws = registry
    script = (
        "import sys, mlflow, pandas as pd\n"
        f"mlflow.set_registry_uri({ws.tracking_uri!r})\n"
        "m = mlflow.pyfunc.load_model('models:/viewcast@production')\n"
        "x = pd.DataFrame([[100.0] * 56], columns=[f'lag_{j}' for j in range(1, 57)])\n"
        "print(float(m.predict(x)['views'][0]))\n"
        "print('torch' in sys.modules, sys.modules['pipeline.models.infer'].__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    value, flags = out.stdout.strip().splitlines()[-2:]
    torch_loaded, infer_file = flags.split(" ", 1)
    assert float(value) >= 0 and torch_loaded == "False"
    assert "/artifacts/code/pipeline/models/infer.py" in infer_file.replace(os.sep, "/")


def test_mlflow_models_serve_answers_with_the_same_numbers(registry):
    ws = registry
    run_id, _ = tracking.alias_run(ws, "production")
    ours = tracking.load_predictor(ws, run_id)
    x = last_windows(ours.cfg.lags)
    port = free_port()
    env = venv_env(MLFLOW_TRACKING_URI=ws.tracking_uri)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"]
    command += ["-m", "models:/viewcast@production", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/ping", server, 90)
        body = json.dumps({"dataframe_split": x.to_dict(orient="split", index=False)})
        request = urllib.request.Request(
            f"{url}/invocations", body.encode(), {"Content-Type": "application/json"}
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        split = x.to_dict(orient="split", index=False)
        body = json.dumps({"dataframe_split": split, "params": {"horizon": 2}})
        request = urllib.request.Request(
            f"{url}/invocations", body.encode(), {"Content-Type": "application/json"}
        )
        two = json.loads(urllib.request.urlopen(request, timeout=30).read())
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    views = [row["views"] for row in answer["predictions"]]
    want = np.maximum(ours.predict(x.to_numpy(np.float32)), 0)
    np.testing.assert_allclose(views, want, rtol=1e-6)
    days = paths(ours, x.to_numpy(np.float32), np.zeros(len(x), np.int64), 2)
    np.testing.assert_allclose([[r["views"], r["views_2"]] for r in two["predictions"]], days)
