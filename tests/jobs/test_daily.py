"""Jobs called without the CLI (as a notebook would), and the `daily` job day by day."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from tests.conftest import FORTNIGHT, export, snapshot


def run_count(ws: Paths) -> tuple[int, int]:
    runs = tracking.all_runs(ws)
    mon = [r for r in runs if r.stage == tracking.Stage.MONITOR]
    points = len(tracking.metric_steps(ws, mon[0].run_id, "live_mae")) if mon else 0
    return len(runs), points


def test_a_simulated_fortnight(production: Path, series: pd.DataFrame, cli):
    """Day by day: one more day of the series arrives, `daily` runs. From day 8 the views jump
    twentyfold: drift must fire on the third shifted day monitored, and not before."""
    ws = Paths(production)
    shifted = series.copy()
    shift_from = len(series) - FORTNIGHT + 7  # the 8th day of the fortnight
    shifted.loc[shift_from:, "Views"] *= 20
    codes = []
    for i in range(1, FORTNIGHT + 1):
        end = len(series) - FORTNIGHT + i
        new = export(shifted.iloc[end - 28 : end], production.parent / f"export-{i}.csv")
        result = cli("daily", new, "--name", "series", "--k", "2", "--m", "3")
        codes.append(result.exit_code)
        assert result.exit_code in (0, 3), result.output
        tomorrow = str(np.datetime64(shifted["Date"].iloc[end - 1], "D") + 1)
        assert (ws.data / "forecasts" / f"{tomorrow}.csv").exists()

        if i == 5:  # re-running the same day changes nothing
            data, runs = snapshot(ws.data), run_count(ws)
            again = cli("daily", new, "--name", "series")
            assert again.exit_code == 0 and snapshot(ws.data) == data and run_count(ws) == runs

    # the fortnight's forecasts for day 2..14 were scored: day i's forecast is scored on day i+1.
    # Shifted actuals arrive on days 8, 9, 10...: the third is monitored by the 10th day's run.
    first_drift = 10
    assert codes[: first_drift - 1] == [0] * (first_drift - 1)
    assert codes[first_drift - 1 :] == [3] * (FORTNIGHT - first_drift + 1)

    # the monitoring numbers, by hand from the forecast files and the export
    report = json.loads(cli("monitor", "--json").stdout)
    by_hand = []
    for path in sorted((ws.data / "forecasts").glob("*.csv")):
        row = pd.read_csv(path).iloc[0]
        actual = shifted.loc[shifted["Date"] == row["date"], "Views"]
        if len(actual):
            by_hand.append((row["date"], abs(row["forecast"] - float(actual.iloc[0]))))
    assert [d["date"] for d in report["days"]] == [d for d, _ in by_hand]
    assert [d["live_mae"] for d in report["days"]] == pytest.approx([e for _, e in by_hand])
    assert len(by_hand) == FORTNIGHT - 1
    assert report["drift_since"] == shifted["Date"].iloc[shift_from]
    (mon,) = tracking.runs(ws, tracking.Stage.MONITOR)
    history = tracking.metric_steps(ws, mon.run_id, "live_mae")
    assert sorted(history.values()) == pytest.approx(sorted(e for _, e in by_hand))


def test_daily_reads_a_folder_oldest_first_and_moves_what_it_ingested(production, series, cli):
    """An export job drops `Totals.csv` (stale) and later `Totals (1).csv` (revised): by name the
    stale file would be read last and win; by age the revised one wins. Both move to done/."""
    from pipeline.data.table import concat

    ws = Paths(production)
    incoming = production.parent / "incoming"
    incoming.mkdir()
    end = len(series) - FORTNIGHT + 1  # one new day and 27 days the store already has
    revised = series.iloc[end - 28 : end]
    stale = revised.assign(Views=1)
    older, newer = (
        export(stale, incoming / "Totals.csv"),
        export(revised, incoming / "Totals (1).csv"),
    )
    os.utime(older, (1_700_000_000, 1_700_000_000))
    os.utime(newer, (1_700_000_060, 1_700_000_060))
    done = incoming / "done"
    result = cli("daily", incoming, "--name", "series", "--archive", done)
    assert result.exit_code == 0, result.output
    store = Store(ws)
    table = concat(store.read_dev(), store.read_sealed())
    days = np.array(revised["Date"], dtype="datetime64[D]").astype(np.int32)
    stored = {int(d): v for d, v in zip(table.day, table.views, strict=True)}
    assert [stored[int(d)] for d in days] == list(revised["Views"].astype(float))
    assert sorted(table.names.astype(str)) == ["series"], "no series named after a file"
    assert list(incoming.glob("*.csv")) == []
    moved = sorted(p.name for p in done.iterdir())
    assert len(moved) == 2 and {m.split("-", 1)[1] for m in moved} == {older.name, newer.name}

    # the next morning before the export job ran: nothing new, the forecast exists already
    data = snapshot(ws.data)
    again = cli("daily", incoming, "--name", "series", "--archive", done)
    assert again.exit_code == 0, again.output
    assert snapshot(ws.data) == data


def test_an_export_named_after_its_file_that_starts_new_series_is_refused(production, series, cli):
    """Without --name a browser's `Totals (1).csv` would be a new series `Totals (1)` every
    morning while the stored one gets no new days: refused before anything is written, naming
    the stored series to pass; with --name the same file goes in."""
    ws = Paths(production)
    end = len(series) - FORTNIGHT + 1
    new = export(series.iloc[end - 28 : end], production.parent / "Totals (1).csv")
    data = snapshot(ws.data)
    result = cli("daily", new)
    assert result.exit_code == 2
    assert result.stderr == (
        f"viewcast: error: {new}: none of its 1 series is in the store (named after the file: "
        "'Totals (1)'); pass --name 'series' to add its days to the stored series, or "
        "`viewcast ingest` it to start new ones\n"
    )
    assert snapshot(ws.data) == data, "nothing ingested, nothing forecast"
    assert cli("daily", new, "--name", "series").exit_code == 0


def test_deploy_recipes_run_daily_with_a_persistent_timer(tmp_path: Path):
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    timer = configparser.ConfigParser()
    timer.read(deploy / "viewcast-daily.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "viewcast-daily.service"
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(deploy / "viewcast-daily.service")
    unit, run = service["Unit"], service["Service"]
    assert " daily --pull " in run["ExecStart"] and run["Type"] == "oneshot"
    assert "VIEWCAST_CONTACT=" in " ".join(service.get("Service", "Environment", raw=True).split())
    csv = (deploy / "viewcast-daily.service").read_text()
    drop = "/srv/viewcast/incoming --name mychannel --archive /srv/viewcast/incoming/done"
    assert f"#   {drop}" in csv, "the CSV variant stays, in a comment"
    assert run["SuccessExitStatus"].split() == ["4"], "busy (exit 4) is not a failure"
    assert run["ProtectSystem"] == "strict" and run["ReadWritePaths"] == run["WorkingDirectory"]
    assert run["NoNewPrivileges"] == run["PrivateTmp"] == "true"
    assert unit["OnFailure"] == "viewcast-alert@%n.service"
    assert (deploy / "viewcast-alert@.service").exists()
    cron = [ln for ln in (deploy / "crontab.txt").read_text().splitlines() if ln[:1].isdigit()]
    assert len(cron) == 1 and "viewcast daily --pull" in cron[0] and "-eq 4" in cron[0]
    if shutil.which("systemd-analyze"):  # systemd's own check, with the paths made real
        root = tmp_path / "srv"
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "viewcast").symlink_to(shutil.which("viewcast") or sys.executable)
        for name in ("viewcast-daily.service", "viewcast-daily.timer", "viewcast-alert@.service"):
            text = (deploy / name).read_text().replace("/srv/viewcast", str(root))
            (tmp_path / name).write_text(text)
        units = [str(tmp_path / n) for n in ("viewcast-daily.service", "viewcast-daily.timer")]
        check = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
