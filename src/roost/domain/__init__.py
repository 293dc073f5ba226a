"""Domain services: accounts, posts, follows, timelines, notifications, OAuth. No HTTP, no SQL."""
