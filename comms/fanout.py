"""The live fan-out of one web process: one Redis subscription, written to this process's sockets.

Why not the channel layer: it gives every connection its own channel and group membership in
Redis, so a storm of connects becomes a storm of Redis commands (the pool runs out and connects
fail), and every broadcast is handed to each consumer's handler one by one. Here a process holds
one subscription, keeps its own registry *topic -> local connections*, and on a message decodes
it once, builds each distinct frame once, and writes it to every socket without awaiting any of
them, so one slow reader cannot hold up the others.

Why one pattern subscription (``ctpn:live:*``) rather than one per topic: a connect then costs no
Redis command at all (a storm of 1,000 connects costs nothing here), and there is no
subscribe/unsubscribe bookkeeping to race against connects and disconnects. The price is that
every process receives every topic's messages and drops those nobody local listens to; messages
are written by people and by alerting (a few per second per incident), so that price is tiny next
to a subscription round trip per connect.

Delivery: under uvicorn the already-encoded WebSocket frame goes straight to the connection's
transport. A connection whose unsent bytes pass ``LIVE_SEND_BUFFER_LIMIT_BYTES`` is aborted: a
client that stopped reading is cut off instead of growing the server's memory, and it replays by
sequence number when it comes back. Under any other server (and ``WebsocketCommunicator``) frames
go through the ordinary ASGI ``send``, queued to the consumer's own task, never awaited here.

Nothing published while this process's subscription is down reaches its sockets (Redis pub/sub
does not queue); when the subscription is back, every local connection is told to resynchronise
(its consumer sends a fresh ``hello``) so clients replay what they missed.
"""

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ctpn.realtime import CHANNEL_PREFIX, encode

logger = logging.getLogger(__name__)

# A message filter sees each decoded message and returns what this connection gets instead: the
# message itself (forward as-is), another message (e.g. a placeholder), or None (nothing). One
# filter object is shared by every connection it applies to, so it runs once per message, not once
# per socket; its result is encoded once.
MessageFilter = Callable[[dict[str, Any]], dict[str, Any] | None]

# How often the subscription checks that Redis still answers, when no message comes.
PING_SECONDS = 5.0

