"""The YouTube token: obtained once by the installed-app OAuth flow, kept in the workspace's
secrets/ (file 0600, folder 0700), refreshed by google-auth when it expires.

The token is never printed, logged or sent to MLflow, and a token file that others can read is
refused, as ssh refuses a private key. Errors name the file, never its content.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.data.errors import AuthError, SourceDownError, ViewcastError
from pipeline.data.workspace import Paths

SCOPE = "https://www.googleapis.com/auth/yt-analytics.readonly"  # read-only analytics
CONSOLE_REDIRECT = "http://localhost:8085/"  # nothing listens: the person copies the address
TOKEN_URL_ENV = "VIEWCAST_GOOGLE_TOKEN_URL"  # Google's token endpoint, for a proxy or a test
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


def token_url() -> str:
    """Where tokens are refreshed: Google's endpoint unless $VIEWCAST_GOOGLE_TOKEN_URL says
    otherwise (never the token file's own: google-auth ignores it too, so a planted file
    cannot send the refresh token elsewhere)."""
    return os.environ.get(TOKEN_URL_ENV) or GOOGLE_TOKEN_URL


def token_path(ws: Paths) -> Path:
    return ws.secrets / "youtube-token.json"


def check_private(path: Path) -> None:
    """Refuse a token file (or its folder) that another user may read or that is not ours."""
    info = path.stat()
    if info.st_uid != os.getuid():
        raise AuthError(f"{path}: owned by another user; refusing to read a token from it")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise AuthError(
            f"{path}: readable by others (mode {mode:04o}); run `chmod 600 {path}` "
            "(or `viewcast auth youtube` again), as ssh asks of a private key"
        )


def save_token(path: Path, info: dict) -> None:
    """Write the token atomically as 0600 in a 0700 folder: never a moment readable by others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".token.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def credentials(ws: Paths):
    """The workspace's YouTube credentials, valid now: refreshed (and saved) when expired."""
    # lazy: google-auth, only for the YouTube source
    from google.oauth2.credentials import Credentials

    path = token_path(ws)
    if not path.exists():
        raise AuthError(
            f"no YouTube token at {path}: run `viewcast auth youtube --client-secrets FILE` first"
        )
    check_private(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        saved = Credentials.from_authorized_user_info(info, [SCOPE])
        creds = saved.with_token_uri(token_url())
        creds.expiry = saved.expiry  # the copy forgets it: an expired token must look expired
    except (ValueError, KeyError, TypeError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AuthError(
            f"{path}: not a token file ({problem[:120]}); run `viewcast auth youtube`"
        ) from None
    if not creds.valid:
        refresh(ws, creds)
    return creds


def refresh(ws: Paths, creds) -> None:
    """Ask the token endpoint for a new access token; save it. A refused refresh token (revoked,
    expired) is an AuthError; an endpoint that does not answer is a SourceDownError."""
    # lazy: google-auth, only for the YouTube source
    from google.auth.exceptions import RefreshError, TransportError
    from google.auth.transport.requests import Request

    if not creds.refresh_token:
        raise AuthError(
            "the YouTube token expired and holds no refresh token: run `viewcast auth youtube`"
        )
    try:
        creds.refresh(Request())
    except RefreshError as err:
        reason = _reason(err)
        raise AuthError(
            f"YouTube token refused by the token endpoint ({reason}): revoked or expired; "
            "run `viewcast auth youtube --client-secrets FILE` again"
        ) from None
    except TransportError as err:
        raise SourceDownError(
            f"YouTube token endpoint unreachable ({type(err).__name__}); nothing was written"
        ) from None
    save_token(token_path(ws), json.loads(creds.to_json()))


def authorize(
    ws: Paths,
    client_secrets: Path,
    browser: bool = True,
    ask: Callable[[str], str] | None = None,
) -> Path:
    """The installed-app flow (read-only analytics scope): with a browser, a local server on a
    free port receives Google's redirect; without one (a server), `ask(url)` shows the consent
    URL and returns the address the browser was sent to afterwards (or the bare code)."""
    # lazy: google-auth-oauthlib, only for `viewcast auth youtube`
    from google_auth_oauthlib.flow import InstalledAppFlow

    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=[SCOPE])
    except FileNotFoundError:
        raise ViewcastError(f"{client_secrets}: no such file") from None
    except (ValueError, KeyError, json.JSONDecodeError) as err:
        raise ViewcastError(
            f"{client_secrets}: not an OAuth client file of a desktop app ({_first(err)}); "
            "download it from Google Cloud's Credentials page"
        ) from None
    if os.environ.get(TOKEN_URL_ENV):
        flow.client_config["token_uri"] = token_url()
    try:
        if browser:
            creds = flow.run_local_server(
                host="localhost",
                port=0,
                open_browser=True,
                authorization_prompt_message="Opening the consent page; if no browser opens, "
                "visit: {url}",
                success_message="viewcast is authorised; you may close this tab.",
                prompt="consent",
            )
        else:
            flow.redirect_uri = CONSOLE_REDIRECT
            url, _ = flow.authorization_url(prompt="consent")
            if ask is None:
                raise ViewcastError("no browser and no way to ask for the code")
            pasted = ask(url).strip()
            if "code=" in pasted:  # oauthlib insists on https, as run_local_server does too
                flow.fetch_token(authorization_response=pasted.replace("http:", "https:", 1))
            else:
                flow.fetch_token(code=pasted)
            creds = flow.credentials
    except ViewcastError:
        raise
    except Exception as err:  # oauthlib's errors: denied consent, a wrong code, a bad state
        raise AuthError(f"authorisation failed ({type(err).__name__}: {_first(err)})") from None
    path = token_path(ws)
    save_token(path, json.loads(creds.to_json()))
    return path


def _reason(err: Exception) -> str:
    """google-auth's RefreshError carries (message, response): the OAuth error code only."""
    args = getattr(err, "args", ())
    if len(args) > 1 and isinstance(args[1], dict) and args[1].get("error"):
        return str(args[1]["error"])
    return _first(err)


def _first(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:160]
