"""The web layer: the Mastodon client API, Roost's own API, pages and streaming."""
