"""OAuth 2 for Mastodon clients: apps, scopes, authorization codes (with PKCE), tokens.

Written here rather than taken from an OAuth library because the rules are Mastodon's own
(scope hierarchy, out-of-band redirect, app tokens that may register accounts, the password
grant behind a setting) and the whole server side is a few small functions over our stores.
Tokens and codes are random 256-bit strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

from roost.clock import now_ms
from roost.domain.errors import InvalidInput
from roost.domain.events import SessionsEnded, TokenRevoked
from roost.domain.models import Account, App, AuthCode, Token
from roost.ids import new_id
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE_LIFETIME_MS = 10 * 60 * 1000

TOP_SCOPES = ("read", "write", "follow", "push", "profile")
SUB_SCOPES = {
    "read": ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
             "mutes", "notifications", "search", "statuses"),
    "write": ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
              "follows", "lists", "media", "mutes", "notifications", "reports", "statuses"),
}
# The deprecated "follow" scope covers these (Mastodon keeps honouring it).
FOLLOW_SCOPE_COVERS = ("read:follows", "write:follows", "read:blocks", "write:blocks",
                       "read:mutes", "write:mutes")
ADMIN_SCOPES = ("admin:read", "admin:write", "admin:read:accounts", "admin:write:accounts")
ALL_SCOPES = frozenset(
    [*TOP_SCOPES, *(f"{top}:{sub}" for top, subs in SUB_SCOPES.items() for sub in subs),
     *ADMIN_SCOPES]
)


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` code, human description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def parse_scopes(value: str | None, default: str = "read") -> list[str]:
    scopes = (value or default).replace("+", " ").split()
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise OAuthError("invalid_scope",
                         "The requested scope is invalid, unknown, or malformed.")
    return list(dict.fromkeys(scopes))


def grants(granted: list[str], required: str) -> bool:
    """Whether a token with ``granted`` scopes may do what needs ``required``: the scope
    itself, a broader one (``write`` covers ``write:statuses``, ``admin:write`` covers
    ``admin:write:accounts``), or the legacy ``follow``."""
    if any(required == g or required.startswith(g + ":") for g in granted):
        return True
    return "follow" in granted and required in FOLLOW_SCOPE_COVERS


def within(requested: list[str], allowed: list[str]) -> bool:
    return all(grants(allowed, s) for s in requested)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# How often a web session's row is renewed while the session is in use, at most.
SESSION_RENEW_MS = 86_400_000


def session_hash(secret: str) -> str:
    """What a web session is stored and announced as: the hash of the cookie's secret."""
    return _digest(secret)


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "plain":
        return secrets.compare_digest(verifier, challenge)
    digest = hashlib.sha256(verifier.encode()).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(computed, challenge)


@dataclass
class IssuedToken:
    access_token: str
    refresh_token: str | None
    scopes: list[str]
    created_at: int


@dataclass
class Authenticated:
    """Who a bearer token speaks for."""

    token: Token
    account: Account | None
    app: App | None


class RecentTokens:
    """Tokens this process authenticated in the last ``ttl`` seconds, by digest.

    Every API request authenticates, and the lookup (token, account, counters, app) was a
    third of the server's CPU in a follow storm and a fifth of a home read: most of it the
    hand-off to a reader thread and back, not the SQL. A revoked token is forgotten at once:
    by this process when it revoked it, by the others when the revocation's broadcast arrives
    (``forget_revoked_tokens``), and, were that lost, once ``ttl`` has passed.
    The account rides along for its id and settings; whatever a response shows of it
    (counts, profile) is read afresh by the route. Only valid tokens are kept, at most
    ``limit`` of them (the oldest go first), so guessing tokens fills nothing.
    """

    def __init__(self, ttl: float, limit: int = 10_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._entries: dict[str, tuple[float, Authenticated]] = {}

    def get(self, digest: str) -> Authenticated | None:
        found = self._entries.get(digest)
        if found is None:
            return None
        if time.monotonic() - found[0] >= self.ttl:
            del self._entries[digest]
            return None
        return found[1]

    def put(self, digest: str, auth: Authenticated) -> None:
        if self.ttl <= 0:
            return
        self._entries.pop(digest, None)
        self._entries[digest] = (time.monotonic(), auth)
        while len(self._entries) > self.limit:
            del self._entries[next(iter(self._entries))]

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, token_id: int) -> None:
        for digest in [d for d, (_, a) in self._entries.items() if a.token.id == token_id]:
            del self._entries[digest]


