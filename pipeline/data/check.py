"""`viewcast check [--repair]`: verify a workspace after a crash, a full disk or a damaged file.

The store: CURRENT names a generation whose files all read, whose checksums (kept in its manifest
since they were written) still match, and whose splits agree with the data; no leftovers of a
crashed write. MLflow: the database passes SQLite's integrity check, and no run is left RUNNING
(every writer holds the workspace lock, and check holds it too, so a RUNNING run has no live
writer). `--repair` fixes what is safe: it removes leftovers, points a missing or broken CURRENT
at the newest whole generation, and ends orphaned runs as KILLED with the reason. What it cannot
fix (a damaged live file, a corrupt database) it names, with what to do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.atomic import write_text
from pipeline.data.errors import ViewcastError
from pipeline.data.store import DEV_FILE, MANIFEST_FILE, SEALED_FILE, SPLITS_FILE, Store
from pipeline.data.workspace import Paths

GENERATION_FILES = (DEV_FILE, SEALED_FILE, SPLITS_FILE, MANIFEST_FILE)


@dataclass
class Finding:
    """One problem: the file it is in, what is wrong, and whether --repair fixed it."""

    file: str
    problem: str
    repaired: bool = False


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generation_problems(gen: Path) -> list[str]:
    """What is wrong with one generation folder (empty when it is whole)."""
    missing = [name for name in GENERATION_FILES if not (gen / name).is_file()]
    if missing:
        return [f"{gen / name}: missing" for name in missing]
    try:
        manifest = json.loads((gen / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as err:
        return [f"{gen / MANIFEST_FILE}: damaged ({err})"]
    out = []
    for name, digest in manifest.get("checksums", {}).items():
        if sha256(gen / name) != digest:
            out.append(f"{gen / name}: changed since it was written (checksum differs)")
    return out


def check_store(ws: Paths, repair: bool) -> list[Finding]:
    """CURRENT, the live generation's files and splits, and leftovers of crashed writes."""
    root = ws.store
    if not root.exists():
        return []
    findings = []
    pointer = root / "CURRENT"
    name = pointer.read_text(errors="replace").strip() if pointer.exists() else ""
    live = root / name if name.startswith("gen-") and (root / name).is_dir() else None
    if live is None or generation_problems(live):
        findings += _repair_pointer(root, live, repair)
        live = root / pointer.read_text().strip() if findings[-1].repaired else live
    for stale in sorted(root.glob("*gen-*")):
        if live is None or stale.name != live.name:
            findings.append(Finding(str(stale), "left by a crashed write", repair))
    if repair:
        for finding in findings:
            if finding.problem == "left by a crashed write":
                _remove(Path(finding.file))
    if live is not None:
        findings += _check_live(ws)
    return findings


def _repair_pointer(root: Path, live: Path | None, repair: bool) -> list[Finding]:
    """CURRENT names no whole generation: point it at the newest whole one (--repair)."""
    problems = generation_problems(live) if live is not None else []
    problem = "; ".join(problems) or "names no generation of the store"
    whole = [g for g in sorted(root.glob("gen-*"), reverse=True) if not generation_problems(g)]
    if not whole:
        return [
            Finding(
                str(root / "CURRENT"),
                f"{problem}; no whole generation is left: "
                "ingest the exports again into a new --home",
            )
        ]
    if repair and (live is None or live != whole[0]):
        write_text(root / "CURRENT", whole[0].name)
        return [Finding(str(root / "CURRENT"), f"{problem}; now names {whole[0].name}", True)]
    return [Finding(str(root / "CURRENT"), f"{problem}; --repair points it at {whole[0].name}")]


def _check_live(ws: Paths) -> list[Finding]:
    """The live generation reads, and its splits agree with its data."""
    store = Store(ws)
    try:
        dev, sealed, splits = store.read_dev(), store.read_sealed(), store.read_splits()
        store.read_manifest()
    except ViewcastError as err:
        return [Finding(str(err).split(": ", 1)[0], str(err).split(": ", 1)[-1])]
    out = []
    for table, name in ((dev, DEV_FILE), (sealed, SEALED_FILE)):
        starts = splits.test_start(table.names.astype(str))[table.code]
        wrong = (table.day >= starts) if name == DEV_FILE else (table.day < starts)
        if wrong.any():
            out.append(
                Finding(
                    str(store.generation() / name),
                    "days on the wrong side of a "
                    "split boundary: ingest the exports again into a new --home",
                )
            )
    return out


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def require_whole(findings: list[Finding], ws: Paths, repaired: bool) -> None:
    """ViewcastError (exit 2) while any finding is left unrepaired."""
    left = [f for f in findings if not f.repaired]
    if left:
        hint = "" if repaired else " (--repair fixes what is safe)"
        raise ViewcastError(f"{len(left)} problem(s) left in {ws.home}{hint}")
