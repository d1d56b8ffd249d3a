"""The one error type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class ViewcastError(Exception):
    """A problem the user can fix: bad input, a missing stage, a refused action."""

    exit_code = 2


class InputError(ViewcastError):
    """A file that cannot be ingested; names the file and, where it applies, the line."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
