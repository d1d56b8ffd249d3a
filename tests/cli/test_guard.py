"""`guard`: whatever goes wrong in a command is one line on stderr with its exit code."""

from __future__ import annotations


def test_an_unexpected_error_is_one_line_pointing_to_debug(cli, monkeypatch) -> None:
    from pipeline.data import store

    def broken(self):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(store.Store, "read_manifest", broken)
    result = cli("status")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "viewcast: unexpected error (RuntimeError: disk on fire); run `viewcast --debug status "
        "...` for the traceback and please report it"
    ]
    assert "Traceback" not in result.output
    result = cli("--debug", "status")
    assert isinstance(result.exception, RuntimeError)  # the traceback is the caller's to see


def test_a_group_command_is_named_with_its_group(cli, monkeypatch) -> None:
    from pipeline.sources import wikipedia

    def broken(*args, **kwargs):
        raise RuntimeError("socket melted")

    monkeypatch.setattr(wikipedia, "fetch", broken)
    result = cli("pull", "wikipedia", "Foo")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "viewcast: unexpected error (RuntimeError: socket melted); run `viewcast --debug pull "
        "wikipedia ...` for the traceback and please report it"
    )
