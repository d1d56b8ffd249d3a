"""Where a workspace is and what lies in it: --home, $VIEWCAST_HOME, the demo data, the tracking
URI, the final report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import DEMO_FILES, HOME_ENV, TRACKING_ENV, Paths, read_final

ROOT = Path(__file__).resolve().parents[2]


def test_home_is_the_option_then_the_variable_then_here(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(HOME_ENV, raising=False)
    assert Paths.resolve().home == tmp_path.resolve()
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "env"))
    assert Paths.resolve().home == (tmp_path / "env").resolve()
    assert Paths.resolve(tmp_path / "given").home == (tmp_path / "given").resolve()


def test_a_new_workspace_finds_the_checkouts_demo_data(tmp_path: Path) -> None:
    ws = Paths(tmp_path)
    assert ws.demo_data == ROOT / "data" / "raw"
    assert all((ws.demo_data / name).is_file() for name in DEMO_FILES)


def test_runs_go_to_sqlite_in_mlruns_unless_a_server_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    ws = Paths(tmp_path)
    assert ws.tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert not ws.remote_tracking
    monkeypatch.setenv(TRACKING_ENV, "http://127.0.0.1:5005/")
    assert ws.tracking_uri == "http://127.0.0.1:5005" and ws.remote_tracking


def test_the_final_report_is_read_once_it_exists(tmp_path: Path) -> None:
    ws = Paths(tmp_path)
    with pytest.raises(ViewcastError, match="run `viewcast finalize` first"):
        read_final(ws)
    ws.reports.mkdir()
    ws.final_report.write_text(json.dumps({"champion": {"name": "relu"}}))
    assert read_final(ws) == {"champion": {"name": "relu"}}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nope", "JSONDecodeError"),
        ('{"champion": ', "JSONDecodeError"),
        ("[1]", "JSON list, not an object"),
        (b"\xff\xfe", "UnicodeDecodeError"),
    ],
)
def test_a_damaged_final_report_is_one_line_saying_where_a_copy_is(
    tmp_path: Path, text, why: str
) -> None:
    ws = Paths(tmp_path)
    ws.reports.mkdir()
    if isinstance(text, bytes):
        ws.final_report.write_bytes(text)
    else:
        ws.final_report.write_text(text)
    with pytest.raises(ViewcastError) as err:
        read_final(ws)
    line = str(err.value)
    assert line.startswith(f"{ws.final_report}: damaged (") and why in line
    assert "report/final.json" in line and "\n" not in line
