"""Accounts: registration, credentials, profiles, lists, follow graph, relationships."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.accounts import ProfileChanges
from roost.domain.errors import Forbidden, InvalidInput
from roost.domain.models import Account, ProfileField
from roost.web import entities
from roost.web.auth import optional_user, require_token, require_user, roost_of
from roost.web.pagination import ACCOUNTS, STATUSES, link_header, page_from
from roost.web.params import path_id, read_params
from roost.web.ratelimit import client_key
from roost.web.responses import Json


async def register(request: Request) -> Response:
    """Register an account with an app token; answers with the new user's token."""
    roost = roost_of(request)
    auth = await require_token(request, "write:accounts")
    if not roost.settings.registrations_open:
        raise Forbidden("Registrations are closed on this server")
    await request.app.state.signups.take(client_key(request))
    params = await read_params(request)
    account = await roost.accounts.register(
        params.str("username") or "", params.str("email") or "", params.str("password") or "",
        agreement=bool(params.bool("agreement", False)), locale=params.str("locale") or "en",
    )
    scopes = auth.app.scopes if auth.app else auth.token.scopes
    issued = await roost.oauth.token_for(auth.token.app_id, account.id, scopes)
    return Json(entities.token(issued))


async def verify_credentials(request: Request) -> Response:
    """The signed-in account, with its source fields."""
    roost = roost_of(request)
    account = await require_user(request, "read:accounts")
    fresh = await roost.accounts.get(account.id)
    pending = await roost.follows.pending_request_count(account.id)
    return Json(entities.credential_account(roost.site, fresh, pending))


async def update_credentials(request: Request) -> Response:
    """Update the profile: display name, note, fields (the website link), locked, bot."""
    roost = roost_of(request)
    account = await require_user(request, "write:accounts")
    params = await read_params(request)
    records = params.records("fields_attributes")
    fields = None
    if records is not None:
        fields = [ProfileField(str(r.get("name") or ""), str(r.get("value") or ""))
                  for r in records]
        if any("\x00" in f.name + f.value for f in fields):
            raise InvalidInput("fields_attributes must not contain NUL characters")
    changes = ProfileChanges(
        display_name=params.str("display_name"), note=params.str("note"), fields=fields,
        locked=params.bool("locked"), bot=params.bool("bot"),
        discoverable=params.bool("discoverable"),
    )
    updated = await roost.accounts.update_profile(account.id, changes)
    pending = await roost.follows.pending_request_count(account.id)
    return Json(entities.credential_account(roost.site, updated, pending))


async def get_account(request: Request) -> Response:
    """An account by id."""
    roost = roost_of(request)
    await optional_user(request)
    return Json(entities.account(roost.site, await roost.accounts.get(path_id(request))))


async def lookup(request: Request) -> Response:
    """An account by its webfinger address (``acct``)."""
    roost = roost_of(request)
    params = await read_params(request)
    acct = params.str("acct")
    if not acct:
        raise InvalidInput("Missing acct parameter")
    account = await roost.accounts.lookup(acct, roost.settings.domain)
    return Json(entities.account(roost.site, account))


async def search(request: Request) -> Response:
    """Accounts matching a username or display name."""
    roost = roost_of(request)
    await optional_user(request, "read:accounts")
    params = await read_params(request)
    query = params.str("q")
    if query is None:
        raise InvalidInput("Missing q parameter")
    limit = max(1, min(params.int("limit", 40) or 40, 80))
    offset = max(0, params.int("offset", 0) or 0)
    found = await roost.accounts.search(query, limit, offset)
    return Json([entities.account(roost.site, a) for a in found])


async def statuses(request: Request) -> Response:
    """An account's posts, newest first, as the viewer may see them."""
    roost = roost_of(request)
    viewer = await optional_user(request, "read:statuses")
    params = await read_params(request)
    account_id = path_id(request)
    page = page_from(params, STATUSES)
    if params.bool("pinned", False):  # (all of them: at most MAX_PINS, as Mastodon)
        pinned = await roost.posts.pinned(account_id, viewer.id if viewer else None)
        return Json([entities.status(roost.site, v) for v in pinned])
    if params.bool("only_media", False):
        await roost.accounts.get(account_id)  # 404 for unknown accounts all the same
        return Json([])  # Roost has no media: the list is empty
    views = await roost.timelines.account(
        account_id, viewer.id if viewer else None, page,
        exclude_replies=bool(params.bool("exclude_replies", False)),
        exclude_reblogs=bool(params.bool("exclude_reblogs", False)),
    )
    body = [entities.status(roost.site, v) for v in views]
    return Json(body, headers=link_header(request, [v.status.id for v in views]))


