"""Instance information: /api/v1/instance, /api/v2/instance and OAuth server metadata."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.oauth import ALL_SCOPES
from roost.web import entities
from roost.web.auth import roost_of
from roost.web.responses import Json


async def instance_v1(request: Request) -> Response:
    """Instance information (v1)."""
    roost = roost_of(request)
    users, statuses = await roost.accounts.instance_stats()
    return Json(entities.instance_v1(roost.settings, users, statuses))


async def instance_v2(request: Request) -> Response:
    """Instance information (v2)."""
    roost = roost_of(request)
    users, _ = await roost.accounts.instance_stats()
    return Json(entities.instance_v2(roost.settings, users))


async def oauth_metadata(request: Request) -> Response:
    """RFC 8414 authorization server metadata: endpoints, scopes and grants."""
    roost = roost_of(request)
    base = roost.settings.base_url()
    grants = ["authorization_code", "client_credentials", "refresh_token"]
    if roost.settings.allow_password_grant:
        grants.append("password")
    return Json({
        "issuer": f"{base}/",
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "app_registration_endpoint": f"{base}/api/v1/apps",
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    })


routes = [
    Route("/api/v1/instance", instance_v1),
    Route("/api/v1/instance/", instance_v1),
    Route("/api/v2/instance", instance_v2),
    Route("/api/v2/instance/", instance_v2),
    Route("/.well-known/oauth-authorization-server", oauth_metadata),
]
