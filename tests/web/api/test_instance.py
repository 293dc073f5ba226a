"""Instance information, OAuth metadata and the published OpenAPI document."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_entity


@pytest.mark.parametrize("path", ["/api/v2/instance", "/api/v2/instance/"])
def test_instance_v2(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert_entity(body, "Instance")
    assert body["version"].startswith("4.3.0 (compatible; Roost ")
    assert body["configuration"]["statuses"]["max_characters"] == 500


@pytest.mark.parametrize("path", ["/api/v1/instance", "/api/v1/instance/"])
def test_instance_v1(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert_entity(response.json(), "V1Instance")


def test_instance_counts_users_and_posts(api: object, client: TestClient) -> None:
    from tests.conftest import Api

    assert isinstance(api, Api)
    user = api.register("counted")
    user.post_status("one")
    stats = client.get("/api/v1/instance").json()["stats"]
    assert stats["user_count"] == 1
    assert stats["status_count"] == 1


def test_instance_counts_are_exact_at_every_request(api: object, client: TestClient) -> None:
    """Clients (Mastodon.py among them) ask as they start, then again: never a stale count."""
    from tests.conftest import Api

    assert isinstance(api, Api)
    first = api.register("first")
    assert client.get("/api/v1/instance").json()["stats"]["user_count"] == 1
    api.register("second")
    first.post_status("counted at once")
    assert client.get("/api/v1/instance").json()["stats"] == {
        "user_count": 2, "status_count": 1, "domain_count": 1}
    assert client.get("/api/v2/instance").json()["usage"]["users"]["active_month"] == 2


def test_oauth_metadata_names_grants(client: TestClient) -> None:
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["token_endpoint"].endswith("/oauth/token")
    assert "password" not in body["grant_types_supported"]
    assert {"authorization_code", "client_credentials", "refresh_token"} <= set(
        body["grant_types_supported"])
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "read:statuses" in body["scopes_supported"]


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    body = client.get("/api/openapi.json").json()
    assert body["openapi"].startswith("3.1")
    assert "post" in body["paths"]["/api/v1/statuses"]
    assert "get" in body["paths"]["/api/v1/accounts/{id}/followers"]


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}


def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.delete("/api/v1/instance")
    assert response.status_code == 405
    assert "error" in response.json()
