"""Posts (statuses): create, delete, threads, favourites, reblogs, and bulk hydration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from roost.clock import now_ms
from roost.domain import content
from roost.domain.errors import Forbidden, InvalidInput, NotFound
from roost.domain.events import StatusDeleted, StatusPosted
from roost.domain.fanout import Fanout, fanout_job
from roost.domain.models import (
    Account,
    Page,
    Status,
    StatusMarks,
    StatusView,
    Tag,
    TimelineEntry,
    Visibility,
)
from roost.domain.notifications import notify, withdraw
from roost.domain.site import Site
from roost.ids import bucket_of, new_id
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

MAX_ANCESTORS = 40
MAX_DESCENDANTS = 4096
MAX_PINS = 5  # posts pinned to one profile, as Mastodon's default


def _pinnable(status: Status) -> bool:
    return status.reblog_of_id is None and status.visibility != Visibility.DIRECT


@dataclass
class NewPost:
    text: str
    visibility: Visibility = Visibility.PUBLIC
    spoiler_text: str = ""
    sensitive: bool = False
    language: str | None = None
    in_reply_to_id: int | None = None


class PostService:
    def __init__(self, db: Database, stores: Stores, site: Site, counter_shards: int,
                 pushes: Fanout) -> None:
        self.db = db
        self.stores = stores
        self.site = site
        self.shards = counter_shards
        self.pushes = pushes

    # -- reading ---------------------------------------------------------------------------

    def visible(self, tx: Tx, statuses: Sequence[Status], viewer_id: int | None) -> list[Status]:
        """The statuses ``viewer_id`` may see (private: followers and mentioned; direct:
        mentioned only; the author always)."""
        restricted = [s for s in statuses
                      if s.visibility in (Visibility.PRIVATE, Visibility.DIRECT)
                      and s.account_id != viewer_id]
        if not restricted:
            return list(statuses)
        if viewer_id is None:
            hidden = {s.id for s in restricted}
            return [s for s in statuses if s.id not in hidden]
        mentioned = self.stores.statuses.mentions_of(tx, [s.id for s in restricted])
        followed = self.stores.follows.following_of(
            tx, viewer_id, list({s.account_id for s in restricted
                                 if s.visibility == Visibility.PRIVATE}))
        hidden = {
            s.id for s in restricted
            if viewer_id not in mentioned.get(s.id, [])
            and not (s.visibility == Visibility.PRIVATE and s.account_id in followed)
        }
        return [s for s in statuses if s.id not in hidden]

    def views(self, tx: Tx, ids: Sequence[int], viewer_id: int | None, *,
              check_visibility: bool = True) -> list[StatusView]:
        """Hydrate statuses for a viewer in a fixed number of queries, keeping ``ids``' order
        and dropping any that are gone or (unless the caller has already decided who may see
        them, as for live delivery) not visible to the viewer."""
        found = self.stores.statuses.by_ids(tx, ids)
        originals_needed = {s.reblog_of_id for s in found.values() if s.reblog_of_id} - set(found)
        everything = {**found, **self.stores.statuses.by_ids(tx, originals_needed)}
        if check_visibility:
            seen = {s.id for s in self.visible(tx, list(everything.values()), viewer_id)}
        else:
            seen = set(everything)
        shown = [i for i in ids if i in seen and (
            everything[i].reblog_of_id is None or everything[i].reblog_of_id in seen)]
        own_ids = list(everything)
        mentions, tags = self.stores.statuses.mentions_and_tags(tx, own_ids)
        account_ids = {s.account_id for s in everything.values()}
        account_ids.update(a for ms in mentions.values() for a in ms)
        accounts = self.stores.accounts.by_ids(tx, account_ids)
        content_ids = [everything[i].reblog_of_id or i for i in shown]
        marks = (self.stores.statuses.viewer_marks(tx, viewer_id, content_ids) if viewer_id
                 else StatusMarks(set(), set(), set(), set()))

        def view(status: Status) -> StatusView:
            return StatusView(
                status=status,
                account=accounts[status.account_id],
                mentions=[accounts[a] for a in mentions.get(status.id, []) if a in accounts],
                tags=tags.get(status.id, []),
                favourited=status.id in marks.favourited,
                reblogged=status.id in marks.reblogged,
                bookmarked=status.id in marks.bookmarked,
                pinned=(status.id in marks.pinned if status.account_id == viewer_id
                        and _pinnable(status) else None),
            )

        out = []
        for status_id in shown:
            status = everything[status_id]
            if status.account_id not in accounts:
                continue
            v = view(status)
            if status.reblog_of_id is not None:
                original = everything[status.reblog_of_id]
                if original.account_id not in accounts:
                    continue
                v.reblog = view(original)
            out.append(v)
        return out

    async def get(self, status_id: int, viewer_id: int | None) -> StatusView:
        found = await self.db.read(lambda tx: self.views(tx, [status_id], viewer_id), bounded=True)
        if not found:
            raise NotFound()
        return found[0]

    def _visible_status(self, tx: Tx, status_id: int, viewer_id: int | None) -> Status:
        status = self.stores.statuses.by_ids(tx, [status_id]).get(status_id)
        if status is None or not self.visible(tx, [status], viewer_id):
            raise NotFound()
        return status

    async def context(self, status_id: int,
                      viewer_id: int | None) -> tuple[list[StatusView], list[StatusView]]:
        def read(tx: Tx) -> tuple[list[StatusView], list[StatusView]]:
            status = self._visible_status(tx, status_id, viewer_id)
            ancestors: list[int] = []
            parent_id = status.in_reply_to_id
            while parent_id is not None and len(ancestors) < MAX_ANCESTORS:
                parent = self.stores.statuses.by_ids(tx, [parent_id]).get(parent_id)
                if parent is None:
                    break
                ancestors.append(parent.id)
                parent_id = parent.in_reply_to_id
            ancestors.reverse()
            children: dict[int, list[int]] = {}
            frontier = [status.id]
            total = 0
            while frontier and total < MAX_DESCENDANTS:
                replies = self.stores.statuses.replies_to(tx, frontier)
                frontier = []
                for reply in replies:
                    children.setdefault(reply.in_reply_to_id or 0, []).append(reply.id)
                    frontier.append(reply.id)
                    total += 1
            descendants: list[int] = []
            stack = list(reversed(children.get(status.id, [])))
            while stack:  # depth first, oldest reply first, as Mastodon orders a thread
                current = stack.pop()
                descendants.append(current)
                stack.extend(reversed(children.get(current, [])))
            return self.views(tx, ancestors, viewer_id), self.views(tx, descendants, viewer_id)

        return await self.db.read(read)

    async def favourited_by(self, status_id: int, viewer_id: int | None,
                            page: Page) -> list[tuple[int, Account]]:
        def read(tx: Tx) -> list[tuple[int, Account]]:
            self._visible_status(tx, status_id, viewer_id)
            rows = self.stores.favourites.favouriters_page(tx, status_id, page)
            accounts = self.stores.accounts.by_ids(tx, [a for _, a in rows])
            return [(i, accounts[a]) for i, a in rows if a in accounts]

        return await self.db.read(read)

    async def reblogged_by(self, status_id: int, viewer_id: int | None,
                           page: Page) -> list[tuple[int, Account]]:
        def read(tx: Tx) -> list[tuple[int, Account]]:
            self._visible_status(tx, status_id, viewer_id)
            rows = self.stores.statuses.rebloggers_page(tx, status_id, page)
            accounts = self.stores.accounts.by_ids(tx, [a for _, a in rows])
            return [(i, accounts[a]) for i, a in rows if a in accounts]

        return await self.db.read(read)

    async def search_tags(self, query: str, limit: int, offset: int) -> list[Tag]:
        return await self.db.read(lambda tx: self.stores.tags.search(tx, query, limit, offset),
                                  scan=True)

    # -- writing ---------------------------------------------------------------------------

    def validate(self, post: NewPost) -> None:
        if not post.text.strip():
            raise InvalidInput("Validation failed: Text can't be blank")
        length = content.count_characters(post.text) + content.count_characters(post.spoiler_text)
        if length > self.site.max_post_chars:
            raise InvalidInput(
                f"Validation failed: Text character limit of {self.site.max_post_chars} exceeded"
            )

    async def create(self, author_id: int, post: NewPost,
                     idempotency_key: str | None = None) -> StatusView:
        self.validate(post)
        return await self.db.write(lambda tx: self._create(tx, author_id, post, idempotency_key))

    def _create(self, tx: Tx, author_id: int, post: NewPost,
                idempotency_key: str | None) -> StatusView:
        """Store a new post; returns it as its author sees it, built from what the
        transaction already holds (no read-back: on PostgreSQL that was five round trips)."""
        stores = self.stores
        if idempotency_key:
            earlier = stores.statuses.idempotent_status(tx, author_id, idempotency_key)
            if earlier is not None:
                found = self.views(tx, [earlier], author_id)
                if not found:
                    raise NotFound()  # (posted, then deleted)
                return found[0]
        author = stores.accounts.by_ids(tx, [author_id])[author_id]
        parent = None
        if post.in_reply_to_id is not None:
            parent = self._visible_status(tx, post.in_reply_to_id, author_id)
            if parent.reblog_of_id is not None:
                parent = self._visible_status(tx, parent.reblog_of_id, author_id)
        parsed = content.parse(post.text, self.site.domain)
        mentioned = [a for a in (stores.accounts.by_username(tx, u) for u in parsed.mentions)
                     if a is not None]
        profiles = {a.username.lower(): self.site.profile_url(a.username) for a in mentioned}
        html = content.render(post.text, profile_url=content.profile_url_lookup(profiles),
                              tag_url=self.site.tag_url, local_domain=self.site.domain)
        at = now_ms()
        status = Status(
            id=new_id(), account_id=author_id, text=post.text, content=html,
            spoiler_text=post.spoiler_text, sensitive=post.sensitive or bool(post.spoiler_text),
            visibility=post.visibility, language=post.language,
            in_reply_to_id=parent.id if parent else None,
            in_reply_to_account_id=parent.account_id if parent else None,
            reblog_of_id=None, pushed=not author.pulled, replies_count=0, reblogs_count=0,
            favourites_count=0, created_at=at,
        )
        stores.statuses.insert(tx, status)
        stores.statuses.add_mentions(tx, status.id, [a.id for a in mentioned])
        tags = stores.tags.ensure(tx, parsed.hashtags, at)
        stores.tags.link(tx, status.id, [t.id for t in tags])
        self._count_new_status(tx, author, status)
        if parent is not None:
            stores.statuses.add_counts(tx, parent.id, replies=1)
        for account in mentioned:
            notify(stores, tx, account.id, "mention", author_id, status.id)
        direct_readers = [author_id]
        if post.visibility in (Visibility.PRIVATE, Visibility.DIRECT):
            direct_readers += [a.id for a in mentioned if a.id != author_id]
        self._deliver(tx, status, author, direct_readers)
        if idempotency_key:
            stores.statuses.remember_idempotency(tx, author_id, idempotency_key, status.id, at)
        # As ``views`` would load it: mentions and tags in id order, nothing counted yet.
        return StatusView(
            status=status,
            account=replace(author, statuses_count=author.statuses_count + 1,
                            last_status_at=at),
            mentions=sorted({a.id: a for a in mentioned}.values(), key=lambda a: a.id),
            tags=sorted({t.id: t for t in tags}.values(), key=lambda t: t.id),
            pinned=False if _pinnable(status) else None,
        )

    def _count_new_status(self, tx: Tx, author: Account, status: Status) -> None:
        self.stores.counters.add(tx, author.id, bucket_of(status.id, self.shards), statuses=1)
        changes: dict[str, object] = {"last_status_at": status.created_at}
        if not status.pushed:
            changes["has_unpushed"] = True
        self.stores.accounts.update(tx, author.id, changes)

    def _deliver(self, tx: Tx, status: Status, author: Account,
                 direct_readers: list[int]) -> None:
        """Put a new status in its author's (and direct readers') home timelines now, and
        push it to the followers' (``Fanout``): now, or as a job recorded in this same
        transaction (the outbox)."""
        entry = TimelineEntry(status.id, status.account_id, status.reblog_of_id)
        self.stores.home.add(tx, direct_readers, entry)
        emit(tx, StatusPosted(status.id, status.account_id, tuple(direct_readers)))
        if status.pushed and status.visibility != Visibility.DIRECT and not (
                self.pushes.at_once(tx, status, author.followers_count)):
            self.stores.jobs.enqueue(tx, "fanout", fanout_job(status), run_after=0)

    async def delete(self, author_id: int, status_id: int) -> StatusView:
        def remove(tx: Tx) -> StatusView:
            status = self.stores.statuses.by_ids(tx, [status_id]).get(status_id)
            if status is None or status.account_id != author_id:
                raise NotFound()
            view = self.views(tx, [status_id], author_id)[0]
            for reblog_id in self.stores.statuses.reblogs_of(tx, status_id):
                reblog = self.stores.statuses.by_ids(tx, [reblog_id])[reblog_id]
                self._remove_status(tx, reblog)
            self._remove_status(tx, status)
            return view

        return await self.db.write(remove)

    def _remove_status(self, tx: Tx, status: Status) -> None:
        stores = self.stores
        stores.favourites.delete_for_status(tx, status.id)
        stores.bookmarks.delete_for_status(tx, status.id)
        stores.pins.delete_for_status(tx, status.id)
        tags = stores.tags.of_statuses(tx, [status.id]).get(status.id, [])
        stores.tags.unlink(tx, status.id)
        stores.notifications.delete_for_status(tx, status.id)
        mentioned = stores.statuses.mentions_of(tx, [status.id]).get(status.id, [])
        if status.in_reply_to_id is not None:
            stores.statuses.add_counts(tx, status.in_reply_to_id, replies=-1)
        if status.reblog_of_id is not None:
            stores.statuses.add_counts(tx, status.reblog_of_id, reblogs=-1)
            original = stores.statuses.by_ids(tx, [status.reblog_of_id]).get(status.reblog_of_id)
            if original is not None:
                withdraw(stores, tx, original.account_id, "reblog", status.account_id,
                         original.id)
        stores.statuses.delete(tx, status.id)
        stores.counters.add(tx, status.account_id, bucket_of(status.id, self.shards), statuses=-1)
        stores.home.remove(tx, [status.account_id, *mentioned], status.id)
        emit(tx, StatusDeleted(status.id, status.account_id,
                               (status.account_id, *mentioned), status.visibility,
                               status.reblog_of_id is not None, status.pushed,
                               tuple(t.name for t in tags)))
        if status.pushed:
            stores.jobs.enqueue(tx, "unfanout", {
                "status_id": status.id, "author_id": status.account_id, "after": 0,
            }, run_after=0)

    def _content_status(self, tx: Tx, status_id: int, viewer_id: int) -> Status:
        """The status a favourite of ``status_id`` is about: a reblog's original (as in
        Mastodon, favouriting a reblog favourites what it reblogged)."""
        status = self._visible_status(tx, status_id, viewer_id)
        if status.reblog_of_id is None:
            return status
        return self._visible_status(tx, status.reblog_of_id, viewer_id)

    async def favourite(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> None:
            status = self._content_status(tx, status_id, account_id)
            if self.stores.favourites.insert(tx, account_id, status.id, new_id(), now_ms()):
                self.stores.statuses.add_counts(tx, status.id, favourites=1)
                notify(self.stores, tx, status.account_id, "favourite", account_id, status.id)

        await self.db.write(apply)
        return await self.get(status_id, account_id)

    async def unfavourite(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> None:
            status = self._content_status(tx, status_id, account_id)
            if self.stores.favourites.delete(tx, account_id, status.id):
                self.stores.statuses.add_counts(tx, status.id, favourites=-1)
                withdraw(self.stores, tx, status.account_id, "favourite", account_id, status.id)

        await self.db.write(apply)
        return await self.get(status_id, account_id)

    async def bookmark(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> int:
            status = self._visible_status(tx, status_id, account_id)
            original_id = status.reblog_of_id or status.id
            self.stores.bookmarks.insert(tx, account_id, original_id, new_id(), now_ms())
            return status.id

        return await self.get(await self.db.write(apply), account_id)

    async def unbookmark(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> int:
            status = self._visible_status(tx, status_id, account_id)
            self.stores.bookmarks.delete(tx, account_id, status.reblog_of_id or status.id)
            return status.id

        return await self.get(await self.db.write(apply), account_id)

    async def pin(self, account_id: int, status_id: int) -> StatusView:
        """Pin one's own post to one's profile (at most ``MAX_PINS``; not a reblog or a
        direct post), as in Mastodon; pinning it again changes nothing."""

        def apply(tx: Tx) -> None:
            status = self._visible_status(tx, status_id, account_id)
            if status.account_id != account_id:
                raise InvalidInput("Validation failed: You can only pin your own posts")
            if status.reblog_of_id is not None:
                raise InvalidInput("Validation failed: A boost cannot be pinned")
            if status.visibility == Visibility.DIRECT:
                raise InvalidInput("Validation failed: Direct posts cannot be pinned")
            if (self.stores.pins.count(tx, account_id) >= MAX_PINS
                    and status.id not in self.stores.pins.of_account(tx, account_id)):
                raise InvalidInput(f"Validation failed: You can pin at most {MAX_PINS} posts")
            self.stores.pins.insert(tx, account_id, status.id, new_id(), now_ms())

        await self.db.write(apply)
        return await self.get(status_id, account_id)

    async def unpin(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> None:
            status = self._visible_status(tx, status_id, account_id)
            self.stores.pins.delete(tx, account_id, status.id)

        await self.db.write(apply)
        return await self.get(status_id, account_id)

    async def pinned(self, account_id: int, viewer_id: int | None) -> list[StatusView]:
        """The posts ``account_id`` pinned that the viewer may see, most recently pinned
        first."""

        def read(tx: Tx) -> list[StatusView]:
            if not self.stores.accounts.by_ids(tx, [account_id]):
                raise NotFound()
            return self.views(tx, self.stores.pins.of_account(tx, account_id), viewer_id)

        return await self.db.read(read)

    async def bookmarks(self, account_id: int, page: Page) -> list[tuple[int, StatusView]]:
        """The viewer's bookmarked statuses, most recently bookmarked first."""
        return await self._marked(self.stores.bookmarks.page, account_id, page)

    async def favourites(self, account_id: int, page: Page) -> list[tuple[int, StatusView]]:
        """The viewer's favourited statuses, most recently favourited first."""
        return await self._marked(self.stores.favourites.page, account_id, page)

    async def _marked(self, rows_of: Callable[[Tx, int, Page], list[tuple[int, int]]],
                      account_id: int, page: Page) -> list[tuple[int, StatusView]]:
        """A page of (mark id, status) from ``rows_of``'s (mark id, status id), dropping the
        statuses the viewer may no longer see."""

        def read(tx: Tx) -> list[tuple[int, StatusView]]:
            rows = rows_of(tx, account_id, page)
            views = {v.status.id: v for v in self.views(tx, [s for _, s in rows], account_id)}
            return [(i, views[s]) for i, s in rows if s in views]

        return await self.db.read(read)

    async def reblog(self, account_id: int, status_id: int,
                     visibility: Visibility = Visibility.PUBLIC) -> StatusView:
        if visibility == Visibility.DIRECT:
            raise InvalidInput("Validation failed: Visibility is not included in the list")

        def apply(tx: Tx) -> int:
            stores = self.stores
            target = self._visible_status(tx, status_id, account_id)
            if target.reblog_of_id is not None:
                target = self._visible_status(tx, target.reblog_of_id, account_id)
            if target.visibility == Visibility.DIRECT or (
                target.visibility == Visibility.PRIVATE and target.account_id != account_id
            ):
                raise Forbidden("This action is not allowed")
            existing = stores.statuses.reblog_id(tx, account_id, target.id)
            if existing is not None:
                return existing
            account = stores.accounts.by_ids(tx, [account_id])[account_id]
            reblog = replace(
                target, id=new_id(), account_id=account_id, text="", content="",
                spoiler_text="", sensitive=False, visibility=visibility, in_reply_to_id=None,
                in_reply_to_account_id=None, reblog_of_id=target.id, pushed=not account.pulled,
                created_at=now_ms(), edited_at=None,
            )
            stores.statuses.insert(tx, reblog)
            stores.statuses.add_counts(tx, target.id, reblogs=1)
            self._count_new_status(tx, account, reblog)
            notify(stores, tx, target.account_id, "reblog", account_id, target.id)
            self._deliver(tx, reblog, account, [account_id])
            return reblog.id

        reblog_id = await self.db.write(apply)
        return await self.get(reblog_id, account_id)

    async def unreblog(self, account_id: int, status_id: int) -> StatusView:
        def apply(tx: Tx) -> int:
            target = self._visible_status(tx, status_id, account_id)
            original_id = target.reblog_of_id or target.id
            reblog_id = self.stores.statuses.reblog_id(tx, account_id, original_id)
            if reblog_id is not None:
                reblog = self.stores.statuses.by_ids(tx, [reblog_id])[reblog_id]
                self._remove_status(tx, reblog)
            return original_id

        original_id = await self.db.write(apply)
        return await self.get(original_id, account_id)
