"""The error types the CLI turns into one line on stderr and an exit code (2, 3 drift, 4 locked,
5 a source down, 6 a source refused its credentials)."""

from __future__ import annotations

from pathlib import Path


def first_line(err: BaseException, most: int = 120) -> str:
    """An exception's message cut to its first line (at most `most` characters), or its type's
    name when it has none: what a one-line error quotes of a library's error."""
    text = str(err)
    return text.splitlines()[0][:most] if text else type(err).__name__


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


class DriftError(ViewcastError):
    """Monitoring found live MAE above k x validation MAE for m days in a row: alert."""

    exit_code = 3


class LockedError(ViewcastError):
    """Another `viewcast daily` holds the workspace: this one exits at once."""

    exit_code = 4


class SourceDownError(ViewcastError):
    """A data source (Wikimedia, YouTube) stayed unreachable or kept failing after the retries:
    timeouts, refused connections, 429 and 5xx answers. Nothing was written."""

    exit_code = 5


class AuthError(ViewcastError):
    """A source refused its credentials (401/403, a revoked or missing token, a token file that
    others can read): run `viewcast auth youtube` again. Nothing was written."""

    exit_code = 6
