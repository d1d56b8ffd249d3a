"""`viewcast auth youtube`: the installed-app flow against a local token endpoint, with a browser
(a simulated one follows the consent redirect) and without (the address pasted back)."""

from __future__ import annotations

import json
import stat
import threading
import urllib.request
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from pipeline.data.errors import AuthError
from pipeline.data.workspace import Paths
from pipeline.sources import oauth
from tests.conftest import invoke
from tests.sources.fixtures import client_secrets


def consent(apis, url: str) -> str:
    """What Google does once the person allows access: a code, sent back with the state."""
    query = parse_qs(urlparse(url).query)
    assert query["scope"] == [oauth.SCOPE] and query["access_type"] == ["offline"]
    assert query["code_challenge_method"] == ["S256"], "PKCE"
    apis.codes.add("4/fake-code")
    back = {"state": query["state"][0], "code": "4/fake-code", "scope": oauth.SCOPE}
    return f"{query['redirect_uri'][0]}?{urlencode(back)}"


def check_token(home, apis) -> dict:
    path = oauth.token_path(Paths(home))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] in apis.refresh_tokens and saved["token"] in apis.access_tokens
    return saved


def test_without_a_browser_the_address_is_pasted_back(apis, home, tmp_path, monkeypatch):
    secrets = client_secrets(tmp_path / "client.json", apis)
    shown: list[str] = []

    def person(url: str) -> str:
        shown.append(url)
        return consent(apis, url)

    path = oauth.authorize(Paths(home), secrets, browser=False, ask=person)
    assert path == home / "secrets" / "youtube-token.json"
    assert shown[0].startswith(f"{apis.root}/auth?")
    check_token(home, apis)


def test_the_cli_shows_the_address_and_reads_the_answer(apis, home, tmp_path):
    """`viewcast auth youtube --no-browser` in its own process, as on a server: the consent
    address on stderr, the address the browser reached typed on stdin, the token never shown."""
    import os
    import subprocess
    import sys

    secrets = client_secrets(tmp_path / "client.json", apis)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "--home",
            str(home),
            "auth",
            "youtube",
            "--client-secrets",
            str(secrets),
            "--no-browser",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    url = ""
    while not url.startswith("http"):
        url = proc.stderr.readline().strip()
        assert url or proc.poll() is None, proc.stderr.read()
    out, err = proc.communicate(consent(apis, url) + "\n", timeout=60)
    assert proc.returncode == 0, err
    saved = check_token(home, apis)
    assert saved["token"] not in out + err and saved["refresh_token"] not in out + err
    assert "(mode 0600)" in out


def test_with_a_browser_a_local_server_takes_the_redirect(apis, home, tmp_path, monkeypatch):
    secrets = client_secrets(tmp_path / "client.json", apis)

    class Browser:
        def open(self, url, new=0, autoraise=True):  # follows the consent redirect, as a browser
            back = consent(apis, url)
            threading.Thread(target=lambda: urllib.request.urlopen(back).read()).start()
            return True

    import webbrowser

    monkeypatch.setattr(webbrowser, "get", lambda using=None: Browser())
    oauth.authorize(Paths(home), secrets, browser=True)
    check_token(home, apis)


def test_a_bad_client_file_or_a_refused_code_is_one_line(apis, home, tmp_path):
    missing = invoke(home, "auth", "youtube", "--client-secrets", tmp_path / "none.json")
    assert missing.exit_code == 2 and missing.stderr.strip().endswith("none.json: no such file")
    web = tmp_path / "web.json"
    web.write_text(json.dumps({"other": {}}))
    bad = invoke(home, "auth", "youtube", "--client-secrets", web)
    assert bad.exit_code == 2 and "not an OAuth client file of a desktop app" in bad.stderr
    secrets = client_secrets(tmp_path / "client.json", apis)
    with pytest.raises(AuthError, match="authorisation failed"):
        oauth.authorize(Paths(home), secrets, browser=False, ask=lambda url: "4/wrong-code")
    assert not oauth.token_path(Paths(home)).exists()


def test_save_token_is_never_readable_by_others(tmp_path):
    path = tmp_path / "secrets" / "t.json"
    oauth.save_token(path, {"token": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    oauth.check_private(path)
    path.chmod(0o640)
    with pytest.raises(AuthError, match=r"readable by others \(mode 0640\)"):
        oauth.check_private(path)
