"""Who has a topic's page open right now, across every web process (the "who is in the room").

Redis holds, per topic, a sorted set of connection ids scored by when each entry expires, and a hash
of connection id -> the person behind it. Each process keeps its own connections' entries alive by
re-scoring them every third of ``LIVE_PRESENCE_TTL_SECONDS``; the entries of a process that died
without closing its sockets simply stop being renewed and are swept once they expire.

Any change (a join, a leave, a sweep) publishes the whole list on the topic as
``{"type": "presence", "present": [...]}``, deduplicated per person. Changes are coalesced per
process: one task writes every join and leave it has collected in one pipeline and publishes at
most one list per topic per ``LIVE_PRESENCE_BROADCAST_INTERVAL_MS``, so a storm of 1,000 connects
costs a handful of Redis round trips, not 1,000 lists sent to 1,000 sockets.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from typing import Any, cast

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from ctpn.realtime import encode, topic_channel

from .fanout import PerLoop

logger = logging.getLogger(__name__)

KEY_PREFIX = "ctpn:presence:"


def members_key(topic: str) -> str:
    return f"{KEY_PREFIX}{topic}"


def people_key(topic: str) -> str:
    return f"{KEY_PREFIX}{topic}:people"


def present_list(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per person (a person may have several tabs or screens open), sorted by name."""
    unique: dict[Any, dict[str, Any]] = {}
    for person in people:
        unique.setdefault(person.get("user_id"), person)
    return sorted(unique.values(), key=lambda p: (str(p.get("name", "")).lower(), p["user_id"]))


