"""API throttles whose rates are read from the settings on every request.

DRF's own classes copy ``DEFAULT_THROTTLE_RATES`` once, when they are imported; these read the
current settings, so a rate given to a process (or changed by a test) is the rate it applies.
"""

from rest_framework import throttling
from rest_framework.settings import api_settings


class SettingsRate:
    scope: str | None

    def get_rate(self) -> str | None:
        if not self.scope:
            return None
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)


class AnonRateThrottle(SettingsRate, throttling.AnonRateThrottle):
    """Callers that are not signed in, per client address."""


class UserRateThrottle(SettingsRate, throttling.UserRateThrottle):
    """Signed-in people, per person (every token and session of theirs together)."""


class ScopedRateThrottle(SettingsRate, throttling.ScopedRateThrottle):
    """Views with a ``throttle_scope`` of their own (the token endpoint, SMS receipts)."""
