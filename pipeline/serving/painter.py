"""The forecast picture, drawn in a helper process started when a forecast begins."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import plots as reports
from pipeline.data.errors import ViewcastError


class Painter:
    """Draws the forecast picture in a helper process started when a forecast begins: importing
    matplotlib (about 0.7 s) then overlaps reading the store and MLflow (about 2 s) on another
    core, and a one-series forecast stays within its 3 s (bench/README.md)."""

    def __enter__(self) -> Painter:
        context = multiprocessing.get_context("spawn")  # never fork a process holding locks
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_paint_server, args=(child,), daemon=True)
        with _this_package_first(), _main_left_alone():
            self._proc.start()
        self._used = False
        return self

    def __call__(self, panels: list, title: str, path: str) -> None:
        self._used = True
        self._conn.send((panels, title, path))
        error = self._conn.recv()
        if error:
            raise ViewcastError(f"{path}: drawing the forecast failed ({error})")

    def __exit__(self, *exc) -> None:
        if self._used and exc[0] is None:
            self._conn.send(None)
            self._proc.join(timeout=10)
        if self._proc.is_alive():  # nothing to draw, or a failure: do not wait for the import
            self._proc.terminate()
            self._proc.join()
        self._conn.close()


@contextmanager
def _this_package_first() -> Iterator[None]:
    """sys.path without the folders whose `pipeline` is another package, while a spawned child
    copies it: a pyfunc model loaded in this process (a notebook, a test) put its code copy, a
    partial `pipeline` package, in front of ours."""
    ours = Path(__file__).resolve().parents[2]
    saved = sys.path[:]
    sys.path[:] = [
        p
        for p in saved
        if not (Path(p or ".") / "pipeline").is_dir() or Path(p or ".").resolve() == ours
    ]
    try:
        yield
    finally:
        sys.path[:] = saved


@contextmanager
def _main_left_alone() -> Iterator[None]:
    """The spawned child is not told the caller's main module: multiprocessing would run a
    script's top level again in it (`python example.py` holding the README's API example with no
    `if __name__ == "__main__":` guard: the whole job a second time, under the lock). The
    child needs only this module."""
    main = sys.modules["__main__"]
    hidden = {key: main.__dict__.pop(key) for key in ("__file__", "__spec__") if key in vars(main)}
    main.__spec__ = None  # multiprocessing reads it (a missing one is an AttributeError)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(hidden)


def _paint_server(conn) -> None:
    """The helper process: import matplotlib at once, then draw what the forecast sends."""
    reports.pyplot()
    while (job := conn.recv()) is not None:
        try:
            reports.forecast_bands(*job)
            conn.send("")
        except Exception as err:  # reported by the forecast as one line
            conn.send(f"{type(err).__name__}: {err}")