# What a consumer's own task receives in its queue (see ``comms.consumers.TopicConsumer``).
OUTBOX_SEND = "live.send"
OUTBOX_CUT_OFF = "live.cut_off"
OUTBOX_RESYNC = "live.resync"


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked server-to-client text frame (RFC 6455 section 5.2).

    Sent uncompressed even where permessage-deflate was negotiated: RFC 7692 lets a sender leave
    any message uncompressed (RSV1 clear), and the server's compression context is untouched.
    """
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def server_protocol(send: Callable[..., Any]) -> Any | None:
    """uvicorn's protocol object behind an ASGI ``send``, or None when it cannot be found.

    ``send`` is the protocol's bound method, possibly wrapped by Channels' session middleware
    (which keeps the inner callable as ``real_send``). Only uvicorn's own WebSocket protocols are
    written to directly: their state flags say when the handshake is done and a close was sent.
    """
    for _ in range(8):
        owner = getattr(send, "__self__", None)
        if owner is None:
            return None
        if (
            type(owner).__module__.startswith("uvicorn.protocols.websockets")
            and hasattr(owner, "transport")
            and hasattr(owner, "close_sent")
            and hasattr(owner, "handshake_complete")
        ):
            return owner
        inner = getattr(owner, "real_send", None)
        if inner is None:
            return None
        send = inner
    return None


class LiveConnection:
    """One WebSocket as the hub sees it: its topics, its filter, and how to write to it."""

    def __init__(
        self,
        *,
        send: Callable[..., Any],
        outbox: "asyncio.Queue[dict[str, Any]]",
        topics: Iterable[str],
        message_filter: MessageFilter | None = None,
        direct: bool = True,
    ) -> None:
        self.topics = tuple(topics)
        self.message_filter = message_filter
        self.outbox = outbox
        self.protocol = server_protocol(send) if direct else None
        self.limit: int = settings.LIVE_SEND_BUFFER_LIMIT_BYTES
        # Until the consumer has sent ``hello``, frames wait here, so hello is always first.
        self.pending: list[tuple[str, bytes]] | None = []
        self.pending_bytes = 0
        self.queued_bytes = 0  # text handed to the consumer's task and not yet sent (fallback)
        self.cut_off = False
        self.hub: Hub | None = None

    @property
    def direct(self) -> bool:
        return self.protocol is not None

    def deliver(self, text: str, frame: bytes) -> None:
        """Hand one message to the socket without waiting for it. Never raises, never blocks."""
        if self.cut_off:
            return
        if self.pending is not None:
            if self.pending_bytes > self.limit:
                self.cut(reason="buffered too much before its hello was sent")
                return
            self.pending_bytes += len(frame)
            self.pending.append((text, frame))
            return
        self._write(text, frame)

    def go_live(self) -> None:
        """The consumer has sent ``hello``: write what arrived meanwhile, then write as it comes."""
        pending, self.pending = self.pending or [], None
        for text, frame in pending:
            self._write(text, frame)

    def sent(self, size: int) -> None:
        """The consumer's task has written ``size`` characters queued for it (fallback path)."""
        self.queued_bytes = max(0, self.queued_bytes - size)

    def _write(self, text: str, frame: bytes) -> None:
        protocol = self.protocol
        if protocol is not None:
            transport = protocol.transport
            if protocol.close_sent or transport is None or transport.is_closing():
                return  # closing: its disconnect will unregister it
            # Measured before writing: one message larger than the cap still reaches a client
            # that keeps up; it is a client that has not drained what it already had that goes.
            if transport.get_write_buffer_size() > self.limit:
                self.cut(reason="stopped reading")
                return
            transport.write(frame)
            return
        if self.queued_bytes > self.limit:
            self.cut(reason="stopped reading")
            return
        self.queued_bytes += len(text)
        self.outbox.put_nowait({"type": OUTBOX_SEND, "text": text})

    def cut(self, *, reason: str) -> None:
        """Drop a connection that cannot keep up; its client reconnects and replays."""
        if self.cut_off:
            return
        self.cut_off = True
        self.pending = None
        if self.hub is not None:
            self.hub.leave(self)
        client = getattr(self.protocol, "client", None)
        logger.warning("live connection %s cut off: %s", client or "", reason)
        if self.protocol is not None:
            # abort(), not close(): close() would wait for the full buffer to drain first.
            self.protocol.transport.abort()
            return
        while not self.outbox.empty():
            self.outbox.get_nowait()
        self.outbox.put_nowait({"type": OUTBOX_CUT_OFF})

    def resync(self) -> None:
        if not self.cut_off:
            self.outbox.put_nowait({"type": OUTBOX_RESYNC})


