"""An exclusive, non-blocking lock on a workspace, so that timed runs never overlap."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.config import Workspace
from pipeline.errors import LockedError

LOCK_FILE = ".viewcast.lock"


@contextmanager
def workspace_lock(ws: Workspace) -> Iterator[None]:
    """Hold <home>/.viewcast.lock (flock: released by the kernel even if the process dies)."""
    ws.home.mkdir(parents=True, exist_ok=True)
    path = ws.home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = path.read_text().strip() or "?"
        raise LockedError(f"{path}: workspace busy (another run, pid {holder}); exiting") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