class Presence:
    """The presence bookkeeping of one event loop (one per web process in production)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.redis_url: str = settings.REDIS_URL
        self.ttl = float(settings.LIVE_PRESENCE_TTL_SECONDS)
        self.interval = settings.LIVE_PRESENCE_BROADCAST_INTERVAL_MS / 1000
        self.process = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self.local: dict[str, dict[str, dict[str, Any]]] = {}  # topic -> connection id -> person
        self._joined: dict[str, dict[str, dict[str, Any]]] = {}
        self._left: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def join(self, topic: str, person: dict[str, Any]) -> str:
        """Count a connection in; returns its id for ``leave``. Written to Redis shortly."""
        connection_id = f"{self.process}:{next(self._ids)}"
        self.local.setdefault(topic, {})[connection_id] = person
        self._joined.setdefault(topic, {})[connection_id] = person
        self._changed(topic)
        return connection_id

    def leave(self, topic: str, connection_id: str) -> None:
        members = self.local.get(topic)
        if members is None or members.pop(connection_id, None) is None:
            return
        if not members:
            del self.local[topic]
        joined = self._joined.get(topic)
        if joined is not None and joined.pop(connection_id, None) is not None:
            # Joined and left before it was ever written: nothing to undo in Redis.
            pass
        else:
            self._left.setdefault(topic, set()).add(connection_id)
        self._changed(topic)

    def _changed(self, topic: str) -> None:
        self._dirty.add(topic)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="live-presence")

    async def stop(self, *, forget: bool = True) -> None:
        """Stop the background task; with ``forget``, remove this process's entries first."""
        task, self._task = self._task, None
        if task is not None:
            # The flag too: a cancellation that lands inside a Redis command can be absorbed by
            # the client library, and the loop must still end.
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._stopping = False
        if forget:
            # Joins not yet written are dropped; everything written (or about to be) is removed.
            for topic, members in self.local.items():
                self._left.setdefault(topic, set()).update(members)
            self._dirty |= set(self._left)
            self.local.clear()
            self._joined.clear()
            if self._dirty:
                try:
                    await self._flush()
                except (RedisError, OSError) as exc:
                    logger.warning("could not remove presence on stop: %r", exc)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        return self._client

    async def _run(self) -> None:
        refresh_every = self.ttl / 3
        next_refresh = time.monotonic() + refresh_every
        while (self.local or self._dirty) and not self._stopping:
            timeout = max(0.0, next_refresh - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            try:
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + refresh_every
                    await self._refresh()
                if self._dirty and not self._stopping:
                    await self._flush()
                    if self._stopping:
                        return
                    # Coalesce: whatever changes during the pause goes out in the next round.
                    await asyncio.sleep(self.interval)
            except (RedisError, OSError) as exc:
                # Keep what was not written; retry on the next round.
                logger.warning("presence not written to Redis: %r", exc)
                await asyncio.sleep(min(self.ttl / 3, 1.0))
                self._wake.set()
            except Exception:
                # Presence is a courtesy: a bug here must not stop the refreshes for good.
                logger.exception("presence round failed")
                await asyncio.sleep(min(self.ttl / 3, 1.0))

    async def _flush(self) -> None:
        """Write collected joins and leaves, then publish the list of each changed topic."""
        dirty, self._dirty = self._dirty, set()
        joined, self._joined = self._joined, {}
        left, self._left = self._left, {}
        try:
            expires = time.time() + self.ttl
            pipe = self.client.pipeline(transaction=False)
            for topic, people in joined.items():
                if people:
                    pipe.zadd(members_key(topic), dict.fromkeys(people, expires))
                    pipe.hset(
                        people_key(topic),
                        mapping={cid: json.dumps(person) for cid, person in people.items()},
                    )
            for topic, ids in left.items():
                if ids:
                    pipe.zrem(members_key(topic), *ids)
                    pipe.hdel(people_key(topic), *ids)
            for topic in dirty:
                self._expire_keys(pipe, topic)
            await pipe.execute()
        except BaseException:
            # Put the batch back (later changes win) so the next round writes it.
            for topic, people in joined.items():
                still_here = {c: p for c, p in people.items() if c in self.local.get(topic, {})}
                self._joined.setdefault(topic, {}).update(still_here)
            for topic, ids in left.items():
                self._left.setdefault(topic, set()).update(ids)
            self._dirty |= dirty
            raise
        for topic in dirty:
            await self._broadcast(topic)

    def _expire_keys(self, pipe: Any, topic: str) -> None:
        # A topic nobody watches any more does not keep its keys forever.
        keep = int(self.ttl * 4) + 1
        pipe.expire(members_key(topic), keep)
        pipe.expire(people_key(topic), keep)

    async def _refresh(self) -> None:
        """Keep this process's entries alive and sweep other processes' expired ones."""
        if not self.local:
            return
        now = time.time()
        expires = now + self.ttl
        pipe = self.client.pipeline(transaction=False)
        topics = list(self.local)
        for topic in topics:
            people = self.local[topic]
            pipe.zadd(members_key(topic), dict.fromkeys(people, expires))
            # Re-written too, in case a sweep elsewhere removed an entry of ours during a stall.
            pipe.hset(
                people_key(topic),
                mapping={cid: json.dumps(person) for cid, person in people.items()},
            )
            self._expire_keys(pipe, topic)
        for topic in topics:
            pipe.zcount(members_key(topic), "-inf", now)
        results = await pipe.execute()
        for topic, expired in zip(topics, results[-len(topics) :], strict=True):
            if expired:
                self._dirty.add(topic)

    async def _broadcast(self, topic: str) -> None:
        now = time.time()
        expired = await self.client.zrangebyscore(members_key(topic), "-inf", now)
        if expired:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(members_key(topic), *expired)
            pipe.hdel(people_key(topic), *expired)
            await pipe.execute()
        ids = cast(list[str], await self.client.zrange(members_key(topic), 0, -1))
        people = []
        if ids:
            for raw in await self.client.hmget(people_key(topic), ids):
                if raw is not None:
                    people.append(json.loads(raw))
        message = {"type": "presence", "present": present_list(people)}
        await self.client.publish(topic_channel(topic), encode(message))


_presences = PerLoop(Presence)


def get_presence() -> Presence:
    """The presence bookkeeping of the running event loop."""
    return _presences.get()


async def stop_presence() -> None:
    await _presences.stop()