def _account_page(request: Request, rows: list[tuple[int, Account]]) -> Response:
    site = roost_of(request).site
    return Json([entities.account(site, a) for _, a in rows],
                headers=link_header(request, [i for i, _ in rows]))


async def followers(request: Request) -> Response:
    """Accounts following this account, most recent follow first."""
    await optional_user(request, "read:accounts")
    params = await read_params(request)
    rows = await roost_of(request).follows.followers(path_id(request),
                                                     page_from(params, ACCOUNTS))
    return _account_page(request, rows)


async def following(request: Request) -> Response:
    """Accounts this account follows, most recent follow first."""
    await optional_user(request, "read:accounts")
    params = await read_params(request)
    rows = await roost_of(request).follows.following(path_id(request),
                                                     page_from(params, ACCOUNTS))
    return _account_page(request, rows)


async def follow(request: Request) -> Response:
    """Follow an account (again: updates the reblogs / notify options)."""
    viewer = await require_user(request, "write:follows")
    params = await read_params(request)
    relationship = await roost_of(request).follows.follow(
        viewer.id, path_id(request), reblogs=params.bool("reblogs"),
        notify_posts=params.bool("notify"),
    )
    return Json(entities.relationship(relationship))


async def unfollow(request: Request) -> Response:
    """Stop following an account."""
    viewer = await require_user(request, "write:follows")
    relationship = await roost_of(request).follows.unfollow(viewer.id, path_id(request))
    return Json(entities.relationship(relationship))


async def relationships(request: Request) -> Response:
    """The viewer's relationships with the given accounts."""
    viewer = await require_user(request, "read:follows")
    params = await read_params(request)
    ids = params.ids("id")
    if len(ids) > 80:
        raise InvalidInput("Too many ids (at most 80)")
    found = await roost_of(request).follows.relationships(viewer.id, ids)
    return Json([entities.relationship(r) for r in found])


async def familiar_followers(request: Request) -> Response:
    """For each account asked (``id[]``), the accounts the viewer follows that follow it."""
    roost = roost_of(request)
    viewer = await require_user(request, "read:follows")
    params = await read_params(request)
    ids = list(dict.fromkeys(params.ids("id")))
    if len(ids) > 80:
        raise InvalidInput("Too many ids (at most 80)")
    found = await roost.follows.familiar_followers(viewer.id, ids)
    return Json([{"id": str(i), "accounts": [entities.account(roost.site, a) for a in accounts]}
                 for i, accounts in found])


async def get_accounts(request: Request) -> Response:
    """Several accounts by id (``id[]``)."""
    roost = roost_of(request)
    params = await read_params(request)
    ids = params.ids("id")
    if len(ids) > 40:
        raise InvalidInput("Too many ids (at most 40)")
    found = await roost.accounts.get_many(ids)
    return Json([entities.account(roost.site, found[i]) for i in ids if i in found])


routes = [
    Route("/api/v1/accounts", register, methods=["POST"]),
    Route("/api/v1/accounts", get_accounts, methods=["GET"]),
    Route("/api/v1/accounts/verify_credentials", verify_credentials),
    Route("/api/v1/accounts/update_credentials", update_credentials, methods=["PATCH"]),
    Route("/api/v1/accounts/lookup", lookup),
    Route("/api/v1/accounts/search", search),
    Route("/api/v1/accounts/relationships", relationships),
    Route("/api/v1/accounts/familiar_followers", familiar_followers),
    Route("/api/v1/accounts/{id}", get_account),
    Route("/api/v1/accounts/{id}/statuses", statuses),
    Route("/api/v1/accounts/{id}/followers", followers),
    Route("/api/v1/accounts/{id}/following", following),
    Route("/api/v1/accounts/{id}/follow", follow, methods=["POST"]),
    Route("/api/v1/accounts/{id}/unfollow", unfollow, methods=["POST"]),
]
