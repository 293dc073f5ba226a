"""The ``roost`` command: serve, migrate, check, create-user, token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from roost import __version__
from roost.settings import Settings, settings_help

EPILOG = ("\b\nSettings (environment variables; flags override them):\n" + settings_help())


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    # A subcommand flag left unset (None) must not hide the same flag given to the group
    # (`roost --data-dir X serve`).
    values = {k: v for k, v in ctx.obj.items() if v is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


@click.group(epilog=EPILOG, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="roost")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR; default ./roost-data).")
@click.option("--database-url", default=None,
              help="Database URL (ROOST_DATABASE_URL; default SQLite in the data folder).")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, database_url: str | None) -> None:
    """Roost: a microblogging server that speaks the Mastodon client API.

    With no configuration, `roost serve` runs everything in one process on one SQLite file.
    """
    ctx.obj = {"data_dir": data_dir, "database_url": database_url}
    from roost.runtime import dump_stacks_on_sigusr1

    dump_stacks_on_sigusr1()


def _open(settings: Settings) -> Any:
    from roost.runtime import Roost

    roost = Roost(settings)
    roost.start()
    return roost


@main.command()
@click.option("--host", default=None, help="Listen address (ROOST_HOST; default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (ROOST_PORT; default 8000).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.option("--processes", "web_processes", type=click.IntRange(min=1), default=None,
              help="Web server processes (ROOST_WEB_PROCESSES; default 1; more need "
              "PostgreSQL and Redis).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data_dir: Path | None,
          web_processes: int | None) -> None:
    """Run the web server, and the background worker in the same process unless
    ROOST_EMBEDDED_WORKER=false (then run `roost worker` processes)."""
    import uvicorn

    settings = _settings(ctx, host=host, port=port, data_dir=data_dir,
                         web_processes=web_processes)
    problem = settings.multiprocess_problem() or settings.home_timelines_problem()
    if problem:
        raise click.UsageError(problem)
    click.echo(f"Roost {__version__} on {settings.base_url()} "
               f"(database: {settings.resolved_database_url()}"
               + (f", {settings.web_processes} processes)" if settings.web_processes > 1
                  else ")"))
    # Keep idle connections open longer than uvicorn's 5 s default, as reverse proxies and
    # busy clients expect: a client reusing a connection the server just closed sees a reset.
    options: dict[str, Any] = dict(host=settings.host, port=settings.port,
                                   log_level=settings.log_level, proxy_headers=True,
                                   server_header=False, timeout_keep_alive=75,
                                   loop=settings.event_loop)
    if settings.web_processes == 1:
        from roost.runtime import Roost
        from roost.web.app import create_app

        app = create_app(Roost(settings, serving=True),
                         run_background=settings.embedded_worker)
        uvicorn.run(app, **options)
        return
    # Several processes: migrate once here, then uvicorn starts the processes on one shared
    # socket (and restarts any that dies); each builds its app from the settings passed on
    # in the environment.
    from roost.runtime import Roost

    roost = Roost(settings)
    roost.migrate()
    roost.close()
    os.environ.update(settings.as_environment())
    uvicorn.run("roost.web.app:app_from_environment", factory=True,
                workers=settings.web_processes, **options)


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def worker(ctx: click.Context, data_dir: Path | None) -> None:
    """Run background work without a web server: fan-out, follower-history rollups, races,
    timeline caps. Run as many as you like; they share the jobs through leases on the outbox,
    or, with ROOST_REDIS_URL, through a Redis Stream consumer group fed from the outbox."""
    import signal

    from roost.runtime import Roost
    from roost.storage.pubsub import pubsub_for
    from roost.web.streaming.publisher import Publisher

    settings = _settings(ctx, data_dir=data_dir)
    problem = settings.home_timelines_problem(worker=True)
    if problem:
        raise click.UsageError(problem)
    roost = Roost(settings)
    roost.start()
    # With ROOST_REDIS_URL, what this worker commits (fan-out deliveries above all) reaches
    # the streaming clients of every web process through Redis.
    pubsub = pubsub_for(settings)
    publisher = Publisher(roost, pubsub)
    roost.db.on_commit(publisher.on_commit)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        work = asyncio.gather(publisher.run(), roost.run_background(job_poll_seconds=0.05))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, work.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await work
        finally:
            await pubsub.close()

    click.echo(f"Roost worker on {settings.resolved_database_url()}")
    try:
        asyncio.run(run())
    finally:
        roost.close()


@main.group()
def jobs() -> None:
    """Background jobs: how many wait, and the dead letters (list and replay)."""


@jobs.command("pending")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def jobs_pending(ctx: click.Context, data_dir: Path | None) -> None:
    """Count the jobs not yet finished (fan-outs, rebuilds...), wherever they wait: the
    database's outbox, and with Redis the stream and its retries. 0 once the workers have
    caught up."""
    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        pending = roost.jobs.pending_count()
    finally:
        roost.close()
    click.echo(f"{pending} pending job(s).")


@jobs.command("dead")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def jobs_dead(ctx: click.Context, data_dir: Path | None) -> None:
    """List jobs that failed too often and were set aside, with their last error (dead jobs
    are kept in the database's outbox with either job queue)."""
    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        dead = roost.db.read_sync(roost.stores.jobs.dead)
    finally:
        roost.close()
    for job, error in dead:
        click.echo(f"{job.id}  {job.kind}  attempts={job.attempts}  {error or ''}")
    click.echo(f"{len(dead)} dead job(s).")


@jobs.command("replay")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead job.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def jobs_replay(ctx: click.Context, job_ids: tuple[str, ...], replay_all: bool,
                data_dir: Path | None) -> None:
    """Put dead jobs back in the queue (by id, or --all): back in the outbox, from where
    workers take them (or relay them to Redis) again."""
    from roost.clock import now_ms

    if not job_ids and not replay_all:
        raise click.UsageError("name job ids or use --all")
    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        wanted = ([job.id for job, _ in roost.db.read_sync(roost.stores.jobs.dead)]
                  if replay_all else [int(j) for j in job_ids if j.isdigit()])
        revived = sum(roost.db.write_sync(
            lambda tx, job_id=job_id: roost.stores.jobs.revive(tx, job_id, now_ms()))
            for job_id in wanted)
    finally:
        roost.close()
    click.echo(f"{revived} job(s) back in the queue.")
    if revived < len(wanted) or (job_ids and revived == 0):
        sys.exit(1)


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def migrate(ctx: click.Context, data_dir: Path | None) -> None:
    """Create or upgrade the database schema."""
    roost = _open(_settings(ctx, data_dir=data_dir))
    roost.close()
    click.echo("Database is up to date.")


@main.command()
@click.option("--repair", is_flag=True, help="Also correct every wrong counter.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def check(ctx: click.Context, repair: bool, data_dir: Path | None) -> None:
    """Recount every counter from the rows it counts; exit 1 on any difference."""
    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        found = roost.check(repair=repair)
    finally:
        roost.close()
    for d in found:
        click.echo(f"{d.kind} {d.id}: {d.counter} is {d.stored}, rows say {d.actual}")
    if found:
        click.echo(f"{len(found)} difference(s){' repaired' if repair else ''}.")
        sys.exit(1)
    click.echo("All counters match their rows.")


@main.command("create-user")
@click.argument("username")
@click.option("--email", required=True, help="The account's e-mail address.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (asked for when not given).")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def create_user(ctx: click.Context, username: str, email: str, password: str, admin: bool,
                data_dir: Path | None) -> None:
    """Create an account (no registration flow, no agreement needed)."""
    from roost.domain.errors import DomainError

    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        account = asyncio.run(roost.accounts.register(username, email, password, agreement=True,
                                                      is_admin=admin))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        roost.close()
    click.echo(f"Created @{account.username} (id {account.id}).")


@main.group()
def token() -> None:
    """Personal access tokens for scripts."""


@token.command("create")
@click.argument("username")
@click.option("--scopes", default="read write follow", show_default=True,
              help="Space-separated OAuth scopes.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def token_create(ctx: click.Context, username: str, scopes: str, data_dir: Path | None) -> None:
    """Print a new access token for USERNAME (shown once; only its hash is stored)."""
    from roost.domain.oauth import OAuthError, parse_scopes

    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        try:
            wanted = parse_scopes(scopes)
        except OAuthError as exc:
            raise click.BadParameter(f"unknown scope in {scopes!r}") from exc

        async def make() -> str:
            account = await roost.accounts.lookup(username, roost.settings.domain)
            issued = await roost.oauth.token_for(None, account.id, wanted, refreshable=False)
            return str(issued.access_token)

        from roost.domain.errors import NotFound

        try:
            click.echo(asyncio.run(make()))
        except NotFound as exc:
            raise click.ClickException(f"no account @{username}") from exc
    finally:
        roost.close()


@main.group()
def race() -> None:
    """Races between accounts toward a follower count."""


@race.command("replay")
@click.option("--url", required=True, help="Base URL of a running Roost server.")
@click.option("--token", envvar="ROOST_ADMIN_TOKEN", required=True,
              help="An administrator's token with admin:write and write scopes "
              "(`roost token create ADMIN --scopes 'read write follow admin:write'`; "
              "or ROOST_ADMIN_TOKEN).")
@click.option("--speed", type=float, default=600.0, show_default=True,
              help="Clock acceleration: 600 plays ten hours in a minute.")
@click.option("--scale", type=float, default=0.001, show_default=True,
              help="Multiply every follower count: 0.001 races to 1,000.")
@click.option("--suffix", default="", help="Appended to @aplusk and @cnnbrk (replay again).")
@click.option("--check", is_flag=True,
              help="Exit 1 unless the race API reports the recorded outcome.")
def race_replay(url: str, token: str, speed: float, scale: float, suffix: str,
                check: bool) -> None:
    """Replay the April 2009 race between @aplusk and @cnnbrk against a running server,
    with real follows through the API, at an accelerated clock and a scaled count."""
    from roost.tools.replay import Replay, ReplayError

    try:
        replay = Replay(url, token, speed=speed, scale=scale, suffix=suffix)
        outcome = asyncio.run(replay.run())
    except (ReplayError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    race = outcome.race
    click.echo(f"Race {race['id']} to {race['target']:,} followers")
    for standing in race["standings"]:
        crossed = (replay.to_record_clock(standing["reached_at"], race).strftime("%d %b %H:%M")
                   if standing["reached_at"] else "not yet")
        click.echo(f"  @{standing['account']['username']:<12} {standing['followers_count']:>9,}"
                   f"  crossed {crossed} EDT (recorded clock)")
    for when, who in zip(outcome.lead_change_times, outcome.leaders, strict=True):
        click.echo(f"  lead change: @{who} at {when.strftime('%d %b %H:%M')} EDT")
    verdict = "matches" if outcome.matches else "does NOT match"
    click.echo(f"Winner, lead changes and crossing order {verdict} the 2009 record.")
    if check and not outcome.matches:
        sys.exit(1)


@main.command()
@click.option("--accounts", "count", type=int, default=1_000_000, show_default=True,
              help="Ordinary accounts, with power-law follower counts.")
@click.option("--celebrity", "celebrities", multiple=True, metavar="NAME=FOLLOWERS",
              help="A celebrity account and its follower count (repeatable; default "
              "aplusk=1000000 and cnnbrk=1000000).")
@click.option("--posts", type=int, default=3, show_default=True, help="Posts per account.")
@click.option("--days", type=int, default=7, show_default=True,
              help="The follows arrive over this many past days.")
@click.option("--prefix", default="user", show_default=True, help="Ordinary usernames' prefix.")
@click.option("--seed", "random_seed", type=int, default=2009, show_default=True,
              help="Random seed (the same seed builds the same community).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data folder (ROOST_DATA_DIR).")
@click.pass_context
def seed(ctx: click.Context, count: int, celebrities: tuple[str, ...], posts: int, days: int,
         prefix: str, random_seed: int, data_dir: Path | None) -> None:
    """Build a synthetic community fast (bulk load), with exact counters and history."""
    from roost.tools.seed import Seeder, SeedError, SeedPlan

    named: dict[str, int] = {}
    for item in celebrities:
        name, _, followers = item.partition("=")
        if not name or not followers.isdigit():
            raise click.BadParameter(f"{item!r} is not NAME=FOLLOWERS", param_hint="--celebrity")
        named[name] = int(followers)
    plan = SeedPlan(accounts=count, posts_per_account=posts, days=days, prefix=prefix,
                    seed=random_seed)
    if celebrities:
        plan.celebrities = named
    roost = _open(_settings(ctx, data_dir=data_dir))
    try:
        report = Seeder(roost, plan, progress=click.echo).run()
    except SeedError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        roost.close()
    click.echo(f"Seeded {report.accounts:,} accounts, {report.follows:,} follows and "
               f"{report.posts:,} posts in {report.seconds:.1f}s.")
