"""The OAuth authorise page uses the browser's session: signed in, only Authorise or Deny."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.testclient import TestClient

from tests.web.pages.conftest import PASSWORD, Visitor

REDIRECT = "https://app.example/callback"


def _query(client: TestClient) -> dict[str, str]:
    app = client.post("/api/v1/apps", data={"client_name": "An app", "scopes": "read write",
                                            "redirect_uris": REDIRECT}).json()
    return {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "read", "state": "s1"}


def test_signed_in_authorise_is_one_click(alice: Visitor, client: TestClient) -> None:
    query = _query(client)
    page = alice.get("/oauth/authorize", params=query)
    assert page.status_code == 200
    assert "You are signed in as" in page.text and 'name="password"' not in page.text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' https://app.example;" in csp
    approved = alice.submit("/oauth/authorize", {**query, "decision": "approve"})
    assert approved.status_code == 302
    location = urlsplit(approved.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert parse_qs(location.query)["state"] == ["s1"] and parse_qs(location.query)["code"]
    denied = alice.submit("/oauth/authorize", {**query, "decision": "deny"})
    assert "error=access_denied" in denied.headers["location"]


def test_signed_out_authorise_has_the_sign_in_form(alice: Visitor, client: TestClient) -> None:
    query = _query(client)
    guest = Visitor(alice.client, alice.roost)
    page = guest.get("/oauth/authorize", params=query)
    assert 'name="password"' in page.text and "You are signed in as" not in page.text
    no_password = guest.submit("/oauth/authorize", {**query, "decision": "approve"})
    assert no_password.status_code == 401
    approved = guest.submit("/oauth/authorize", {**query, "decision": "approve",
                                                 "login": "alice", "password": PASSWORD})
    assert approved.status_code == 302 and "code=" in approved.headers["location"]
    assert guest.get("/notifications").status_code == 303  # the browser stays signed out
    unsafe = client.post("/api/v1/apps", data={"client_name": "x", "scopes": "read",
                                               "redirect_uris": "https://a.example;script-src/cb"}
                         ).json()
    page = guest.get("/oauth/authorize", params={**query, "client_id": unsafe["client_id"],
                                                  "redirect_uri": unsafe["redirect_uris"][0]})
    assert page.status_code == 200
    assert "a.example" not in page.headers["content-security-policy"]
