"""Request wiring for security: session time limits and the Content Security Policy."""

import time
from typing import Any

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from coordination.audit import audit_record

STARTED_AT = "_ctpn_session_started_at"
LAST_SEEN_AT = "_ctpn_session_last_seen_at"
# Activity is written to the session at most this often, not on every request: the idle limit
# may then end a session up to this much early, which is the safe side.
ACTIVITY_RESOLUTION_SECONDS = 60


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds >= 7200:
        return f"{seconds // 3600} hours"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def session_clock_start(sender, request, user, **kwargs) -> None:
    """Every sign-in starts both clocks, also one into a session that was signed in before."""
    session = getattr(request, "session", None)
    if session is not None:
        now = time.time()
        session[STARTED_AT] = now
        session[LAST_SEEN_AT] = now
        _expiry_set(session, now)


def _expiry_set(session, now: float) -> None:
    """Let the session store expire the session too, so that whatever reads it without this
    middleware (the WebSocket consumers' re-checks) finds it gone at the same limits."""
    idle_left = settings.SESSION_IDLE_TIMEOUT_SECONDS + ACTIVITY_RESOLUTION_SECONDS
    absolute_left = session.get(STARTED_AT, now) + settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS - now
    session.set_expiry(max(1, int(min(idle_left, absolute_left))))


class SessionTimeoutMiddleware(MiddlewareMixin):
    """End a signed-in session after SESSION_IDLE_TIMEOUT_SECONDS without a request, and
    SESSION_ABSOLUTE_TIMEOUT_SECONDS after sign-in whatever happens.

    A page is redirected to the sign-in page with a message saying why; the API answers 401. An
    API request that also carries a token goes on, authenticated by its token alone.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        session = request.session
        if SESSION_KEY not in session:
            return None
        now = time.time()
        started = session.get(STARTED_AT)
        last_seen = session.get(LAST_SEEN_AT)
        if started is None or last_seen is None:  # signed in before these limits existed
            session[STARTED_AT] = started = now
            session[LAST_SEEN_AT] = last_seen = now
            _expiry_set(session, now)
        reason = None
        if now - started > settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS:
            reason = "absolute"
        elif now - last_seen > settings.SESSION_IDLE_TIMEOUT_SECONDS:
            reason = "idle"
        if reason is None:
            if now - last_seen >= ACTIVITY_RESOLUTION_SECONDS:
                session[LAST_SEEN_AT] = now
                _expiry_set(session, now)
            return None
        return self.session_end(request, reason)

    def session_end(self, request: HttpRequest, reason: str) -> HttpResponse | None:
        user = request.user
        audit_record(
            action="auth.session_expired", user=user, request=request, detail={"reason": reason}
        )
        logout(request)
        if reason == "idle":
            message = (
                "You were signed out after "
                f"{_duration(settings.SESSION_IDLE_TIMEOUT_SECONDS)} without activity. "
                "Sign in again."
            )
        else:
            message = (
                "Your session reached its limit of "
                f"{_duration(settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)}. Sign in again."
            )
        if request.path.startswith("/api/"):
            if request.headers.get("Authorization"):
                return None  # the token decides, as if there had been no session
            response: HttpResponse = JsonResponse({"detail": message}, status=401)
            response["WWW-Authenticate"] = "Token"
            return response
        messages.warning(request, message)
        response = redirect_to_login(request.get_full_path())
        if request.headers.get("HX-Request"):
            # A panel refresh must not swap the sign-in page into the panel: htmx loads it whole.
            response["HX-Redirect"] = response["Location"]
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's policy, plus the WebSocket origin of the host the page was served from (the
    live dashboard connects back to it; 'self' alone does not cover ws: in every browser)."""

    def get_policy_parts(
        self, request: HttpRequest, response: Any, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            try:
                host = request.get_host()
            except DisallowedHost:  # answered 400 already; the policy stays without it
                return parts
            scheme = "wss" if request.is_secure() else "ws"
            update = dict(parts.update or {})
            update["connect-src"] = [*update.get("connect-src", []), f"{scheme}://{host}"]
            parts.update = update
        return parts
