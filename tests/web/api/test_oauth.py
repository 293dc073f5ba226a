"""Apps, OAuth grants, PKCE, refresh, revoke, and scope enforcement."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

from starlette.testclient import TestClient

from tests.conftest import Api, assert_entity, on_app_loop

REDIRECT = "http://localhost:9999/callback"


def _app(client: TestClient, scopes: str = "read write follow") -> dict[str, Any]:
    response = client.post("/api/v1/apps", json={
        "client_name": "app", "redirect_uris": [REDIRECT, "urn:ietf:wg:oauth:2.0:oob"],
        "scopes": scopes, "website": "https://app.example",
    })
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()


def _authorize(client: TestClient, app: dict[str, Any], *, redirect_uri: str = REDIRECT,
               challenge: str | None = None, scope: str = "read write",
               login: str = "alice", password: str = "correct horse battery") -> Any:
    query = {"client_id": app["client_id"], "redirect_uri": redirect_uri,
             "response_type": "code", "scope": scope, "state": "xyz"}
    if challenge:
        query.update(code_challenge=challenge, code_challenge_method="S256")
    page = client.get("/oauth/authorize", params=query)
    assert page.status_code == 200, page.text
    assert "<form" in page.text
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return client.post("/oauth/authorize", data={**hidden, "login": login, "password": password,
                                                  "decision": "approve"},
                       follow_redirects=False)


def test_create_app_answers_credential_application(client: TestClient) -> None:
    app = _app(client)
    assert_entity(app, "CredentialApplication")
    assert app["redirect_uris"] == [REDIRECT, "urn:ietf:wg:oauth:2.0:oob"]
    assert app["scopes"] == ["read", "write", "follow"]


def test_create_app_rejects_bad_input(client: TestClient) -> None:
    assert client.post("/api/v1/apps", data={"redirect_uris": REDIRECT}).status_code == 422
    assert client.post("/api/v1/apps", data={"client_name": "x"}).status_code == 422
    bad_scope = client.post("/api/v1/apps", data={"client_name": "x", "redirect_uris": REDIRECT,
                                                  "scopes": "read admin:everything"})
    assert bad_scope.status_code == 422
    assert "error" in bad_scope.json()
    not_uri = client.post("/api/v1/apps", data={"client_name": "x", "redirect_uris": "nope"})
    assert not_uri.status_code == 422


def test_authorization_code_with_pkce(api: Api, client: TestClient) -> None:
    api.register("alice")
    app = _app(client)
    verifier = "v" * 64
    response = _authorize(client, app, challenge=_challenge(verifier))
    assert response.status_code == 302
    query = parse_qs(urlparse(response.headers["location"]).query)
    assert query["state"] == ["xyz"]
    code = query["code"][0]
    wrong = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": REDIRECT,
        "code_verifier": "w" * 64})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The failed attempt used the code up: a code is good for one exchange only.
    response = _authorize(client, app, challenge=_challenge(verifier))
    code = parse_qs(urlparse(response.headers["location"]).query)["code"][0]
    token = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    assert_entity(token.json(), "Token")
    assert token.json()["scope"] == "read write"
    me = client.get("/api/v1/accounts/verify_credentials",
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["username"] == "alice"
    again = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert again.status_code == 400


def test_out_of_band_code_is_shown(api: Api, client: TestClient) -> None:
    api.register("alice")
    app = _app(client)
    page = _authorize(client, app, redirect_uri="urn:ietf:wg:oauth:2.0:oob")
    assert page.status_code == 200
    code = re.search(r'id="code" class="code" readonly value="([^"]+)"', page.text)
    assert code is not None
    token = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code.group(1),
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"})
    assert token.status_code == 200


def test_authorize_refuses_wrong_password_and_unknown_redirect(api: Api,
                                                               client: TestClient) -> None:
    api.register("alice")
    app = _app(client)
    assert _authorize(client, app, password="wrong password!").status_code == 401
    page = client.get("/oauth/authorize", params={
        "client_id": app["client_id"], "redirect_uri": "http://evil.example/",
        "response_type": "code"})
    assert page.status_code == 400
    unknown = client.get("/oauth/authorize", params={"client_id": "nope",
                                                     "response_type": "code"})
    assert unknown.status_code == 400
    too_wide = client.get("/oauth/authorize", params={
        "client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "push"}, follow_redirects=False)
    assert too_wide.status_code == 302
    assert "error=invalid_scope" in too_wide.headers["location"]


def test_deny_redirects_with_access_denied(client: TestClient) -> None:
    app = _app(client)
    query = {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
             "scope": "read", "state": "s"}
    page = client.get("/oauth/authorize", params=query)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "the authorise form carries the session's CSRF token"
    response = client.post("/oauth/authorize", data={
        **query, "csrf_token": token.group(1), "decision": "deny"}, follow_redirects=False)
    assert response.status_code == 302
    assert "error=access_denied" in response.headers["location"]


def test_password_grant_is_off_by_default(api: Api, client: TestClient) -> None:
    api.register("alice")
    response = client.post("/oauth/token", data={
        "grant_type": "password", "username": "alice@example.com",
        "password": "correct horse battery", "client_id": api.app["client_id"],
        "client_secret": api.app["client_secret"], "scope": "read"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_password_grant_when_enabled_and_refresh(make_api: Any) -> None:
    api = make_api(allow_password_grant=True)
    api.register("alice")
    client = api.client
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert "password" in metadata["grant_types_supported"]
    form = {"client_id": api.app["client_id"], "client_secret": api.app["client_secret"]}
    bad = client.post("/oauth/token", data={**form, "grant_type": "password",
                                            "username": "alice", "password": "nope nope"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    token = client.post("/oauth/token", data={**form, "grant_type": "password",
                                              "username": "alice@example.com",
                                              "password": "correct horse battery",
                                              "scope": "read"}).json()
    assert token["scope"] == "read"
    before = client.get("/api/v1/accounts/verify_credentials",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert before.status_code == 200  # (now remembered by the process: see RecentTokens)
    refreshed = client.post("/oauth/token", data={**form, "grant_type": "refresh_token",
                                                  "refresh_token": token["refresh_token"]})
    assert refreshed.status_code == 200
    old = client.get("/api/v1/accounts/verify_credentials",
                     headers={"Authorization": f"Bearer {token['access_token']}"})
    assert old.status_code == 401
    new = client.get("/api/v1/accounts/verify_credentials",
                     headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert new.status_code == 200


def test_client_authentication_and_grant_errors(api: Api, client: TestClient) -> None:
    bad_secret = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": api.app["client_id"],
        "client_secret": "wrong"})
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"
    unknown = client.post("/oauth/token", data={"grant_type": "magic"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unsupported_grant_type"
    basic = base64.b64encode(f"{api.app['client_id']}:{api.app['client_secret']}".encode())
    ok = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": f"Basic {basic.decode()}"})
    assert ok.status_code == 200


def test_revoke(api: Api, client: TestClient) -> None:
    user = api.register("alice")
    assert user.get("/api/v1/accounts/verify_credentials").status_code == 200  # remembered
    response = client.post("/oauth/revoke", data={
        "client_id": api.app["client_id"], "client_secret": api.app["client_secret"],
        "token": user.token})
    assert response.status_code == 200
    assert user.get("/api/v1/accounts/verify_credentials").status_code == 401


def test_token_errors_and_scopes(api: Api, client: TestClient) -> None:
    bad = client.get("/api/v1/accounts/verify_credentials",
                     headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    assert bad.json() == {"error": "The access token is invalid"}
    missing = client.get("/api/v1/timelines/home")
    assert missing.status_code == 401
    app_only = client.get("/api/v1/accounts/verify_credentials",
                          headers={"Authorization": f"Bearer {api.app_token}"})
    assert app_only.status_code == 422
    assert app_only.json()["error"] == "This method requires an authenticated user"
    verified = client.get("/api/v1/apps/verify_credentials",
                          headers={"Authorization": f"Bearer {api.app_token}"})
    assert verified.status_code == 200
    assert_entity(verified.json(), "Application")
    api.register("alice")
    read_only = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": api.app["client_id"],
        "client_secret": api.app["client_secret"], "scope": "read"}).json()["access_token"]
    denied = client.post("/api/v1/accounts", headers={"Authorization": f"Bearer {read_only}"},
                         data={"username": "x"})
    assert denied.status_code == 403
    assert denied.json() == {"error": "This action is outside the authorized scopes"}


def test_sub_scopes_are_enforced(api: Api, client: TestClient, roost: Any) -> None:
    user = api.register("alice")
    account_id = int(user.id)
    issued = on_app_loop(client, roost.oauth.token_for, None, account_id,
                         ["read:statuses"])
    headers = {"Authorization": f"Bearer {issued.access_token}"}
    assert client.get("/api/v1/timelines/home", headers=headers).status_code == 200
    assert client.get("/api/v1/notifications", headers=headers).status_code == 403
    post = client.post("/api/v1/statuses", headers=headers, data={"status": "hi"})
    assert post.status_code == 403
