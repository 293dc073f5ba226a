"""Every setting Roost reads, in one place: environment variables ``ROOST_*`` and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed settings. Each field is ``ROOST_<NAME>`` in the environment; CLI flags override."""

    model_config = SettingsConfigDict(env_prefix="ROOST_", extra="ignore")

    data_dir: Path = Field(
        Path("roost-data"), description="Folder for the embedded SQLite database and other state."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database; default: SQLite file <data_dir>/roost.db. "
        "postgresql://... selects PostgreSQL.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0); when set, home timelines, the pub/sub "
        "behind streaming and the sign-up and failed sign-in counters (shared by every web "
        "process) and the job queue (see ROOST_JOB_QUEUE) live in Redis; unset: in the "
        "database and in-process.",
    )
    redis_prefix: str = Field(
        "roost:", description="Prefix of every Redis key and pub/sub channel Roost uses."
    )
    redis_cluster: bool = Field(
        False,
        description="Whether ROOST_REDIS_URL is a node of a Redis Cluster (7 or later): the "
        "other nodes are discovered from it, fan-out runs one script call per node and "
        "streaming uses sharded pub/sub (SSUBSCRIBE).",
    )
    host: str = Field("127.0.0.1", description="Address `roost serve` listens on.")
    port: int = Field(8000, description="Port `roost serve` listens on.")
    domain: str = Field(
        "localhost", description="The instance's domain, used in account `acct`, `uri` and `url`."
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the server at; default http://localhost:<port> for "
        "the localhost domain, else https://<domain>.",
    )
    title: str = Field("Roost", description="Instance title shown by /api/v1/instance.")
    contact_email: str = Field("", description="Contact e-mail shown by /api/v1/instance.")
    registrations_open: bool = Field(True, description="Whether anyone may sign up.")
    password_hashing: Literal["strong", "fast"] = Field(
        "strong",
        description="How passwords are hashed: `strong` is argon2id with RFC 9106's low-memory "
        "parameters (64 MiB, 3 passes: about 0.2 s of CPU per hash on a small machine); `fast` "
        "is argon2id with one pass over 1 MiB (~2 ms), for test suites and throwaway demo "
        "data only. A hash keeps its parameters: accounts made under either sign in under the "
        "other, and a sign-in under `strong` re-hashes a `fast` hash.",
    )
    allow_password_grant: bool = Field(
        False,
        description="Enable the OAuth password grant (off by default, as in Mastodon 4.4).",
    )
    signups_per_hour: int = Field(
        100,
        description="Sign-ups allowed from one IP address per hour (then 429), counted across "
        "every web process when ROOST_REDIS_URL is set, else per process.",
    )
    failed_logins_per_5min: int = Field(
        10,
        description="Failed sign-ins allowed per IP address and login per 5 minutes, counted "
        "like ROOST_SIGNUPS_PER_HOUR.",
    )
    max_post_chars: int = Field(500, description="Maximum length of a post, counted as Mastodon.")
    home_timeline_size: int = Field(800, description="Entries kept per home timeline.")
    fanout_pull_above: int = Field(
        50_000,
        description="Authors with at least this many followers are not pushed to followers; "
        "their posts are merged into home timelines at read time.",
    )
    fanout_push_below: int = Field(
        40_000,
        description="A pulled author returns to push fan-out when followers drop below this "
        "(hysteresis, so an account near the threshold does not flap).",
    )
    web_processes: int = Field(
        1,
        ge=1,
        description="Web server processes `roost serve` runs on one port (uvicorn workers; one "
        "that dies is restarted). More than 1 needs PostgreSQL and ROOST_REDIS_URL, so that "
        "every process sees every write and every live event; SQLite has one writer process.",
    )
    embedded_worker: bool = Field(
        True,
        description="Run background work (fan-out, history rollups, races, timeline caps) "
        "inside `roost serve`. Set false when separate `roost worker` processes do it.",
    )
    home_timelines: Literal["auto", "memory", "database", "redis"] = Field(
        "auto",
        description="Where home timelines live. `memory`: in the `roost serve` process, each "
        "filled from the database at its account's first read after a start (the fastest: no "
        "write per follower per post; needs one web process running its own background work, "
        "and no `roost worker`). `database`: in the database (kept across restarts). `redis`: "
        "in Redis (ROOST_REDIS_URL), shared by every process. `auto`: `redis` with "
        "ROOST_REDIS_URL, else `memory` on SQLite with ROOST_EMBEDDED_WORKER, else `database`.",
    )
    job_queue: Literal["auto", "database", "redis"] = Field(
        "auto",
        description="Where workers take background jobs from: `database` leases them from the "
        "outbox table; `redis` relays the outbox into a Redis Stream read by a consumer group "
        "(needs ROOST_REDIS_URL); `auto` is `redis` when ROOST_REDIS_URL is set.",
    )
    auth_cache_seconds: float = Field(
        2.0,
        description="How long a web process remembers a bearer token it has checked, so that "
        "a client's next requests skip the lookup. A revoked token stops working at once on "
        "every web process (the revocation is broadcast), or, if a broadcast were lost, "
        "within this time. 0 disables.",
        ge=0,
    )
    job_lease_seconds: float = Field(
        15.0,
        description="How long a worker holds a claimed job (a leased outbox row, or a stream "
        "message pending for it) while it is alive; after this another worker runs the job "
        "again (the first is stuck). A worker that died (killed, its machine gone) stops "
        "beating, and its jobs go to the others, or to itself restarted, 5 s after its last "
        "beat, whatever this is. Each step must finish well within it (a step takes "
        "milliseconds).",
    )
    inactive_days: float = Field(
        30.0,
        description="Followers not seen for this many days are skipped by fan-out; their home "
        "timeline is rebuilt when they return (answered with 206 while it runs). With the "
        "home timelines in memory, a timeline unread for this long is forgotten instead (as "
        "are all at a restart), and filled again at its next read (200, no 206).",
    )
    fanout_batch_size: int = Field(
        2_000, description="Followers a fan-out job writes per step (a worker runs the "
        "steps of the jobs it takes together, in one transaction). With the home timelines in "
        "memory, a post whose author has fewer followers is pushed in its own transaction, "
        "without a job."
    )
    counter_shards: int = Field(
        1, ge=1,
        description="Counter rows per account, chosen by the other party's id and summed on "
        "every read of the account. More rows only help where writer processes on PostgreSQL "
        "update the same account's row at once: one account following, or posting, from "
        "several processes together (the follows of one account wait on its counter lock "
        "whatever the rows). An existing database keeps the rows it has; counts stay exact "
        "when this changes.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous pragma; FULL survives power loss, NORMAL only crashes.",
    )
    write_batch_max: int = Field(
        256, description="Most write operations the single writer commits as one transaction."
    )
    read_threads: int | None = Field(
        None, ge=1,
        description="Database reads a process runs at once; unset: 1 on SQLite (a read there "
        "is CPU work under one GIL, and more threads only contend for it), 4 on PostgreSQL "
        "(one pooled connection each; more only queue for the GIL).",
    )
    sqlite_inline_reads: bool = Field(
        True,
        description="On SQLite, run the bounded reads of the hot paths (authentication, "
        "timeline pages, an account, a status) on the event loop's thread instead of handing "
        "each to the reader thread: faster (no hand-off, no GIL contention), but a read that "
        "waits on a slow disk holds up the whole process meanwhile.",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio",
        description="The web server's event loop. asyncio (the standard library's) serves "
        "connections in turn when the process is saturated; uvloop starved some of them "
        "(home read at full load: p99 50-85 ms on asyncio, 200-670 ms on uvloop, at the same "
        "throughput; BENCHMARKS.md).",
    )
    milestones: str = Field(
        "1000,10000,100000,1000000",
        description="Follower counts that are milestones (comma-separated); see "
        "ROOST_MILESTONE_EVERY for the ones above.",
    )
    milestone_every: int = Field(
        1_000_000, description="Above the listed milestones, every multiple of this is one."
    )
    history_max_points: int = Field(
        1500, description="Most points one follower-history request may return."
    )
    log_level: str = Field("info", description="Log level for the server.")
    secret_key: str | None = Field(
        None,
        description="Key that signs the web interface's session cookies; default: a random key "
        "made once and kept in <data_dir>/secret_key. Set the same value on every web process.",
    )
    session_days: int = Field(
        14, description="Days a web session lasts without being used before it must sign in "
        "again."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'roost.db').resolve()}"

    @classmethod
    def from_environment(cls) -> Settings:
        """Settings from ``ROOST_*`` variables alone (no flags)."""
        no_flags: dict[str, Any] = {}
        return cls(**no_flags)

    def as_environment(self) -> dict[str, str]:
        """These settings as ``ROOST_*`` variables, for processes started from this one."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                env[f"ROOST_{name.upper()}"] = str(value)
        return env

    def multiprocess_problem(self) -> str | None:
        """Why ``web_processes`` > 1 cannot work with these settings, or None if it can."""
        if self.web_processes == 1:
            return None
        if not self.resolved_database_url().startswith("postgresql"):
            return ("ROOST_WEB_PROCESSES > 1 needs PostgreSQL (ROOST_DATABASE_URL): SQLite "
                    "keeps one writer, in one process")
        if not self.redis_url:
            return ("ROOST_WEB_PROCESSES > 1 needs ROOST_REDIS_URL: live events must reach "
                    "streaming clients connected to any of the processes")
        return None

    def resolved_home_timelines(self) -> Literal["memory", "database", "redis"]:
        if self.home_timelines != "auto":
            return self.home_timelines
        if self.redis_url:
            return "redis"
        if (self.resolved_database_url().startswith("sqlite") and self.embedded_worker
                and self.web_processes == 1):
            return "memory"
        return "database"

    def home_timelines_problem(self, *, worker: bool = False) -> str | None:
        """Why the home timelines cannot live where these settings put them, for `roost serve`
        or (``worker``) for `roost worker`; None if they can."""
        where = self.resolved_home_timelines()
        if where == "redis" and not self.redis_url:
            return "ROOST_HOME_TIMELINES=redis needs ROOST_REDIS_URL"
        if where != "memory":
            return None
        if worker:
            return ("the home timelines live in the memory of `roost serve` "
                    "(ROOST_HOME_TIMELINES=memory, the default on SQLite with "
                    "ROOST_EMBEDDED_WORKER=true), where a `roost worker` cannot write them: "
                    "set ROOST_EMBEDDED_WORKER=false for `roost serve` and the workers, or "
                    "ROOST_HOME_TIMELINES=database")
        if self.web_processes > 1 or not self.embedded_worker:
            return ("ROOST_HOME_TIMELINES=memory needs one web process running its own "
                    "background work (ROOST_WEB_PROCESSES=1, ROOST_EMBEDDED_WORKER=true)")
        return None

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.domain in ("localhost", "127.0.0.1"):
            return f"http://{self.domain}:{self.port}"
        return f"https://{self.domain}"


def settings_help() -> str:
    """Text listing every setting with its variable, default and meaning, for `roost --help`."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else field.default
        lines.append(f"  ROOST_{name.upper()} (default: {default!s}): {field.description}")
    return "\n".join(lines)
