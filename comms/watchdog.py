"""The alerting watchdog: heartbeats of the worker, beat and the sweep, and what they say.

Alerts only go out while a worker runs, and escalations and re-drives only happen while beat runs.
Either can die quietly, so each writes a heartbeat to Redis: the worker from a timer in its main
process, beat from its scheduler loop, and the sweep task each time it finishes (proof that beat's
messages reach a worker that can use the database). Anything silent for longer than
``ALERT_HEARTBEAT_STALE_SECONDS`` is stale: pages show an "alerting degraded" banner and
``/health/`` answers 503 naming it.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "ctpn:alerting:heartbeats"
# What must be alive for alerts to flow, in the words the banner and /health/ use.
COMPONENTS = ("worker", "beat", "sweep")
# Heartbeats of workers gone this long are dropped, so the hash does not grow with every restart.
FORGET_AFTER_SECONDS = 7 * 24 * 3600


@cache
def _client_for(url: str, pid: int) -> redis.Redis:
    # Keyed by pid: a forked pool process opens its own connections rather than sharing sockets.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    return _client_for(settings.REDIS_URL, os.getpid())


def heartbeat_write(component: str, name: str = "") -> None:
    """Record that ``component`` (one of ``COMPONENTS``) is alive now. Never raises: a Redis
    outage must not stop the worker, and it shows up as stale heartbeats anyway."""
    field = f"{component}:{name}" if name else component
    try:
        redis_client().hset(HEARTBEAT_KEY, field, repr(time.time()))
    except redis.RedisError as exc:
        logger.warning("could not write the %s heartbeat: %r", field, exc)


def heartbeats_clear() -> None:
    redis_client().delete(HEARTBEAT_KEY)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    ok: bool
    age_seconds: float | None  # since the newest heartbeat; None when there has never been one


@dataclass(frozen=True)
class AlertingStatus:
    components: tuple[ComponentStatus, ...]
    redis_ok: bool
    redis_error: str = ""

    @property
    def stale(self) -> list[str]:
        return [c.name for c in self.components if not c.ok]

    @property
    def ok(self) -> bool:
        return self.redis_ok and not self.stale


def alerting_status(now: float | None = None) -> AlertingStatus:
    """How fresh each component's newest heartbeat is (any worker counts for "worker")."""
    now = time.time() if now is None else now
    threshold = settings.ALERT_HEARTBEAT_STALE_SECONDS
    try:
        raw = redis_client().hgetall(HEARTBEAT_KEY)
    except redis.RedisError as exc:
        unknown = tuple(ComponentStatus(name, False, None) for name in COMPONENTS)
        return AlertingStatus(unknown, redis_ok=False, redis_error=type(exc).__name__)
    newest: dict[str, float] = {}
    forgotten = []
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        component = name.split(":", 1)[0]
        try:
            stamp = float(value)
        except ValueError:
            continue
        if now - stamp > FORGET_AFTER_SECONDS:
            forgotten.append(field)  # a worker that was replaced long ago
        newest[component] = max(newest.get(component, 0.0), stamp)
    if forgotten:
        with contextlib.suppress(redis.RedisError):
            redis_client().hdel(HEARTBEAT_KEY, *forgotten)
    components = []
    for name in COMPONENTS:
        newest_stamp = newest.get(name)
        age = None if newest_stamp is None else max(0.0, now - newest_stamp)
        components.append(ComponentStatus(name, age is not None and age <= threshold, age))
    return AlertingStatus(tuple(components), redis_ok=True)
