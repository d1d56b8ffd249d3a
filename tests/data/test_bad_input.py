"""Bad input: one line naming the file (and line), exit code 2, no traceback, store untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import snapshot

GOOD = "Date,Views\n2021-01-01,10\n2021-01-02,12\n"
BAD_FILES = {
    # name: (bytes, line the message must name or None, words the message must hold)
    "empty": (b"", None, "empty file"),
    "header_only": (b"Date,Views\n", None, "no data rows"),
    "no_date_column": (b"Day,Views\n2021-01-01,3\n", 1, "no date column"),
    "no_views_column": (b"Date,Visits\n2021-01-01,3\n", 1, "no views column"),
    "bad_date": (b"Date,Views\n2021-01-01,3\n2021-13-45,4\n", 3, "unparseable date '2021-13-45'"),
    "empty_date": (b"Date,Views\n2021-01-01,3\n,4\n", 3, "missing date"),
    "text_views": (b"Date,Views\n2021-01-01,3\n2021-01-02,lots\n", 3, "non-numeric views 'lots'"),
    "negative_views": (b"Date,Views\n2021-01-01,3\n2021-01-02,-4\n", 3, "negative views -4"),
    "conflicting_duplicate": (
        b"Date,Views\n2021-01-01,3\n2021-01-02,4\n2021-01-01,5\n",
        2,
        "2021-01-01 is listed twice",
    ),
    "html": (b"<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", None, "HTML page"),
    "binary": (bytes(range(256)) * 4, None, "binary data"),
    "utf16": ("Date,Views\n2021-01-01,3\n".encode("utf-16"), None, "UTF-16 text"),
    "empty_page": (b"Page,2021-01-01,2021-01-02\nA_en,1,2\n ,3,4\n", 3, "empty series id"),
    "ragged": (b"Date,Views\n2021-01-01,3\n2021-01-02,4,9\n", 3, "malformed CSV"),
    "one_column": (b"Views\n3\n4\n", 1, "not a CSV export: the header has one column"),
    "semicolons": (  # Excel's CSV in many locales: read as ',' it would misread 1.234
        b"Date;Views\n2021-01-01;1.234\n",
        1,
        "the header has one column (';'-separated: save it as comma-separated CSV)",
    ),
    "huge_views": (
        b"Date,Views\n2021-01-01,3\n2021-01-02," + b"9" * 401 + b"\n",
        3,
        "above the ceiling of 1e+12 a day",
    ),
    "ancient_and_far_dates": (
        b"Date,Views\n2021-01-01,3\n1800-01-01,4\n9999-12-31,5\n",
        3,
        "date 1800-01-01 outside 2005-01-01..",
    ),
}


@pytest.fixture
def seeded_store(cli, home: Path, tmp_path: Path) -> dict[str, str]:
    """A workspace that already holds one series, and its bytes."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    assert cli("ingest", good, "--test-days", 2, "--val-days", 1, "--name", "ch").exit_code == 0
    before = snapshot(home)
    assert before, "the good ingest must have written the store"
    return before


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_in_one_line_and_costs_nothing(
    name: str, cli, home: Path, tmp_path: Path, seeded_store: dict[str, str]
) -> None:
    content, line, words = BAD_FILES[name]
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content)
    result = cli("ingest", path)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in result.output
    where = f"{path}:{line}:" if line else f"{path}:"
    assert where in message, message
    assert words in message, message
    assert snapshot(home) == seeded_store, "a refused file must leave the store byte-for-byte"


