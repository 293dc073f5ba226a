"""Where this instance lives: its domain and the URLs derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Site:
    domain: str
    base_url: str
    max_post_chars: int = 500

    def profile_url(self, username: str) -> str:
        return f"{self.base_url}/@{username}"

    def account_uri(self, username: str) -> str:
        return f"{self.base_url}/users/{username}"

    def status_url(self, username: str, status_id: int) -> str:
        return f"{self.base_url}/@{username}/{status_id}"

    def status_uri(self, username: str, status_id: int) -> str:
        return f"{self.base_url}/users/{username}/statuses/{status_id}"

    def tag_url(self, name: str) -> str:
        return f"{self.base_url}/tags/{quote(name)}"
