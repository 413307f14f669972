"""Publishing to live topics: one Redis ``PUBLISH`` per message, whoever the sender is.

A *topic* names who listens: ``incident:<id>`` (everyone with that incident's dashboard open),
``user:<id>`` (every open page of one person), or any other string a feature agrees on with its
consumer (e.g. ``activation:<id>``). Every web process subscribes once to all topics and writes each
message to its own WebSockets (``comms.fanout``), so a publisher does not know or care how many
processes or sockets there are.

``publish`` is synchronous on purpose: it is called from ``transaction.on_commit`` in web requests
and from Celery workers, neither of which runs an event loop. Losing a message is tolerated, never
hidden: clients replay by sequence number, and the failure is logged for operators.
"""

import json
import logging
import threading
from typing import Any

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

logger = logging.getLogger(__name__)

# A topic's Redis channel is CHANNEL_PREFIX + topic; the fan-out subscribes to CHANNEL_PREFIX + "*".
CHANNEL_PREFIX = "ctpn:live:"

_client: redis.Redis | None = None
_client_url: str | None = None
_client_lock = threading.Lock()


def incident_topic(incident_id: int) -> str:
    return f"incident:{incident_id}"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def topic_channel(topic: str) -> str:
    return CHANNEL_PREFIX + topic


def encode(message: dict[str, Any]) -> str:
    """The wire form of a message (compact JSON; dates and decimals as the API writes them)."""
    return json.dumps(message, cls=DjangoJSONEncoder, separators=(",", ":"))


def redis_client() -> redis.Redis:
    """The process's client for publishing: a connection pool shared by every thread.

    Rebuilt when ``REDIS_URL`` changes (tests point settings at another Redis).
    """
    global _client, _client_url
    url = settings.REDIS_URL
    with _client_lock:
        if _client is None or _client_url != url:
            _client = redis.Redis.from_url(
                url,
                socket_connect_timeout=settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
                socket_timeout=settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
                health_check_interval=30,
            )
            _client_url = url
        return _client


def publish(topic: str, message: dict[str, Any]) -> None:
    """Send ``message`` to every connection listening to ``topic``, on every web process.

    Never raises: the change it announces is already committed, and a failed broadcast must not
    turn a successful request into an error. Clients find the gap and replay.
    """
    try:
        data = encode(message)
    except (TypeError, ValueError):
        logger.exception("live message for %s cannot be encoded as JSON; not published", topic)
        return
    try:
        redis_client().publish(topic_channel(topic), data)
    except redis.RedisError as exc:
        logger.warning("could not publish live message to %s: %r", topic, exc)