def test_one_bad_file_among_several_lands_nothing(
    cli, home: Path, tmp_path: Path, seeded_store: dict[str, str]
) -> None:
    newer = tmp_path / "newer.csv"
    newer.write_text("Date,Views\n2021-01-03,20\n2021-01-04,22\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_FILES["text_views"][0])
    result = cli("ingest", newer, bad, "--name", "ch")
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert snapshot(home) == seeded_store


def test_missing_file_and_unknown_format(cli, tmp_path: Path) -> None:
    result = cli("ingest", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "nope.csv: no such file" in result.stderr
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    result = cli("ingest", good, "--format", "excel")
    assert result.exit_code == 2 and "'excel' is not one of 'auto', 'youtube-totals'" in (
        result.stderr
    )  # refused by the option's choices, before the file is read


def test_allow_dates_widens_the_range_but_keeps_it_bounded(cli, tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("Date,Views\n1999-12-30,3\n1999-12-31,4\n")
    assert cli("ingest", old, "--name", "o").exit_code == 2
    assert cli("ingest", old, "--name", "o", "--allow-dates").exit_code == 0
    ancient = tmp_path / "ancient.csv"
    ancient.write_text("Date,Views\n1800-01-01,3\n")
    result = cli("ingest", ancient, "--allow-dates")
    assert result.exit_code == 2 and "outside 1900-01-01..2100-12-31" in result.stderr


@pytest.mark.parametrize("date", ["NaT", "+12345-01-01", "2021-02-30", "2021-1-1", "1900-01-01"])
def test_forecast_dates_are_parsed_strictly(cli, date: str) -> None:
    result = cli("forecast", "--date", date)
    assert result.exit_code == 2 and "--date must be a day YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.output


def damage(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "garble":
        path.write_bytes(b"garbage " * 500)
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.mark.parametrize(
    "target, how, command, words",
    [
        ("gen/dev.parquet", "truncate", "features", "dev.parquet: damaged"),
        ("gen/dev.parquet", "garble", "features", "dev.parquet: damaged"),
        ("gen/dev.parquet", "garble", "sweep", "dev.parquet: damaged"),  # its footer, first
        ("gen/dev.parquet", "truncate", "sweep", "dev.parquet: damaged"),
        ("gen/splits.json", "delete", "features", "splits.json: missing from the store"),
        ("gen/manifest.json", "garble", "status", "manifest.json: damaged"),
        ("CURRENT", "garble", "status", "CURRENT: names"),
        ("mlflow.db", "garble", "select", "mlflow.db: not a readable MLflow database"),
        ("mlflow.db", "empty", "select", "mlflow.db: empty file (0 bytes)"),
    ],
)
def test_damaged_files_get_one_line_naming_them(
    two_series: Path, cli, target: str, how: str, command: str, words: str, monkeypatch
) -> None:
    from pipeline.tracking import connection

    assert cli("sweep", "--grid", "lecture", "--max-minutes", "0.0001").exit_code == 0
    store = two_series / "data" / "store"
    gen = store / (store / "CURRENT").read_text().strip()
    path = {"CURRENT": store / "CURRENT", "mlflow.db": two_series / "mlruns" / "mlflow.db"}.get(
        target, gen / target.removeprefix("gen/")
    )
    damage(path, how)
    # each command is a new process, which checks the database when it first opens it
    monkeypatch.setattr(connection, "_EXPERIMENTS", {})
    result = cli(command)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_only_regular_files_of_bounded_size_and_shape_are_read(cli, tmp_path: Path) -> None:
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    cases = [(zero, (), "not a regular file")]
    wide = tmp_path / "wide.csv"
    wide.write_text("Page," + ",".join(["2021-01-01"] * 100_001) + "\nA,1\n")
    cases.append((wide, (), "100,002 columns in the header"))
    long_field = tmp_path / "field.csv"
    long_field.write_bytes(b"Date,Views\n2021-01-01," + b"1" * (2**22 + 10) + b"\n")
    cases.append((long_field, (), "a line of 4,194,325 bytes"))
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    cases.append((good, ("--max-bytes", "10"), "over the limit of 10 (--max-bytes raises it)"))
    for path, extra, words in cases:
        result = cli("ingest", path, *extra)
        assert result.exit_code == 2, (path, result.output)
        assert words in result.stderr and str(path) in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_control_characters_in_a_damaged_header_stay_on_one_line(cli, tmp_path: Path) -> None:
    """Found by the fuzzer: a vertical tab in the header used to break the message in two."""
    bad = tmp_path / "vt.csv"
    bad.write_bytes(b"\x0bate,Views\n2021-01-01,5\n")
    result = cli("ingest", bad)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"viewcast: error: {bad}:1: no date column (header: \\x0bate, Views)"
    ]
