"""The ASGI application: routes, error handlers, and the embedded background worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from roost.runtime import Roost, dump_stacks_on_sigusr1
from roost.settings import Settings
from roost.storage.pubsub import pubsub_for
from roost.storage.ratelimits import rate_windows_for
from roost.web import errors, openapi
from roost.web.api import (
    accounts,
    apps,
    bookmarks,
    follow_requests,
    instance,
    notifications,
    roost_admin,
    roost_races,
    roost_stats,
    search,
    statuses,
    timelines,
)
from roost.web.pages import account_settings, assets, profiles
from roost.web.pages import auth as auth_pages
from roost.web.pages import notifications as notification_pages
from roost.web.pages import oauth as oauth_pages
from roost.web.pages import search as search_pages
from roost.web.pages import statuses as status_pages
from roost.web.pages import timelines as timeline_pages
from roost.web.pages.session import WebSessions
from roost.web.ratelimit import Window
from roost.web.routing import IndexedRouter
from roost.web.streaming import routes as streaming
from roost.web.streaming.publisher import Publisher, forget_revoked_tokens


def all_routes() -> list[BaseRoute]:
    return [
        *instance.routes,
        *apps.routes,
        *accounts.routes,
        *follow_requests.routes,
        *statuses.routes,
        *bookmarks.routes,
        *timelines.routes,
        *notifications.routes,
        *search.routes,
        *roost_stats.routes,
        *roost_races.routes,
        *roost_admin.routes,
        *oauth_pages.routes,
        *assets.routes,
        *streaming.routes,
        *openapi.routes,
        # The web interface (server-rendered pages); profiles before /@{username}/{status_id}.
        *auth_pages.routes,
        *timeline_pages.routes,
        *notification_pages.routes,
        *search_pages.routes,
        *account_settings.routes,
        *profiles.routes,
        *status_pages.routes,
    ]


def create_app(roost: Roost, *, run_background: bool = True) -> Starlette:
    """The web application for ``roost``; with ``run_background`` it also runs the embedded
    worker (fan-out and other jobs) in the same process."""

    settings = roost.settings
    pubsub = pubsub_for(settings)
    publisher = Publisher(roost, pubsub)
    roost.db.on_commit(publisher.on_commit)
    signups = Window(settings.signups_per_hour, rate_windows_for(settings, "signups", 3600))
    failed_logins = Window(settings.failed_logins_per_5min,
                           rate_windows_for(settings, "failed_logins", 300))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        roost.start()
        tasks = [asyncio.create_task(publisher.run()),
                 asyncio.create_task(forget_revoked_tokens(roost, pubsub))]
        if run_background:
            tasks.append(asyncio.create_task(roost.run_background()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await pubsub.close()
            signups.close()
            failed_logins.close()
            roost.close()

    app = Starlette(exception_handlers=errors.HANDLERS,
                    middleware=[Middleware(WebSessions, settings=roost.settings)])
    app.router = IndexedRouter(all_routes(), lifespan=lifespan)  # (as Starlette makes its own)
    app.state.roost = roost
    app.state.pubsub = pubsub
    app.state.signups = signups
    app.state.failed_logins = failed_logins
    return app


def app_from_environment() -> Starlette:
    """The app of one of several web processes (``ROOST_WEB_PROCESSES``): settings come from
    the environment, which ``roost serve`` filled in before starting them."""
    settings = Settings.from_environment()
    dump_stacks_on_sigusr1()  # (a process of its own: `roost` set it up in its parent only)
    return create_app(Roost(settings, serving=True), run_background=settings.embedded_worker)
