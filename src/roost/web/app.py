"""The ASGI application: routes, error handlers, and the embedded background worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from roost.runtime import Roost
from roost.storage.pubsub import LocalPubSub
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
from roost.web.pages import assets
from roost.web.pages import oauth as oauth_pages
from roost.web.ratelimit import Window
from roost.web.streaming import routes as streaming
from roost.web.streaming.publisher import Publisher


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
    ]


def create_app(roost: Roost, *, run_background: bool = True) -> Starlette:
    """The web application for ``roost``; with ``run_background`` it also runs the embedded
    worker (fan-out and other jobs) in the same process."""

    pubsub = LocalPubSub()
    publisher = Publisher(roost, pubsub)
    roost.db.on_commit(publisher.on_commit)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        roost.start()
        tasks = [asyncio.create_task(publisher.run())]
        if run_background:
            tasks.append(asyncio.create_task(roost.run_background()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            roost.close()

    app = Starlette(routes=all_routes(), exception_handlers=errors.HANDLERS, lifespan=lifespan)
    app.state.roost = roost
    app.state.pubsub = pubsub
    app.state.signups = Window(roost.settings.signups_per_hour, 3600)
    app.state.failed_logins = Window(roost.settings.failed_logins_per_5min, 300)
    return app
