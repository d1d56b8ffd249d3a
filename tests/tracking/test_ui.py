"""`viewcast ui` as a user sees it, in a real browser (Playwright driving Debian's Chromium), and
stopped by SIGTERM without leaving the server behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from pipeline import tracking
from pipeline.data.workspace import Paths
from tests.conftest import clone_workspace, free_port, wait_for_http

CHROMIUM = (
    "/usr/bin/chromium"  # `playwright install` cannot download browsers here; .ci/run apts it
)
REQUIRE_BROWSER = "VIEWCAST_REQUIRE_BROWSER"  # CI sets it to 1: a missing Chromium fails there


@pytest.fixture(scope="module")
def chromium() -> None:
    """Skip (one line saying how to install it) where Chromium is missing, unless CI asks for it."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{CHROMIUM} is missing and {REQUIRE_BROWSER}=1: apt-get install chromium")
    pytest.skip(f"no {CHROMIUM}: `sudo apt-get install chromium` runs the browser test")


def server_processes(port: int) -> list[int]:
    """Pids whose command line names the UI's port (mlflow, uvicorn, huey workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            words = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and str(port).encode() in words and b"mlflow" in b" ".join(words):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def ui(swept_template: Path, tmp_path_factory):
    """`viewcast ui` on a free loopback port over a swept and selected workspace."""
    home = tmp_path_factory.mktemp("ui") / "ws"
    clone_workspace(swept_template, home)
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "--home", str(home), "ui", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_http(f"http://127.0.0.1:{port}/health", proc)
    yield {"home": home, "port": port, "proc": proc}
    if proc.poll() is None:  # a failed test: stop it as a user would, then make sure
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for pid in server_processes(port):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_browser_shows_the_runs_the_curves_and_the_champion(
    chromium, ui, tmp_path: Path
) -> None:
    ws = Paths(ui["home"])
    urls = tracking.ui_urls(ws, ui["port"])
    sweep = tracking.latest_sweep(ws)
    trained = [r for r in tracking.sweep_children(ws, sweep) if "val_mae_epoch" in r.metrics]
    children = tracking.sweep_children(ws, sweep)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 2400, "height": 1200})
        page.on("pageerror", lambda err: errors.append(str(err)))

        # the printed link opens the runs table, not the GenAI overview
        page.goto(urls["runs"])
        sweep_name = tracking.get_run(ws, sweep).name
        page.get_by_text(sweep_name).first.wait_for(timeout=60_000)
        assert "/runs" in page.url and "overview" not in page.url
        page.get_by_role("button", name="Columns").click()
        page.locator(".du-bois-light-tree-title").get_by_text("val_mae", exact=True).click()
        page.keyboard.press("Escape")
        row = page.locator("[role=gridcell]", has_text=sweep_name)
        row.locator("button[data-component-id*=runnamecellrenderer]").click()  # expand
        for child in children:
            page.get_by_text(child.name, exact=True).first.wait_for(timeout=30_000)
        cells = page.locator("[role=gridcell][col-id*='val_mae']").all_inner_texts()
        shown = {float(t.replace(",", "")) for t in cells if re.fullmatch(r"[\d,.]+", t.strip())}
        for child in children:
            assert any(abs(v - child.metrics["val_mae"]) < 0.01 for v in shown), child.name
        page.screenshot(path=tmp_path / "runs.png")

        # the compare view of two trained runs charts the per-epoch validation MAE
        ids = urllib.parse.quote(json.dumps([r.run_id for r in trained[:2]]))
        experiments = urllib.parse.quote(json.dumps([tracking.session(ws).experiment]))
        page.goto(
            f"http://127.0.0.1:{ui['port']}/#/compare-runs?runs={ids}&experiments={experiments}"
        )
        page.get_by_text("val_mae_epoch").first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "compare.png")

        # the registered model's page shows the champion alias
        page.goto(urls["model"])
        page.get_by_text("champion").first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "model.png")
        browser.close()
    assert errors == [], errors
    assert all(
        (tmp_path / f"{n}.png").stat().st_size > 10_000 for n in ("runs", "compare", "model")
    )


def test_the_api_serves_every_run_and_the_champion_alias(ui) -> None:
    ws = Paths(ui["home"])
    base = f"http://127.0.0.1:{ui['port']}/api/2.0/mlflow"
    experiment_id = tracking.session(ws).experiment
    request = urllib.request.Request(
        f"{base}/runs/search",
        data=json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.loads(response.read())["runs"]
    assert {r["info"]["run_id"] for r in runs} == {r.run_id for r in tracking.all_runs(ws)}
    stages = [t["value"] for r in runs for t in r["data"]["tags"] if t["key"] == "stage"]
    assert stages.count("sweep") == 1 and stages.count("train") == 8  # 7 + select's ensemble
    query = urllib.parse.urlencode({"name": tracking.REGISTERED_MODEL, "alias": "champion"})
    with urllib.request.urlopen(f"{base}/registered-models/alias?{query}", timeout=10) as r:
        alias = json.loads(r.read())
    assert alias["model_version"]["run_id"] == tracking.champion_run(ws)
    assert alias["model_version"]["source"].startswith("models:/m-")  # an MLflow logged model


def session_commands(port: int) -> list[bytes]:
    """The command lines of every process in the sessions of the UI's server processes (the
    server runs in a process group, and session, of its own)."""
    table = {}
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            words = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if proc.name.isdigit():
            table[int(proc.name)] = (int(stat.rsplit(")", 1)[1].split()[3]), words)
    sids = {table[pid][0] for pid in server_processes(port) if pid in table}
    return [words for sid, words in table.values() if sid in sids]


def test_sigterm_stops_the_whole_server_and_frees_the_port(ui) -> None:
    proc, port = ui["proc"], ui["port"]
    assert server_processes(port), "the MLflow server is not running"
    running = session_commands(port)
    assert any(b"uvicorn" in c for c in running), running
    assert not [c for c in running if b"huey" in c or b"job_runner" in c], "no GenAI job runner"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    output = proc.stdout.read()
    assert (
        f"127.0.0.1:{port}/#/experiments/" in output and "workflowType=machine_learning" in output
    )
    assert server_processes(port) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
