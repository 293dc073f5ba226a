"""`roost seed`: a synthetic community, loaded fast, with every counter and history exact.

Follower counts follow Twitter's measured distribution (Kwak et al., WWW 2010: a power law with
exponent about 2.28 up to 100,000 followers; about 22% of follows reciprocated), plus named
celebrity accounts with a given number of followers, and a few recent posts per account. The
follows arrive over the last ``days`` (celebrities' ever faster), so the follower history,
rollups and milestones have something to show. Everything is written with the bulk loader in
large transactions (COPY on PostgreSQL), then checked by `roost check`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from roost.clock import now_ms
from roost.domain.stats import MINUTE_MS
from roost.runtime import Roost
from roost.storage.bulk import BulkLoader
from roost.storage.schema import (
    account_counters,
    accounts,
    follow_events,
    follower_rollups,
    follows,
    milestones,
    statuses,
)

DAY_MS = 86_400_000


@dataclass
class SeedPlan:
    accounts: int = 1_000_000
    celebrities: dict[str, int] = field(
        default_factory=lambda: {"aplusk": 1_000_000, "cnnbrk": 1_000_000})
    posts_per_account: int = 3
    days: int = 7
    exponent: float = 2.28
    cap: int = 100_000
    reciprocity: float = 0.22
    prefix: str = "user"
    seed: int = 2009


@dataclass
class SeedReport:
    accounts: int = 0
    follows: int = 0
    posts: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


class SeedError(Exception):
    pass


def _power_law(rng: random.Random, exponent: float, cap: int) -> int:
    """A follower count: P(k) ~ k^-exponent for k >= 1, shifted so 0 is possible, capped."""
    k = int((1.0 - rng.random()) ** (-1.0 / (exponent - 1.0))) - 1
    return min(k, cap)


class Seeder:
    def __init__(self, roost: Roost, plan: SeedPlan,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self.roost = roost
        self.plan = plan
        self.progress = progress
        self.loader = BulkLoader(roost.db)
        self.rng = random.Random(plan.seed)

    def run(self) -> SeedReport:
        plan = self.plan
        report = SeedReport()
        began = time.monotonic()
        n = plan.accounts
        names = [f"{plan.prefix}{i + 1}" for i in range(n)] + list(plan.celebrities)
        for celebrity, count in plan.celebrities.items():
            if count > n:
                raise SeedError(f"@{celebrity} cannot have {count:,} followers among "
                                f"{n:,} accounts")
        self._check_free([names[0], names[n - 1] if n else names[0], *plan.celebrities])
        asyncio.run(self.roost.stats.roll_up())  # fold what exists, up to about now
        end = now_ms() - MINUTE_MS  # every seeded event lies in an already rolled-up minute
        start = end - plan.days * DAY_MS
        ids = self._account_ids(len(names), start - 30 * DAY_MS, start)

        stage = time.monotonic()
        followers_of = self._graph(n)
        edges = sum(len(f) for f in followers_of.values())
        report.stages["graph"] = time.monotonic() - stage
        self.progress(f"graph: {len(names):,} accounts, {edges:,} follows "
                      f"({report.stages['graph']:.1f}s)")

        stage = time.monotonic()
        times = self._follow_times(followers_of, n, start, end)
        followers_count = {t: len(f) for t, f in followers_of.items()}
        following_count: dict[int, int] = {}
        for fans in followers_of.values():
            for f in fans:
                following_count[f] = following_count.get(f, 0) + 1
        pulled = {t for t, c in followers_count.items()
                  if c >= self.roost.settings.fanout_pull_above}

        report.accounts = self.loader.insert(accounts, [
            "id", "username", "username_lower", "display_name", "note", "fields", "locked",
            "bot", "discoverable", "email", "password_hash", "is_admin", "locale", "pulled",
            "has_unpushed", "created_at", "last_status_at", "last_active_at"], lambda: (
            (ids[i], name, name.lower(), "", "", "[]", False, False, True, None, None, False,
             "en", i in pulled, i in pulled, ids[i] >> 16,
             end if plan.posts_per_account else None, end)
            for i, name in enumerate(names)))
        report.stages["accounts"] = time.monotonic() - stage
        self.progress(f"accounts: {report.accounts:,} ({report.stages['accounts']:.1f}s)")

        stage = time.monotonic()
        report.follows = self.loader.insert(
            follows, ["account_id", "target_account_id", "id", "show_reblogs", "notify",
                      "created_at"],
            lambda: ((ids[f], ids[t], event_id, True, False, at)
                     for t, f, event_id, at in self._edge_rows(followers_of, times)))
        self.loader.insert(
            follow_events, ["target_account_id", "id", "account_id", "delta", "created_at"],
            lambda: ((ids[t], event_id, ids[f], 1, at)
                     for t, f, event_id, at in self._edge_rows(followers_of, times)))
        report.stages["follows"] = time.monotonic() - stage
        rate = report.follows / max(report.stages["follows"], 1e-9)
        self.progress(f"follows: {report.follows:,} edges and history events "
                      f"({report.stages['follows']:.1f}s, {rate:,.0f}/s)")

        stage = time.monotonic()
        rollups, reached = self._rollups(followers_of, times, ids)
        # The rollup already covers every minute before now (it ran before the load), so the
        # seeded minutes are never folded twice: their rollups are written here directly.
        self.loader.insert(follower_rollups, ["account_id", "minute", "followers", "gained",
                                              "lost", "peak"], lambda: rollups)
        self.loader.insert(milestones, ["account_id", "count", "reached_at", "follower_id"],
                           lambda: reached)
        report.stages["history"] = time.monotonic() - stage
        self.progress(f"history: {len(rollups):,} minute rollups, {len(reached):,} milestones "
                      f"({report.stages['history']:.1f}s)")

        stage = time.monotonic()
        report.posts = self._posts(names, ids, pulled, end)
        self.loader.insert(account_counters, ["account_id", "shard", "followers", "following",
                                              "statuses"], lambda: (
            (ids[i], 0, followers_count.get(i, 0), following_count.get(i, 0),
             plan.posts_per_account) for i in range(len(names))))
        report.stages["posts"] = time.monotonic() - stage
        self.progress(f"posts: {report.posts:,} ({report.stages['posts']:.1f}s)")

        stage = time.monotonic()
        self.loader.analyze()
        report.stages["statistics"] = time.monotonic() - stage
        self.progress(f"statistics: the planner's refreshed ({report.stages['statistics']:.1f}s)")
        report.seconds = time.monotonic() - began
        return report

    def _check_free(self, usernames: list[str]) -> None:
        store = self.roost.stores.accounts
        clash = self.roost.db.read_sync(
            lambda tx: [u for u in usernames if store.by_username(tx, u) is not None])
        if clash:
            raise SeedError(f"Usernames already taken: {', '.join(clash)} "
                            f"(use another --prefix, or a fresh database)")

    @staticmethod
    def _account_ids(count: int, first_ms: int, last_ms: int) -> list[int]:
        step = max((last_ms - first_ms) / max(count, 1), 1 / 65536)
        return [(int(first_ms + i * step) << 16) | (i & 0xFFFF) for i in range(count)]

    def _graph(self, n: int) -> dict[int, list[int]]:
        """Followers of each account (by index): power law, reciprocity, celebrities."""
        plan, rng = self.plan, self.rng
        followers_of: dict[int, list[int]] = {}
        seen: set[int] = set()
        total = n + len(plan.celebrities)
        for target in range(n):
            k = min(_power_law(rng, plan.exponent, plan.cap), n - 1)
            if k == 0:
                continue
            chosen = rng.sample(range(n - 1), k)
            fans = followers_of.setdefault(target, [])
            for f in chosen:
                follower = f if f < target else f + 1  # never oneself
                key = follower * total + target
                if key in seen:
                    continue
                seen.add(key)
                fans.append(follower)
                if rng.random() < plan.reciprocity:
                    back = target * total + follower
                    if back not in seen:
                        seen.add(back)
                        followers_of.setdefault(follower, []).append(target)
        for offset, count in enumerate(plan.celebrities.values()):
            followers_of[n + offset] = rng.sample(range(n), count)
        return followers_of

    def _follow_times(self, followers_of: dict[int, list[int]], n: int, start: int,
                      end: int) -> dict[int, list[int]]:
        """When each follow happened, oldest first per account (celebrities ever faster)."""
        rng, span = self.rng, end - start
        out = {}
        for target, fans in followers_of.items():
            if target >= n:
                draws = [start + int(span * rng.random() ** 0.5) for _ in fans]
            else:
                draws = [start + int(span * rng.random()) for _ in fans]
            draws.sort()
            out[target] = draws
        return out

    @staticmethod
    def _edge_rows(followers_of: dict[int, list[int]],
                   times: dict[int, list[int]]) -> Iterator[tuple[int, int, int, int]]:
        """(target, follower, event id, time); ids unique per account and in time order."""
        for target, fans in followers_of.items():
            last_ms, seq = -1, 0
            for follower, at in zip(fans, times[target], strict=True):
                seq = seq + 1 if at == last_ms else 0
                last_ms = at
                yield target, follower, (at << 16) | (seq & 0xFFFF), at

    def _rollups(self, followers_of: dict[int, list[int]], times: dict[int, list[int]],
                 ids: list[int]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """Per-minute rollups (follows only: gained = followers = peak) and milestones."""
        rollups: list[tuple[int, ...]] = []
        reached: list[tuple[int, ...]] = []
        rule = self.roost.milestones
        for target, fans in followers_of.items():
            account = ids[target]
            count = 0
            minute = None
            for follower, at in zip(fans, times[target], strict=True):
                this_minute = at // MINUTE_MS
                if minute is not None and this_minute != minute:
                    rollups.append((account, minute, count, count, 0, count))
                minute = this_minute
                count += 1
                if count in rule:
                    reached.append((account, count, at, ids[follower]))
            if minute is not None:
                rollups.append((account, minute, count, count, 0, count))
        return rollups, reached

    def _posts(self, names: list[str], ids: list[int], pulled: set[int], end: int) -> int:
        per = self.plan.posts_per_account
        total = len(names) * per
        if total == 0:
            return 0
        first = end - DAY_MS
        step = max(DAY_MS / total, 1 / 65536)

        def rows() -> Iterator[tuple[object, ...]]:
            for i in range(len(names)):
                for p in range(per):
                    index = i * per + p
                    at = int(first + index * step)
                    text = f"Post {p + 1} from {names[i]}"  # usernames need no escaping
                    yield ((at << 16) | (index & 0xFFFF), ids[i], text, f"<p>{text}</p>", "",
                           False, "public", "en", None, None, None, i not in pulled, 0, 0, 0,
                           at, None)

        count = self.loader.insert(statuses, [
            "id", "account_id", "text", "content", "spoiler_text", "sensitive", "visibility",
            "language", "in_reply_to_id", "in_reply_to_account_id", "reblog_of_id", "pushed",
            "replies_count", "reblogs_count", "favourites_count", "created_at", "edited_at"],
            rows)
        return count