class Hub:
    """The registry and the subscription of one event loop (one per web process in production)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.topics: dict[str, set[LiveConnection]] = {}
        self.ready = asyncio.Event()
        self.redis_url: str = settings.REDIS_URL
        self._task: asyncio.Task[None] | None = None
        self._subscribed_once = False
        self._stopping = False

    @property
    def connection_count(self) -> int:
        return len({connection for members in self.topics.values() for connection in members})

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="live-fanout")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # The flag too: a cancellation that lands inside a Redis read can be absorbed by the
            # client library, and the loop must still end.
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._stopping = False
        self.ready.clear()

    async def join(self, connection: LiveConnection) -> bool:
        """Register ``connection`` once the subscription is confirmed; False if it is not."""
        self.start()
        try:
            await asyncio.wait_for(
                self.ready.wait(), timeout=settings.LIVE_SUBSCRIBE_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return False
        connection.hub = self
        for topic in connection.topics:
            self.topics.setdefault(topic, set()).add(connection)
        return True

    def leave(self, connection: LiveConnection) -> None:
        for topic in connection.topics:
            members = self.topics.get(topic)
            if members is not None:
                members.discard(connection)
                if not members:
                    del self.topics[topic]

    def dispatch(self, topic: str, data: bytes | str) -> None:
        """Write one published message to every local connection of ``topic``."""
        members = self.topics.get(topic)
        if not members:
            return
        payload = data.encode() if isinstance(data, str) else data
        try:
            raw = payload.decode()
            message = json.loads(raw)
        except ValueError:  # UnicodeDecodeError is one too
            logger.warning("live message on %s is not JSON; dropped", topic)
            return
        if not isinstance(message, dict):
            logger.warning("live message on %s is not a JSON object; dropped", topic)
            return
        as_is = (raw, text_frame(payload))
        rendered: dict[MessageFilter, tuple[str, bytes] | None] = {}
        # Different filters (one per reader) often give the same result object (e.g. one
        # placeholder for everyone not named): each distinct result is encoded once.
        encoded: dict[int, tuple[dict[str, Any], tuple[str, bytes]]] = {}
        # A copy: delivering may cut a connection off, which unregisters it.
        for connection in list(members):
            message_filter = connection.message_filter
            if message_filter is None:
                out: tuple[str, bytes] | None = as_is
            elif message_filter in rendered:
                out = rendered[message_filter]
            else:
                result = message_filter(message)
                if result is None:
                    out = None
                elif result is message:
                    out = as_is
                elif id(result) in encoded:
                    out = encoded[id(result)][1]
                else:
                    text = encode(result)
                    out = (text, text_frame(text.encode()))
                    encoded[id(result)] = (result, out)  # holds the result: its id stays unique
                rendered[message_filter] = out
            if out is not None:
                connection.deliver(*out)

    async def _run(self) -> None:
        delay = 0.1
        while not self._stopping:
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_keepalive=True,
                socket_connect_timeout=settings.LIVE_SUBSCRIBE_TIMEOUT_SECONDS,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                heard = pinged = self.loop.time()
                while not self._stopping:
                    message = await pubsub.get_message(timeout=PING_SECONDS / 2)
                    now = self.loop.time()
                    if message is not None:
                        heard = now
                    elif now - heard > 3 * PING_SECONDS:
                        # A Redis that vanished without closing the connection (a host gone, a
                        # partition) leaves a silent socket: our pings get no answer.
                        raise RedisConnectionError("no answer from Redis to PING")
                    if now - pinged >= PING_SECONDS:
                        await pubsub.ping()
                        pinged = now
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "pmessage":
                        channel = message["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        try:
                            self.dispatch(channel[len(CHANNEL_PREFIX) :], message["data"])
                        except Exception:
                            # One bad message must not cost every socket a resubscription.
                            logger.exception("live message on %s not delivered", channel)
                    elif kind == "psubscribe":
                        delay = 0.1
                        self._subscribed(again=self._subscribed_once)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.ready.clear()
                logger.warning("live subscription lost (%r); retrying in %.1f s", exc, delay)
            except Exception:
                self.ready.clear()
                logger.exception("live subscription failed; retrying in %.1f s", delay)
            finally:
                await _quietly_close(pubsub, client)
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _subscribed(self, *, again: bool) -> None:
        self._subscribed_once = True
        self.ready.set()
        if again:
            # Messages published while the subscription was down are lost: every local
            # connection says hello again, and its client replays from its own sequence number.
            connections = {c for members in self.topics.values() for c in members}
            logger.info("live subscription restored; resynchronising %d", len(connections))
            for connection in connections:
                connection.resync()


async def _quietly_close(pubsub: Any, client: aioredis.Redis) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception:  # noqa: S110  (the connection is being thrown away either way)
        pass


class _PerLoopService(Protocol):
    loop: asyncio.AbstractEventLoop
    redis_url: str

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_PerLoopService)


class PerLoop(Generic[S]):
    """One instance of a Redis-backed service per running event loop: a process has one loop,
    but tests run each in a new loop, and a service bound to a dead loop (or to a Redis that
    settings no longer name) is replaced rather than reused."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self.factory = factory
        self.current: S | None = None

    def get(self) -> S:
        current = self.current
        if (
            current is None
            or current.loop is not asyncio.get_running_loop()
            or current.redis_url != settings.REDIS_URL
        ):
            current = self.current = self.factory()
        return current

    async def stop(self) -> None:
        """Stop the current instance if it belongs to this loop (tests, shutdown)."""
        current, self.current = self.current, None
        if current is not None and current.loop is asyncio.get_running_loop():
            await current.stop()


_hubs = PerLoop(Hub)


def get_hub() -> Hub:
    """The hub of the running event loop."""
    return _hubs.get()


async def stop_hub() -> None:
    """Stop the current hub's subscription (tests, shutdown)."""
    await _hubs.stop()
