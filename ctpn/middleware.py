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


def _ended_message(reason: str) -> str:
    idle = _duration(settings.SESSION_IDLE_TIMEOUT_SECONDS)
    absolute = _duration(settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)
    if reason == "idle":
        return f"You were signed out after {idle} without activity. Sign in again."
    if reason == "absolute":
        return f"Your session reached its limit of {absolute}. Sign in again."
    return (
        f"Your session has ended (sessions end after {idle} without activity and {absolute} "
        "after signing in, or when the account is changed). Sign in again."
    )


class SessionTimeoutMiddleware(MiddlewareMixin):
    """End a signed-in session after SESSION_IDLE_TIMEOUT_SECONDS without a request, and
    SESSION_ABSOLUTE_TIMEOUT_SECONDS after sign-in whatever happens.

    The session store expires the session at the same limits (so most often the session is simply
    gone when the person comes back); this middleware enforces them on every request too, and
    says why. A page is redirected to the sign-in page with a message; the API answers 401. An
    API request that also carries a token goes on, authenticated by its token alone.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        session = request.session
        if SESSION_KEY not in session:
            if request.COOKIES.get(settings.SESSION_COOKIE_NAME) and session.session_key is None:
                # The browser names a session that has ended (its cookie is deleted with this
                # response): say so once, instead of a bare "sign in".
                return self.ended(request, "ended")
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
        audit_record(
            action="auth.session_expired",
            user=request.user,
            request=request,
            detail={"reason": reason},
        )
        logout(request)
        return self.ended(request, reason)

    def ended(self, request: HttpRequest, reason: str) -> HttpResponse | None:
        message = _ended_message(reason)
        if request.path.startswith("/api/"):
            if request.headers.get("Authorization"):
                return None  # the token decides, as if there had been no session
            response: HttpResponse = JsonResponse({"detail": message}, status=401)
            response["WWW-Authenticate"] = "Token"
            return response
        if reason == "ended" and request.method != "GET":
            return None  # e.g. signing in again, or a one-tap acknowledgement
        messages.warning(request, message)
        htmx = bool(request.headers.get("HX-Request"))
        if reason == "ended" and not htmx:
            return None  # the page decides whether it needs a signed-in person
        response = redirect_to_login(request.get_full_path())
        if htmx:
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
