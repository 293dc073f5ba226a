"""The Mastodon client API, one module per Mastodon API group."""
