"""The fake APIs on a local server, and the environment that points viewcast at them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.data.workspace import Paths
from pipeline.sources import oauth
from tests.sources.fake_apis import SCOPE, FakeApis, serve


@pytest.fixture
def apis(monkeypatch) -> Iterator[FakeApis]:
    """The fake Wikimedia, YouTube and token endpoints; viewcast's base URLs point at them,
    retries wait nothing, and no proxy from the machine's environment gets in the way."""
    fake = FakeApis()
    server, root = serve(fake)
    fake.root = root
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("VIEWCAST_WIKIMEDIA_URL", f"{root}/wikimedia")
    monkeypatch.setenv("VIEWCAST_YOUTUBE_URL", f"{root}/youtube")
    monkeypatch.setenv("VIEWCAST_GOOGLE_TOKEN_URL", f"{root}/token")
    monkeypatch.setenv("VIEWCAST_PULL_BACKOFF", "0")
    monkeypatch.setenv("VIEWCAST_CONTACT", "tests@viewcast.invalid")
    # oauthlib refuses a plain-http token endpoint unless told: the local server is http
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    yield fake
    server.shutdown()
    server.server_close()


def write_token(home: Path, apis: FakeApis, expired: bool = False) -> Path:
    """A token file as `viewcast auth youtube` leaves it (google-auth's authorized-user JSON)."""
    access = apis.new_access_token()
    refresh = "1//fake-refresh-token"
    apis.refresh_tokens.add(refresh)
    info = {
        "token": access,
        "refresh_token": refresh,
        "token_uri": f"{apis.root}/token",
        "client_id": "fake-client.apps.googleusercontent.com",
        "client_secret": "fake-secret",
        "scopes": [SCOPE],
        "expiry": "2000-01-01T00:00:00Z" if expired else "2999-01-01T00:00:00Z",
    }
    path = oauth.token_path(Paths(home))
    oauth.save_token(path, info)
    return path


def client_secrets(path: Path, apis: FakeApis) -> Path:
    """A desktop app's OAuth client file, its endpoints on the local server."""
    path.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "fake-client.apps.googleusercontent.com",
                    "client_secret": "fake-secret",
                    "auth_uri": f"{apis.root}/auth",
                    "token_uri": f"{apis.root}/token",
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    return path
