"""Template context of every page: whether alerting is degraded (the banner in base.html)."""

from django.core.cache import cache
from django.http import HttpRequest

from .watchdog import alerting_status

CACHE_KEY = "alerting-stale"
CACHE_SECONDS = 5


def alerting(request: HttpRequest) -> dict[str, list[str]]:
    """``alerting_stale``: the names of what is silent (worker, beat, sweep; redis when it is
    unreachable), for signed-in users; empty when alerts flow. Read at most every few seconds."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"alerting_stale": []}
    stale = cache.get(CACHE_KEY)
    if stale is None:
        status = alerting_status()
        stale = status.stale if status.redis_ok else ["redis", *status.stale]
        cache.set(CACHE_KEY, stale, CACHE_SECONDS)
    return {"alerting_stale": stale}
