"""Browser sessions for the web interface: a signed session cookie, CSRF tokens, and the
security headers (Content-Security-Policy) of every page.

The session is a cookie signed with the instance's secret key (Starlette's
``SessionMiddleware``, itsdangerous underneath): it holds the signed-in account's id, the
session's secret, its CSRF token and when it was last renewed, and nothing else. The secret
names a row on the server (``OAuthService.start_session``, stored hashed): signing out deletes
it, and a password change deletes the account's other sessions, so a copy of the cookie kept
elsewhere signs in no more. It is HttpOnly, SameSite=Lax, Secure when the public URL is
https, and expires after ``ROOST_SESSION_DAYS`` without use. API paths (``/api/...`` except
streaming, ``/oauth/token``) never see it: the API authenticates bearer tokens only, so a
browser's cookie can never act on the API by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roost.domain.errors import Forbidden
from roost.domain.models import Account
from roost.domain.oauth import SESSION_RENEW_MS
from roost.runtime import Roost
from roost.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "roost_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Paths that never carry a session: the API (bearer tokens only), the OAuth token endpoints
# (client credentials), and static files. Streaming is the exception: a browser page listens
# to its live updates with its session.
_SESSIONLESS = ("/api/", "/oauth/token", "/oauth/revoke", "/static/", "/avatars/", "/headers/",
                "/.well-known/", "/nodeinfo")
_STREAMING = ("/api/v1/streaming", "/api/v1/roost/streaming")
_SAFE_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[a-z0-9.\-:\[\]]+$", re.IGNORECASE)
_SAFE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$", re.IGNORECASE)


def secret_key(settings: Settings) -> str:
    """``ROOST_SECRET_KEY``, or the key kept in ``<data_dir>/secret_key``, made on first use
    (readable by its owner only) so sessions survive restarts. If the data folder cannot keep
    it, a key for this process only (sessions then end with it), with a warning."""
    if settings.secret_key:
        return settings.secret_key
    try:
        return _kept_key(Path(settings.data_dir) / "secret_key")
    except OSError as exc:
        log.warning("cannot keep a session key in %s (%s): web sessions will not survive a "
                    "restart; set ROOST_SECRET_KEY", settings.data_dir, exc)
        return secrets.token_urlsafe(48)


def _kept_key(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    draft = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    try:
        os.link(draft, path)  # atomic: of two processes starting together, one key wins
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        draft.unlink()
    return key


def content_security_policy(base_url: str, form_targets: tuple[str, ...] = ()) -> str:
    """The policy of every page: nothing inline, nothing from elsewhere. ``form_targets`` are
    extra places a form may lead to (the OAuth page redirects to the app)."""
    parts = urlsplit(base_url)
    live = ("wss://" if parts.scheme == "https" else "ws://") + parts.netloc
    forms = " ".join(("'self'", *form_targets))
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {live}; frame-ancestors 'none'; base-uri 'none'; "
            f"form-action {forms}; object-src 'none'")


def form_target(uri: str) -> str | None:
    """A CSP source for a redirect URI (its origin, or its scheme for an app's own scheme),
    or None if it is not safe to put in a header."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        origin = f"{parts.scheme}://{parts.netloc}"
        return origin if _SAFE_ORIGIN.match(origin) and "@" not in parts.netloc else None
    return f"{parts.scheme}:" if parts.scheme and _SAFE_SCHEME.match(parts.scheme) else None


def uses_session(path: str) -> bool:
    return path.startswith(_STREAMING) or not path.startswith(_SESSIONLESS)


class _SecurityHeaders:
    """Adds the security headers to every response it wraps; a page may set its own CSP."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", self.csp)
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class WebSessions:
    """ASGI middleware: page and streaming paths get the session cookie and the security
    headers; every other path (the API) goes straight to the app, untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        base_url = settings.base_url()
        self.pages = SessionMiddleware(
            _SecurityHeaders(app, content_security_policy(base_url)),
            secret_key=secret_key(settings), session_cookie=SESSION_COOKIE,
            max_age=settings.session_days * 86_400, same_site="lax",
            https_only=base_url.startswith("https://"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and uses_session(scope["path"]):
            await self.pages(scope, receive, send)
        else:
            await self.app(scope, receive, send)


# -- the session's contents ------------------------------------------------------------------


def _session(conn: HTTPConnection) -> dict[str, object] | None:
    session: dict[str, object] | None = conn.scope.get("session")
    return session


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use: a form needs a session even signed out)."""
    session = _session(request)
    if session is None:
        return ""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def same_origin(conn: HTTPConnection, origin: str) -> bool:
    """Whether an ``Origin`` header names this server (as the browser reached it, or its
    public URL)."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = conn.headers.get("host", "")
    public = urlsplit(conn.app.state.roost.settings.base_url())
    return parts.netloc.lower() == host.lower() or (
        (parts.scheme, parts.netloc.lower()) == (public.scheme, public.netloc.lower()))


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse (403) a state-changing request without this session's token (in the form or in
    the ``X-CSRF-Token`` header), or sent from another origin."""
    session = _session(request)
    expected = session.get("csrf") if session is not None else None
    given = request.headers.get(CSRF_HEADER) or submitted or ""
    if not isinstance(expected, str) or not secrets.compare_digest(expected.encode(),
                                                                   given.encode()):
        raise Forbidden("This form has expired or did not come from this site. "
                        "Go back, reload the page and try again.")
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(request, origin):
        raise Forbidden("This form did not come from this site.")


def _roost(conn: HTTPConnection) -> Roost:
    roost: Roost = conn.app.state.roost
    return roost


async def signed_in(conn: HTTPConnection) -> Account | None:
    """The account this connection's session is signed in as, or None."""
    if "me" in conn.state._state:
        cached: Account | None = conn.state.me
        return cached
    account = None
    session = _session(conn)
    uid = session.get("uid") if session else None
    sid = session.get("sid") if session else None
    if session is not None and isinstance(uid, str) and uid.isdigit():
        if isinstance(sid, str):
            account = await _roost(conn).oauth.session_account(sid)
        if account is None or account.id != int(uid):
            # signed out (here or with a copy of this cookie), ended, or the account is gone
            account = None
            session.clear()
        else:
            now = int(time.time() * 1000)
            renewed = session.get("t")
            if not isinstance(renewed, int) or now - renewed > SESSION_RENEW_MS:
                session["t"] = now
                await _roost(conn).oauth.renew_session(str(sid))
            await _roost(conn).accounts.touch(account)
    conn.state.me = account
    return account


async def start_session(request: Request, account: Account) -> None:
    """Sign in: a fresh session (and CSRF token) for ``account``, live until it is ended."""
    await end_session(request)  # (a session signed in before, in this browser)
    sid = await _roost(request).oauth.start_session(account.id)
    request.session.update({"uid": str(account.id), "sid": sid,
                            "csrf": secrets.token_urlsafe(32), "t": int(time.time() * 1000)})
    request.state.me = account


async def end_session(request: Request) -> None:
    """Sign out: the session ends on the server too, so no copy of the cookie signs in."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await _roost(request).oauth.end_session(sid)
    request.session.clear()
    request.state.me = None


async def end_other_sessions(request: Request, account: Account) -> None:
    """End every other session of ``account`` (after its password changed)."""
    sid = request.session.get("sid")
    await _roost(request).oauth.end_other_sessions(account.id,
                                                   sid if isinstance(sid, str) else None)


def flash(request: Request, text: str) -> None:
    """A short message for the next page (after a redirect)."""
    request.session["flash"] = text[:200]


def take_flash(request: Request) -> str | None:
    session = _session(request)
    if session is None or "flash" not in session:
        return None
    text = session.pop("flash")
    return text if isinstance(text, str) else None


def session_secret(conn: HTTPConnection) -> str | None:
    """The secret naming this connection's web session on the server, if it carries one."""
    session = _session(conn)
    sid = session.get("sid") if session else None
    return sid if isinstance(sid, str) else None


async def stream_account(conn: HTTPConnection) -> Account | None:
    """For the streaming endpoints: the session's account, when the connection comes from one
    of this server's own pages. A WebSocket must carry a matching ``Origin`` (browsers always
    send it; this is what stops another site's page from opening the stream with the cookie);
    an EventSource request must not be marked cross-site."""
    if not _session(conn):
        return None
    origin = conn.headers.get("origin")
    if conn.scope["type"] == "websocket":
        if origin is None or not same_origin(conn, origin):
            return None
    else:
        fetch_site = conn.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return None
        if origin is not None and not same_origin(conn, origin):
            return None
    return await signed_in(conn)
