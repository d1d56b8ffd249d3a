"""The Python API (pipeline.api): the README's example runs as written, and DataFrame input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import Workspace
from pipeline.data.errors import ViewcastError

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_a_script(tmp_path: Path) -> None:
    """The README's block saved as a file and run with `python example.py` from the project
    folder, as written (no `if __name__ == "__main__":`: the forecast's helper process must not
    run it a second time)."""
    script = tmp_path / "example.py"
    script.write_text(readme_example().replace("/tmp/viewcast-api", str(tmp_path / "ws")))
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (path,) = (tmp_path / "ws" / "data" / "forecasts").glob("*.csv")
    tomorrow = pd.read_csv(path)
    assert list(tomorrow["series_id"].unique()) == ["peyton"] and len(tomorrow) == 3
    assert (tomorrow["lower_95"] <= tomorrow["forecast"]).all()
    assert (tomorrow["forecast"] <= tomorrow["upper_95"]).all()
    final = json.loads((tmp_path / "ws" / "reports" / "final.json").read_text())
    assert final["champion"]["test_mae"] > 0
    assert f"{final['champion']['name']} {final['champion']['test_mae']}" in done.stdout
    assert f"{tomorrow['forecast'][0]:.3f}" in done.stdout  # the printed frame is the file's


def test_a_dataframe_of_several_series_ingests_like_an_export(tmp_path: Path) -> None:
    vc = Workspace(tmp_path / "ws")
    days = pd.date_range("2021-01-01", periods=400)
    frame = pd.concat(
        pd.DataFrame({"series_id": s, "date": days, "views": np.arange(400.0) * k})
        for s, k in (("a", 1), ("b", 2))
    )
    report = vc.ingest(frame)
    assert report.added == {"a": 400, "b": 400}
    status = vc.status()
    assert list(status["series_id"]) == ["a", "b"] and list(status["days"]) == [400, 400]
    history = vc.history()
    assert set(history["series_id"]) == {"a", "b"}
    assert history["date"].max() < pd.Timestamp(status["test_start"][0]), "no test day comes back"
    with pytest.raises(ViewcastError, match="name the series"):
        vc.ingest(frame.drop(columns="series_id"))
    with pytest.raises(ViewcastError, match="lacks the columns"):
        vc.ingest(frame.rename(columns={"views": "v"}))


@pytest.mark.parametrize(
    ("dates", "views", "line"),
    [
        (["2021-01-01", "yesterday"], [1, 2], "the DataFrame's date column: "),
        (["2021-01-01", "2021-01-02", "2021-01-03"], [1, "many", 3], "the DataFrame's row 1 "),
        (["2021-01-01", "2021-01-02"], [1, -5], "the DataFrame's row 1 (counted from 0): "),
        ([], [], "the DataFrame: "),
    ],
)
def test_a_bad_dataframe_is_one_line_about_the_frame(tmp_path: Path, dates, views, line) -> None:
    vc = Workspace(tmp_path / "ws")
    frame = pd.DataFrame({"date": dates, "views": views})
    with pytest.raises(ViewcastError) as err:
        vc.ingest(frame, name="x")
    message = str(err.value)
    assert message.startswith(line) and "\n" not in message
    assert "tmp" not in message.split(":")[0], "no temporary file is named"
    assert not (tmp_path / "ws" / "data" / "store").exists(), "nothing was written"


def test_a_workspace_on_a_file_or_with_a_negative_wait_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a workspace")
    with pytest.raises(ViewcastError, match="afile is a file, not a workspace folder"):
        Workspace(afile)
    with pytest.raises(ViewcastError, match="wait: seconds, 0 or more; got -1"):
        Workspace(tmp_path / "ws", wait=-1)
    assert afile.read_text() == "not a workspace" and not (tmp_path / "ws").exists()


def test_pull_registers_and_pulls_articles_then_every_registered_source(tmp_path: Path, apis):
    from tests.sources.fake_apis import daily_views

    apis.articles["Peyton_Manning"] = daily_views("2019-01-01", "2019-12-31", seed=7)
    vc = Workspace(tmp_path / "ws")
    (first,) = vc.pull("Peyton Manning")
    assert (first.name, first.days, first.last_day) == ("Peyton_Manning", 365, "2019-12-31")
    assert list(vc.status()["series_id"]) == ["Peyton_Manning"]
    (again,) = vc.pull()
    assert again.nothing_new and again.error is None
