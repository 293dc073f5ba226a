"""OAuth applications, authorization codes and tokens in SQL. Secrets are stored hashed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update

from roost.domain.models import Account, App, AuthCode, Token
from roost.storage.database import Tx
from roost.storage.schema import apps, oauth_codes, tokens, web_sessions
from roost.storage.sql.accounts import account_from, account_select, counter_sums
from roost.storage.sql.raw import Raw

# Every authenticated request runs these: on the driver's cursor (raw.py).
_TOKEN_BY_HASH = Raw("SELECT id, app_id, account_id, scopes, created_at FROM tokens"
                     " WHERE token_hash = :token_hash AND revoked_at IS NULL")
# Every page of a signed-in browser runs this.
_SESSION_ACCOUNT = Raw("SELECT account_id FROM web_sessions WHERE session_hash = :session_hash")
_APP_COLUMNS = ("id, name, website, redirect_uris, scopes, client_id, client_secret,"
                " created_at")
_APP_BY_ID = Raw(f"SELECT {_APP_COLUMNS} FROM apps WHERE id = :id")
# Authenticating a token not seen lately: the token with its app and its account (with the
# account's counter sums) in one round trip.
_N_APP_COLUMNS = len(_APP_COLUMNS.split(","))
_CREDENTIALS = Raw(
    "SELECT t.id, t.app_id, t.account_id, t.scopes, t.created_at, "
    + ", ".join(f"a.{c.strip()}" for c in _APP_COLUMNS.split(","))
    + ", " + account_select("u", "c")
    + " FROM tokens t LEFT JOIN apps a ON a.id = t.app_id"
    + " LEFT JOIN accounts u ON u.id = t.account_id LEFT JOIN "
    + counter_sums("account_id = (SELECT account_id FROM tokens WHERE token_hash = :token_hash)")
    + " c ON c.account_id = u.id"
    " WHERE t.token_hash = :token_hash AND t.revoked_at IS NULL")


def _app(row: Any) -> App:
    return App(row.id, row.name, row.website, row.redirect_uris.split("\n"),
               row.scopes.split(), row.client_id, row.client_secret, row.created_at)


def _app_of(row: Sequence[Any]) -> App:
    """An app from ``_APP_COLUMNS``' values."""
    return App(row[0], row[1], row[2], row[3].split("\n"), row[4].split(), row[5], row[6],
               row[7])


def _token(row: Any) -> Token:
    return Token(row.id, row.app_id, row.account_id, row.scopes.split(), row.created_at)


class SqlOAuthStore:
    def insert_app(self, tx: Tx, app: App) -> None:
        tx.execute(apps.insert().values(
            id=app.id, name=app.name, website=app.website,
            redirect_uris="\n".join(app.redirect_uris), scopes=" ".join(app.scopes),
            client_id=app.client_id, client_secret=app.client_secret, created_at=app.created_at,
        ))

    def app_by_client_id(self, tx: Tx, client_id: str) -> App | None:
        row = tx.execute(select(apps).where(apps.c.client_id == client_id)).first()
        return _app(row) if row else None

    def app_by_id(self, tx: Tx, app_id: int) -> App | None:
        row = _APP_BY_ID.first(tx, {"id": app_id})
        return _app_of(row) if row else None

    def insert_code(self, tx: Tx, code_hash: str, code: AuthCode) -> None:
        tx.execute(oauth_codes.insert().values(
            code_hash=code_hash, app_id=code.app_id, account_id=code.account_id,
            redirect_uri=code.redirect_uri, scopes=" ".join(code.scopes),
            code_challenge=code.code_challenge, code_challenge_method=code.code_challenge_method,
            expires_at=code.expires_at,
        ))

    def take_code(self, tx: Tx, code_hash: str) -> AuthCode | None:
        """Return the code and delete it: a code is good for one exchange only. One statement,
        so of two transactions taking it at once (PostgreSQL) only the one that deletes it wins."""
        row = tx.execute(delete(oauth_codes).where(oauth_codes.c.code_hash == code_hash)
                         .returning(*oauth_codes.c)).first()
        if row is None:
            return None
        return AuthCode(row.app_id, row.account_id, row.redirect_uri, row.scopes.split(),
                        row.code_challenge, row.code_challenge_method, row.expires_at)

    def insert_token(self, tx: Tx, token: Token, token_hash: str,
                     refresh_hash: str | None) -> None:
        tx.execute(tokens.insert().values(
            id=token.id, token_hash=token_hash, refresh_hash=refresh_hash, app_id=token.app_id,
            account_id=token.account_id, scopes=" ".join(token.scopes),
            created_at=token.created_at, revoked_at=None,
        ))

    def token_by_hash(self, tx: Tx, token_hash: str) -> Token | None:
        row = _TOKEN_BY_HASH.first(tx, {"token_hash": token_hash})
        return Token(row[0], row[1], row[2], row[3].split(), row[4]) if row else None

    def credentials(self, tx: Tx, token_hash: str
                    ) -> tuple[Token, App | None, Account | None] | None:
        """A live token by hash, with its app (None for a token of no app, or whose app is
        gone) and its account (None for an app's own token, or whose account is gone)."""
        row = _CREDENTIALS.first(tx, {"token_hash": token_hash})
        if row is None:
            return None
        token = Token(row[0], row[1], row[2], row[3].split(), row[4])
        app_end = 5 + _N_APP_COLUMNS
        app = _app_of(row[5:app_end]) if row[5] is not None else None
        account = account_from(row[app_end:]) if row[app_end] is not None else None
        return token, app, account

    def token_in_force(self, tx: Tx, token_id: int) -> bool:
        """The token exists and is not revoked."""
        return tx.execute(select(tokens.c.id).where(
            tokens.c.id == token_id, tokens.c.revoked_at.is_(None))).first() is not None

    def token_by_refresh(self, tx: Tx, refresh_hash: str) -> Token | None:
        row = tx.execute(select(tokens).where(
            tokens.c.refresh_hash == refresh_hash, tokens.c.revoked_at.is_(None)
        )).first()
        return _token(row) if row else None

    def revoke(self, tx: Tx, token_id: int, at: int) -> None:
        tx.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=at))

    def insert_session(self, tx: Tx, session_hash: str, account_id: int, at: int) -> None:
        tx.execute(web_sessions.insert().values(session_hash=session_hash,
                                                account_id=account_id, renewed_at=at))

    def session_account(self, tx: Tx, session_hash: str) -> int | None:
        row = _SESSION_ACCOUNT.first(tx, {"session_hash": session_hash})
        return int(row[0]) if row else None

    def renew_session(self, tx: Tx, session_hash: str, at: int) -> None:
        tx.execute(update(web_sessions).where(web_sessions.c.session_hash == session_hash)
                   .values(renewed_at=at))

    def delete_sessions_before(self, tx: Tx, at: int) -> int:
        """Sweep the sessions last renewed before ``at``; returns how many."""
        return int(tx.execute(delete(web_sessions).where(web_sessions.c.renewed_at < at))
                   .rowcount)

    def delete_session(self, tx: Tx, session_hash: str) -> None:
        tx.execute(delete(web_sessions).where(web_sessions.c.session_hash == session_hash))

    def delete_sessions_of(self, tx: Tx, account_id: int,
                           keep_hash: str | None) -> list[str]:
        stmt = delete(web_sessions).where(web_sessions.c.account_id == account_id)
        if keep_hash is not None:
            stmt = stmt.where(web_sessions.c.session_hash != keep_hash)
        return list(tx.execute(stmt.returning(web_sessions.c.session_hash)).scalars())
