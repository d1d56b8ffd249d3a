"""Atomic writes (readers see the old or the new file, never half) and spreadsheet-safe text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.data.atomic import atomic_write, neutralise, restore, write_text


def test_a_failed_write_leaves_the_old_file_and_no_leftover(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    write_text(path, "old")

    def half_then_fail(tmp: str) -> None:
        Path(tmp).write_text("half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 != 0o600


def test_formula_starts_get_a_quote_and_plain_text_does_not() -> None:
    assert [neutralise(t) for t in ("=1+1", "+4", "-2", "@SUM", "\tx", "'q", "page")] == [
        "'=1+1",
        "'+4",
        "'-2",
        "'@SUM",
        "'\tx",
        "''q",
        "page",
    ]


@given(st.text())
def test_restore_gives_back_exactly_what_neutralise_was_given(text: str) -> None:
    safe = neutralise(text)
    assert restore(safe) == text
    assert not safe.startswith(("=", "+", "-", "@", "\t", "\r"))
