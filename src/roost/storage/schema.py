"""The relational schema (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

Every hot table leads with the owning account id so the schema can be distributed by account
(Citus) or split by account range later. Times are stored as integer milliseconds since 1970.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(30), nullable=False),
    Column("username_lower", String(30), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False, default=""),
    Column("note", Text, nullable=False, default=""),
    Column("fields", Text, nullable=False, default="[]"),  # JSON list of {name, value}
    Column("locked", Boolean, nullable=False, default=False),
    Column("bot", Boolean, nullable=False, default=False),
    Column("discoverable", Boolean, nullable=False, default=True),
    Column("email", String(320), nullable=True, unique=True),
    Column("password_hash", String(200), nullable=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("locale", String(16), nullable=False, default="en"),
    # pulled: new posts are not pushed to followers but merged into their reads (celebrity).
    # has_unpushed: some posts were never pushed, so followers' reads must merge them.
    Column("pulled", Boolean, nullable=False, default=False),
    Column("has_unpushed", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_status_at", BigInteger, nullable=True),
    # Fan-out skips followers not seen for ROOST_INACTIVE_DAYS; their home timeline is
    # rebuilt when they come back (home_rebuilding while that runs).
    Column("last_active_at", BigInteger, nullable=False, default=0, server_default="0"),
    Column("home_rebuilding", Boolean, nullable=False, default=False, server_default="0"),
    # Every home read asks which of the few accounts with unpushed posts the reader follows.
    Index("ix_accounts_has_unpushed", "has_unpushed"),
)

# Counters are spread over shard rows and summed on read, so a follow storm into one account
# does not serialise on a single hot row (PostgreSQL); SQLite has one writer anyway.
account_counters = Table(
    "account_counters",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("followers", BigInteger, nullable=False, default=0),
    Column("following", BigInteger, nullable=False, default=0),
    Column("statuses", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("account_id", "shard"),
)

follows = Table(
    "follows",
    metadata,
    Column("account_id", BigInteger, nullable=False),  # the follower
    Column("target_account_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("show_reblogs", Boolean, nullable=False, default=True),
    Column("notify", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "target_account_id"),
    Index("ix_follows_target_id", "target_account_id", "id"),
    Index("ix_follows_account_id", "account_id", "id"),
)

# Pending requests to follow a locked account; they become follows when the account accepts.
follow_requests = Table(
    "follow_requests",
    metadata,
    Column("account_id", BigInteger, nullable=False),  # who asks
    Column("target_account_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("show_reblogs", Boolean, nullable=False, default=True),
    Column("notify", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "target_account_id"),
    Index("ix_follow_requests_target_id", "target_account_id", "id"),
)

# One row per follow (+1) or unfollow (-1) that really changed the graph: the follower history.
follow_events = Table(
    "follow_events",
    metadata,
    Column("target_account_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("delta", SmallInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("target_account_id", "id"),
    Index("ix_follow_events_id", "id"),  # the rollup scans new events across accounts
)

# Per account, per minute that had follow events: the follower count at the end of the minute,
# and running totals of follows gained, lost, and the highest count ever reached by then.
# Complete minutes never change, so any past instant is a rollup plus one partial minute.
follower_rollups = Table(
    "follower_rollups",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("minute", BigInteger, nullable=False),  # ms // 60000
    Column("followers", BigInteger, nullable=False),
    Column("gained", BigInteger, nullable=False),
    Column("lost", BigInteger, nullable=False),
    Column("peak", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "minute"),
    Index("ix_follower_rollups_peak", "account_id", "peak", "minute"),
)

# The first time an account's follower count reached a milestone, once and for all.
milestones = Table(
    "milestones",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("reached_at", BigInteger, nullable=False),
    Column("follower_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "count"),
)

# A race of accounts toward a follower count. The refresh step walks the participants' follow
# events past ``cursor_id``, keeping counts, the leader, lead changes and crossings up to date.
races = Table(
    "races",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("creator_id", BigInteger, nullable=False),
    Column("target", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("winner_id", BigInteger, nullable=True),
    Column("leader_id", BigInteger, nullable=True),
    Column("cursor_id", BigInteger, nullable=False),
    Column("settled", Boolean, nullable=False, default=False),  # every account has crossed
    Index("ix_races_settled", "settled", "id"),
)

race_entries = Table(
    "race_entries",
    metadata,
    Column("race_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),
    Column("followers", BigInteger, nullable=False),  # as of the race's cursor
    Column("reached_at", BigInteger, nullable=True),
    Column("milestone_follower_id", BigInteger, nullable=True),
    PrimaryKeyConstraint("race_id", "account_id"),
)

race_lead_changes = Table(
    "race_lead_changes",
    metadata,
    Column("race_id", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("leader_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("race_id", "seq"),
)

# Small named values the server keeps for itself (e.g. how far the rollup has read).
roost_state = Table(
    "roost_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

statuses = Table(
    "statuses",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", BigInteger, nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("content", Text, nullable=False, default=""),
    Column("spoiler_text", Text, nullable=False, default=""),
    Column("sensitive", Boolean, nullable=False, default=False),
    Column("visibility", String(10), nullable=False),
    Column("language", String(16), nullable=True),
    Column("in_reply_to_id", BigInteger, nullable=True),
    Column("in_reply_to_account_id", BigInteger, nullable=True),
    Column("reblog_of_id", BigInteger, nullable=True),
    Column("pushed", Boolean, nullable=False, default=True),  # False: merged at read time
    Column("replies_count", BigInteger, nullable=False, default=0),
    Column("reblogs_count", BigInteger, nullable=False, default=0),
    Column("favourites_count", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("edited_at", BigInteger, nullable=True),
    Index("ix_statuses_account_id", "account_id", "id"),
    Index("ix_statuses_in_reply_to_id", "in_reply_to_id"),
    Index("ix_statuses_visibility_id", "visibility", "id"),
    # A status's reblogs (reblogged_by, and a deletion takes them along): without it both
    # read the whole table (82 ms a page on SQLite with 300,000 statuses, bench.endpoints).
    # Only reblogs are indexed, a small part of the table.
    Index("ix_statuses_reblog_of_id", "reblog_of_id", "id",
          sqlite_where=text("reblog_of_id IS NOT NULL"),
          postgresql_where=text("reblog_of_id IS NOT NULL")),
    UniqueConstraint("account_id", "reblog_of_id", name="uq_statuses_reblog"),
)

favourites = Table(
    "favourites",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("status_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "status_id"),
    Index("ix_favourites_status_id", "status_id", "id"),
    Index("ix_favourites_account_id", "account_id", "id"),  # (an account's favourites list)
)

# Statuses an account pinned to its profile (its own; Mastodon's limit of 5).
status_pins = Table(
    "status_pins",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("status_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "status_id"),
    Index("ix_status_pins_status_id", "status_id"),
)

bookmarks = Table(
    "bookmarks",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("status_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "status_id"),
    Index("ix_bookmarks_account_id", "account_id", "id"),
    Index("ix_bookmarks_status_id", "status_id"),
)

# Where a user stopped reading a timeline ("home", "notifications"), shared between their apps.
markers = Table(
    "markers",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("timeline", String(32), nullable=False),
    Column("last_read_id", BigInteger, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "timeline"),
)

mentions = Table(
    "mentions",
    metadata,
    Column("status_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("status_id", "account_id"),
    Index("ix_mentions_account_id", "account_id", "status_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("name_lower", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

status_tags = Table(
    "status_tags",
    metadata,
    Column("tag_id", BigInteger, nullable=False),
    Column("status_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("tag_id", "status_id"),
    Index("ix_status_tags_status_id", "status_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("account_id", BigInteger, nullable=False),  # the recipient
    Column("id", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("from_account_id", BigInteger, nullable=False),
    Column("status_id", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("detail", BigInteger, nullable=True),  # roost.milestone: the count reached
    PrimaryKeyConstraint("account_id", "id"),
    Index("ix_notifications_status_id", "status_id"),
)

home_timeline = Table(
    "home_timeline",
    metadata,
    Column("account_id", BigInteger, nullable=False),  # whose timeline
    Column("status_id", BigInteger, nullable=False),
    Column("author_id", BigInteger, nullable=False),  # who posted or reblogged it
    Column("reblog_of_id", BigInteger, nullable=True),
    PrimaryKeyConstraint("account_id", "status_id"),
    # No index on the author: an unfollow finds the author's entries among the follower's
    # own by the key's prefix. Rows clustered by the key on SQLite (migration 0014).
    sqlite_with_rowid=False,
)

apps = Table(
    "apps",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("website", String(500), nullable=True),
    Column("redirect_uris", Text, nullable=False),  # newline separated
    Column("scopes", String(500), nullable=False),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("client_secret", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("app_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scopes", String(500), nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(10), nullable=True),
    Column("expires_at", BigInteger, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("refresh_hash", String(64), nullable=True, unique=True),
    Column("app_id", BigInteger, nullable=True),  # null: a personal access token
    Column("account_id", BigInteger, nullable=True),  # null: an app-only token
    Column("scopes", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_tokens_account_id", "account_id"),
)

# Signed-in browser sessions of the web interface: the session cookie carries a random secret,
# stored here hashed, so that signing out (or changing the password) ends a session for good,
# not only in the browser that held the cookie.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("account_id", BigInteger, nullable=False),
    # Signed in or last renewed (at most daily, with the cookie): a session unused for
    # ROOST_SESSION_DAYS has expired in the browser too, and its row is swept.
    Column("renewed_at", BigInteger, nullable=False),
    Index("ix_web_sessions_account_id", "account_id"),
    Index("ix_web_sessions_renewed_at", "renewed_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("key", String(200), nullable=False),
    Column("status_id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "key"),
)

# The outbox: background jobs recorded in the same transaction as the change that needs them.
jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("dead", Boolean, nullable=False, default=False),
    # A worker that claims a job leases it until then; if the worker dies, the lease runs
    # out and another worker takes the job again (at least once).
    Column("locked_until", BigInteger, nullable=False, default=0, server_default="0"),
    # The worker process holding the lease (job_holders.id): once that process stops being
    # alive, the job is taken again at once rather than when the lease runs out.
    Column("locked_by", BigInteger, nullable=True),
    Index("ix_jobs_due", "dead", "run_after"),
)

# The worker processes taking jobs from the outbox, each alive until ``alive_until`` (ms),
# which it keeps pushing ahead while it runs (OutboxQueue.beat). A row past its time is a
# process that died (or is stuck): the jobs it holds are free to take.
job_holders = Table(
    "job_holders",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("alive_until", BigInteger, nullable=False),
)

# One row: how many processes have started on this database. Each takes the next number as
# the node bits of the ids it makes (roost.ids), so that processes never make the same id.
id_nodes = Table(
    "id_nodes",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("claimed", BigInteger, nullable=False),
)