class OAuthService:
    def __init__(self, db: Database, stores: Stores, *, auth_cache_seconds: float = 0.0) -> None:
        self.db = db
        self.stores = stores
        self.recent = RecentTokens(auth_cache_seconds)

    async def create_app(self, name: str, redirect_uris: list[str], scopes: str | None,
                         website: str | None) -> App:
        if not name.strip():
            raise InvalidInput("Validation failed: Application name can't be blank")
        if len(name) > 200:
            raise InvalidInput("Validation failed: Application name is too long")
        if website and len(website) > 500:
            raise InvalidInput("Validation failed: Website is too long (maximum is 500 characters)")
        uris = [u.strip() for u in redirect_uris if u.strip()]
        if not uris:
            raise InvalidInput("Validation failed: Redirect URI can't be blank")
        for uri in uris:
            if uri != OOB and "://" not in uri:
                raise InvalidInput("Validation failed: Redirect URI must be an absolute URI.")
        try:
            app_scopes = parse_scopes(scopes)
        except OAuthError as exc:
            raise InvalidInput(f"Validation failed: Scopes {exc.description}") from exc
        app = App(id=new_id(), name=name.strip(), website=website or None, redirect_uris=uris,
                  scopes=app_scopes, client_id=secrets.token_urlsafe(32),
                  client_secret=secrets.token_urlsafe(32), created_at=now_ms())
        await self.db.write(lambda tx: self.stores.oauth.insert_app(tx, app))
        return app

    async def app_by_client_id(self, client_id: str) -> App | None:
        return await self.db.read(lambda tx: self.stores.oauth.app_by_client_id(tx, client_id))

    async def client(self, client_id: str | None, client_secret: str | None) -> App:
        """The app these client credentials belong to, or ``invalid_client``."""
        app = await self.app_by_client_id(client_id or "")
        if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
            raise OAuthError("invalid_client", "Client authentication failed due to unknown "
                             "client, no client authentication included, or unsupported "
                             "authentication method.", 401)
        return app

    async def issue_code(self, app: App, account_id: int, redirect_uri: str, scopes: list[str],
                         code_challenge: str | None, code_challenge_method: str | None) -> str:
        code = secrets.token_urlsafe(32)
        record = AuthCode(app.id, account_id, redirect_uri, scopes, code_challenge,
                          code_challenge_method, now_ms() + CODE_LIFETIME_MS)
        await self.db.write(lambda tx: self.stores.oauth.insert_code(tx, _digest(code), record))
        return code

    def _insert_token(self, tx: Tx, app_id: int | None, account_id: int | None,
                      scopes: list[str], refreshable: bool) -> IssuedToken:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32) if refreshable else None
        token = Token(new_id(), app_id, account_id, scopes, now_ms())
        self.stores.oauth.insert_token(tx, token, _digest(access),
                                       _digest(refresh) if refresh else None)
        return IssuedToken(access, refresh, scopes, token.created_at)

    async def tokens_for_many(self, account_ids: list[int],
                              scopes: list[str]) -> list[IssuedToken]:
        """Personal access tokens for many accounts at once (admin tools)."""
        return await self.db.write(lambda tx: [
            self._insert_token(tx, None, account_id, scopes, False) for account_id in account_ids
        ])

    async def token_for(self, app_id: int | None, account_id: int | None, scopes: list[str],
                        refreshable: bool = True) -> IssuedToken:
        return await self.db.write(
            lambda tx: self._insert_token(tx, app_id, account_id, scopes, refreshable)
        )

    async def exchange_code(self, app: App, code: str, redirect_uri: str | None,
                            code_verifier: str | None) -> IssuedToken:
        def exchange(tx: Tx) -> IssuedToken:
            record = self.stores.oauth.take_code(tx, _digest(code))
            invalid = OAuthError("invalid_grant", "The provided authorization grant is invalid, "
                                 "expired, revoked, does not match the redirection URI used in "
                                 "the authorization request, or was issued to another client.")
            if record is None or record.app_id != app.id or record.expires_at < now_ms():
                raise invalid
            if redirect_uri is not None and redirect_uri != record.redirect_uri:
                raise invalid
            if record.code_challenge and (not code_verifier or not pkce_matches(
                code_verifier, record.code_challenge, record.code_challenge_method or "plain"
            )):
                raise invalid
            return self._insert_token(tx, app.id, record.account_id, record.scopes, True)

        try:
            return await self.db.write(exchange)
        except OAuthError:
            raise

    async def refresh(self, app: App, refresh_token: str, scopes: str | None) -> IssuedToken:
        def rotate(tx: Tx) -> IssuedToken:
            old = self.stores.oauth.token_by_refresh(tx, _digest(refresh_token))
            if old is None or old.app_id != app.id:
                raise OAuthError("invalid_grant", "The refresh token is invalid.")
            wanted = parse_scopes(scopes, " ".join(old.scopes)) if scopes else old.scopes
            if not within(wanted, old.scopes):
                raise OAuthError("invalid_scope", "The requested scope exceeds the original.")
            self.stores.oauth.revoke(tx, old.id, now_ms())
            emit(tx, TokenRevoked(old.id))
            revoked.append(old.id)
            return self._insert_token(tx, app.id, old.account_id, wanted, True)

        revoked: list[int] = []
        issued = await self.db.write(rotate)
        for token_id in revoked:
            self.recent.forget(token_id)
        return issued

    async def revoke(self, app: App, token: str) -> None:
        """RFC 7009: revoke an access or refresh token of this client; unknown ones are fine."""

        def apply(tx: Tx) -> None:
            found = (self.stores.oauth.token_by_hash(tx, _digest(token))
                     or self.stores.oauth.token_by_refresh(tx, _digest(token)))
            if found is not None and found.app_id == app.id:
                self.stores.oauth.revoke(tx, found.id, now_ms())
                emit(tx, TokenRevoked(found.id))
                revoked.append(found.id)

        revoked: list[int] = []
        await self.db.write(apply)
        for token_id in revoked:
            self.recent.forget(token_id)

    # -- browser sessions of the web interface ---------------------------------------------
    # A signed-in browser holds a random secret (in its signed session cookie); the row kept
    # for it (hashed, as tokens are) is what makes the session live, so that signing out or
    # changing the password ends it even where a copy of the cookie survives.

    async def start_session(self, account_id: int) -> str:
        """A new session for ``account_id``; returns its secret."""
        secret = secrets.token_urlsafe(32)
        await self.db.write(lambda tx: self.stores.oauth.insert_session(
            tx, _digest(secret), account_id, now_ms()))
        return secret

    async def session_account(self, secret: str) -> Account | None:
        """The account a live session belongs to (one read, as ``authenticate``); None once
        the session has ended or the account is gone."""

        def read(tx: Tx) -> Account | None:
            account_id = self.stores.oauth.session_account(tx, _digest(secret))
            if account_id is None:
                return None
            return self.stores.accounts.by_ids(tx, [account_id]).get(account_id)

        return await self.db.read(read, snapshot=False, bounded=True)

    async def renew_session(self, secret: str) -> None:
        """The session is in use (called at most every ``SESSION_RENEW_MS``)."""
        await self.db.write(
            lambda tx: self.stores.oauth.renew_session(tx, _digest(secret), now_ms()))

    def sweep_sessions(self, tx: Tx, max_age_ms: int) -> int:
        """Delete the sessions unused for ``max_age_ms`` (their cookies have expired too).
        A row is renewed at most every ``SESSION_RENEW_MS`` while its cookie's expiry slides
        with every page, so rows get that much longer: never swept before their cookie."""
        return self.stores.oauth.delete_sessions_before(
            tx, now_ms() - max_age_ms - SESSION_RENEW_MS)

    async def end_session(self, secret: str) -> None:
        def apply(tx: Tx) -> None:
            self.stores.oauth.delete_session(tx, session_hash(secret))
            emit(tx, SessionsEnded((session_hash(secret),)))

        await self.db.write(apply)

    async def end_other_sessions(self, account_id: int, keep: str | None) -> None:
        """End every session of ``account_id`` but ``keep`` (a password change)."""
        keep_hash = session_hash(keep) if keep else None

        def apply(tx: Tx) -> None:
            ended = self.stores.oauth.delete_sessions_of(tx, account_id, keep_hash)
            if ended:
                emit(tx, SessionsEnded(tuple(ended)))

        await self.db.write(apply)

    async def in_force(self, token_id: int) -> bool:
        """Whether the token is still valid, read afresh (never from ``recent``): a stream
        asks once it listens for the token's revocation, so a revocation between its
        authentication and then is not missed."""
        return await self.db.read(lambda tx: self.stores.oauth.token_in_force(tx, token_id),
                                  snapshot=False, bounded=True)

    async def authenticate(self, bearer: str) -> Authenticated | None:
        digest = _digest(bearer)
        recent = self.recent.get(digest)
        if recent is not None:
            return recent

        def read(tx: Tx) -> Authenticated | None:
            found = self.stores.oauth.credentials(tx, digest)
            if found is None:
                return None
            token, app, account = found
            if token.account_id is not None and account is None:
                return None  # (its account is gone)
            return Authenticated(token, account, app)

        # One statement: no snapshot needed.
        auth = await self.db.read(read, snapshot=False, bounded=True)
        if auth is not None:
            self.recent.put(digest, auth)
        return auth
