"""The registry of sources (data/sources.json): one entry per source, names never shared,
written only when it changed, a damaged file named in one line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.data.workspace import Paths
from pipeline.sources import registry, wikipedia, youtube
from pipeline.sources.registry import Revision


def test_registering_the_same_source_twice_keeps_one_and_its_state():
    first = wikipedia.source("Peyton Manning")
    known, _ = registry.register([], first)
    pulled = replace(known[0], final_through="2020-01-01", last_day="2020-01-01")
    known = registry.updated(known, pulled)
    again, source = registry.register(
        known,
        wikipedia.source("https://en.wikipedia.org/wiki/Peyton_Manning", base_url="http://mirror"),
    )
    assert len(again) == 1 and source.final_through == "2020-01-01"
    assert source.base_url == "http://mirror", "a new --base-url replaces the old"
    with pytest.raises(ViewcastError, match="already fills series 'Peyton_Manning'"):
        registry.register(again, wikipedia.source("Peyton Manning", name="pm"))
    with pytest.raises(ViewcastError, match="series 'Peyton_Manning' is already filled by"):
        registry.register(again, youtube.source(name="Peyton_Manning"))
    more, _ = registry.register(
        again, wikipedia.source("Peyton Manning", project="de.wikipedia", name="pm-de")
    )
    assert [s.name for s in more] == ["Peyton_Manning", "pm-de"]


def test_the_file_round_trips_and_is_written_only_on_change(tmp_path):
    ws = Paths(tmp_path)
    source = replace(
        youtube.source(),
        last_day="2020-01-05",
        final_through="2020-01-02",
        revisions=(Revision("2020-01-04", 10.0, 12.0, "2020-01-06T07:00:00+00:00"),),
    )
    assert registry.save(ws, [source]) is True
    assert registry.load(ws) == [source]
    mtime = ws.sources.stat().st_mtime_ns
    assert registry.save(ws, [source]) is False and ws.sources.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    "text", ["{", '{"version": 9, "sources": []}', '{"version": 1, "sources": [{"kind": "ftp"}]}']
)
def test_a_damaged_registry_is_one_line(tmp_path, text):
    ws = Paths(tmp_path)
    ws.sources.parent.mkdir(parents=True)
    ws.sources.write_text(text)
    with pytest.raises(ViewcastError, match=r"sources.json: damaged \(.+\); restore it or pull"):
        registry.load(ws)
