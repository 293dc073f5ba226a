"""Roost: a self-hostable microblogging server speaking the Mastodon client API."""

__version__ = "0.1.0"
MASTODON_API_VERSION = "4.3.0"
