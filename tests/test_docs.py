"""docs/cli.md is what the Typer app generates today; the README stays short."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_reference_is_generated_from_the_app(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    command = [sys.executable, "-m", "typer", "pipeline.cli", "utils", "docs", "--name", "viewcast"]
    subprocess.run([*command, "--output", str(out)], check=True, capture_output=True, cwd=ROOT)
    stale = "docs/cli.md is stale: run `make docs`"
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), stale
    assert "viewcast forecast" in out.read_text() and "--drift-ratio" in out.read_text()


def test_the_readme_is_short_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for page in ("guide", "daily", "team", "lecture", "cli"):
        assert f"docs/{page}.md" in readme and (ROOT / "docs" / f"{page}.md").is_file()
