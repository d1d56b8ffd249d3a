"""`viewcast check [--repair]`: findings after crashes and damage, and what --repair fixes."""

from __future__ import annotations

import json
from pathlib import Path


def store_of(home: Path) -> tuple[Path, Path]:
    store = home / "data" / "store"
    return store, store / (store / "CURRENT").read_text().strip()


def test_a_whole_workspace_checks_clean(swept: Path, cli):
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert "are whole" in result.stdout
    assert json.loads(cli("check", "--json").stdout) == []


def test_leftovers_of_a_crashed_write_are_found_and_removed(two_series: Path, cli):
    store, gen = store_of(two_series)
    (store / ".gen-crashed").mkdir()
    (store / "gen-000099").mkdir()
    found = cli("check", "--json")
    assert found.exit_code == 2
    assert sorted(Path(f["file"]).name for f in json.loads(found.stdout)) == [
        ".gen-crashed",
        "gen-000099",
    ]
    assert cli("check", "--repair").exit_code == 0
    assert sorted(p.name for p in store.iterdir()) == ["CURRENT", gen.name]
    assert cli("check").exit_code == 0


def test_a_changed_file_fails_its_checksum(two_series: Path, cli):
    _, gen = store_of(two_series)
    splits = json.loads((gen / "splits.json").read_text())
    splits["val_days"] += 1  # still valid JSON: only the checksum can tell
    (gen / "splits.json").write_text(json.dumps(splits))
    (finding,) = json.loads(cli("check", "--json").stdout)
    assert "splits.json: changed since it was written" in finding["problem"]
    assert "no whole generation is left" in finding["problem"] and not finding["repaired"]
    result = cli("check", "--repair")
    assert result.exit_code == 2 and "1 problem(s) left" in result.stderr


def test_a_broken_current_points_at_the_newest_whole_generation(two_series: Path, cli):
    store, gen = store_of(two_series)
    (store / "CURRENT").write_text("gen-000042")
    refused = cli("status")
    assert refused.exit_code == 2 and "run `viewcast check`" in refused.stderr
    assert cli("check").exit_code == 2
    repaired = cli("check", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert (store / "CURRENT").read_text().strip() == gen.name
    assert cli("status").exit_code == 0
