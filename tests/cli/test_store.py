"""viewcast drop: series out of the store, all or none, refused after finalize unless --force."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import tracking
from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from tests.conftest import snapshot, synthetic_views, write_totals


def test_drop_takes_series_out_until_the_test_is_finalized(home: Path, cli) -> None:
    ws = Paths(home)
    for seed, name in ((0, "alpha"), (1, "beta"), (2, "gamma")):
        write_totals(home.parent / f"{name}.csv", synthetic_views(300, seed=seed))
        assert cli("ingest", home.parent / f"{name}.csv", "--name", name).exit_code == 0
    before = snapshot(ws.store)
    refused = cli("drop", "alpha", "nope")
    assert refused.exit_code == 2 and "no series 'nope' in the store" in refused.stderr
    assert snapshot(ws.store) == before, "a refused drop writes nothing"
    done = cli("drop", "alpha")
    assert done.exit_code == 0, done.output
    assert "dropped alpha from the store; 2 series left" in done.stdout
    store = Store(ws)
    assert list(store.read_manifest()["series"]) == ["beta", "gamma"]
    assert set(store.read_splits().series) == {"beta", "gamma"}
    assert set(store.read_dev().names) == {"beta", "gamma"}
    assert set(store.read_sealed().names) == {"beta", "gamma"}
    assert tracking.runs(ws, tracking.Stage.DROP) == [], "before finalize: nothing to record"

    ws.reports.mkdir(exist_ok=True)
    ws.final_report.write_text(json.dumps({"champion": {}}))  # as `viewcast finalize` leaves it
    refused = cli("drop", "nope")  # an unknown name is that, finalized or not
    assert refused.exit_code == 2 and "no series 'nope' in the store" in refused.stderr
    refused = cli("drop", "beta")
    assert refused.exit_code == 2 and "already finalized" in refused.stderr
    assert "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(Store(ws).read_manifest()["series"]) == ["beta", "gamma"]
    forced = cli("drop", "beta", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout) == {"dropped": ["beta"], "left": ["gamma"]}
    (run,) = tracking.runs(ws, tracking.Stage.DROP)
    assert run.tags["dropped"] == "beta" and run.tags["forced"] == "True"
