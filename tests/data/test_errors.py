"""The error types and their exit codes: what the CLI prints and returns for each."""

from __future__ import annotations

from pipeline.data.errors import DriftError, InputError, LockedError, ViewcastError


def test_each_error_has_its_documented_exit_code() -> None:
    assert [e.exit_code for e in (ViewcastError, InputError, DriftError, LockedError)] == [
        2,
        2,
        3,
        4,
    ]
    assert all(issubclass(e, ViewcastError) for e in (InputError, DriftError, LockedError))


def test_an_input_error_names_the_file_and_the_line() -> None:
    assert str(InputError("views.csv", "not a number: 'abc'", line=7)) == (
        "views.csv:7: not a number: 'abc'"
    )
    whole = InputError("views.csv", "empty file")
    assert str(whole) == "views.csv: empty file" and whole.line is None
