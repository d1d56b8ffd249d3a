"""An exclusive lock on a workspace: one writer at a time, whoever runs it (a timer, a person).

flock on <home>/.viewcast.lock: the kernel releases it when its holder exits, even by kill -9, so a
crash never leaves the workspace locked. The lock is re-entrant within a process (a job that holds
it may call another that takes it), and a second process waits up to `wait` seconds for it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.data.errors import LockedError
from pipeline.data.workspace import Paths

LOCK_FILE = ".viewcast.lock"
POLL = 0.1  # seconds between tries while waiting
_HELD: dict[str, int] = {}  # lock path -> how deep this process holds it


@contextmanager
def workspace_lock(ws: Paths, wait: float = 0.0) -> Iterator[None]:
    """Hold <home>/.viewcast.lock; another holder: wait up to `wait` seconds, then LockedError."""
    ws.home.mkdir(parents=True, exist_ok=True)
    path = ws.home / LOCK_FILE
    key = str(path)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                holder = path.read_text().strip() or "?"
                waited = f"; waited {wait:g} s" if wait > 0 else ""
                raise LockedError(
                    f"{path}: workspace busy (another run, pid {holder}){waited}; exiting"
                ) from None
            time.sleep(POLL)
    _HELD[key] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        _HELD.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
