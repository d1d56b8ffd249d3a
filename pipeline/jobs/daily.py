"""Every morning: pull the registered sources and ingest the new exports, monitor, forecast,
under the workspace lock."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pipeline.data.errors import DriftError, ViewcastError
from pipeline.data.lock import workspace_lock
from pipeline.data.names import named_after_file
from pipeline.data.workspace import Paths
from pipeline.jobs.build import StageHook, _quiet, check_names, ingest
from pipeline.jobs.pull import pull as pull_sources
from pipeline.serving.forecast import check_horizon, forecast


def archive_folder(folder: Path) -> None:
    """The --archive folder, made before any work: a file there, or a place it cannot be made,
    is one line (the exports would be ingested and then left where they are)."""
    if folder.exists() and not folder.is_dir():
        raise ViewcastError(f"--archive {folder}: a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = err.strerror or type(err).__name__
        raise ViewcastError(f"--archive {folder}: cannot make the folder ({problem})") from None


def archive(files: list[Path], folder: Path) -> list[Path]:
    """Move ingested exports into `folder`, each name prefixed with its modification time (the
    same export name every day never collides); the new paths."""
    folder.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in files:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
        target, n = folder / f"{stamp}-{path.name}", 1
        while target.exists():
            target, n = folder / f"{stamp}-{n}-{path.name}", n + 1
        moved.append(Path(shutil.move(path, target)))
    return moved


def daily(
    ws: Paths,
    files: list[tuple[Path, str | None]],
    k: float = 2.0,
    m: int = 3,
    horizon: int = 1,
    on_stage: StageHook = _quiet,
    done: Path | None = None,
    pull: bool = False,
) -> None:
    """Pull, ingest, monitor and forecast under the workspace lock (another holder:
    LockedError, exit 4). With `pull`, every registered source is pulled first; a source that
    fails leaves its series as it was, the others go on, and its error (exit 5 down, 6
    credentials, 2 otherwise) is raised after the forecast is written. DriftError (exit 3)
    likewise when monitoring found drift. With `done`, the ingested files move there once they
    are in the store (no file: no ingest)."""
    # lazy: pandas takes 0.7 s to import; kept off the CLI's start-up
    from pipeline.serving.monitor import check_drift, monitor

    check_drift(k, m)  # bad numbers: refused before anything is pulled or ingested
    check_horizon(horizon)
    check_names(files)
    if done is not None:
        archive_folder(done)

    def take_in():
        if not files:
            return None
        result = ingest(ws, files, before_write=lambda f, b: named_after_file(ws, f, b))
        if done is not None:
            archive([path for path, _ in files], done)
        return result

    with workspace_lock(ws):
        pulled = None
        if pull:
            on_stage("pull", None)
            pulled = pull_sources(ws, None, keep_going=True)
            on_stage("pull", pulled)
        for name, step in (
            ("ingest", take_in),
            ("monitor", lambda: monitor(ws, k, m)),
            ("forecast", lambda: forecast(ws, None, horizon, force=False)),
        ):
            on_stage(name, None)
            result = step()
            on_stage(name, result)
            if name == "monitor":
                monitoring = result
    if pulled is not None and pulled.failure is not None:
        raise pulled.failure
    if monitoring.drift:
        raise DriftError(f"drift since {monitoring.drift_since}: see `viewcast monitor`")
