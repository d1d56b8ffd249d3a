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
}


@pytest.fixture
def seeded_store(cli, home: Path, tmp_path: Path) -> dict[str, str]:
    """A workspace that already holds one series, and its bytes."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    assert cli("ingest", good, "--test-days", 2, "--val-days", 1, "--series", "ch").exit_code == 0
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
    result = cli("ingest", newer, bad, "--series", "ch")
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert snapshot(home) == seeded_store


def test_missing_file_and_unknown_format(cli, tmp_path: Path) -> None:
    result = cli("ingest", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "nope.csv: no such file" in result.stderr
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    result = cli("ingest", good, "--format", "excel")
    assert result.exit_code == 2 and "unknown format 'excel'" in result.stderr
