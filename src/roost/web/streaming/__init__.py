"""Live updates: Mastodon's streaming API (Server-Sent Events and WebSocket) and Roost's own
streams, fed by the publisher from committed domain events."""
