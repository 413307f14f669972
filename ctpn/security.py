"""Sign-in lockout (django-axes): the answer a locked-out client gets, and its audit entry."""

import math
from datetime import datetime, timedelta

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_ip_address, get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from coordination.audit import audit_record

LOCKED_OUT_STATUS = 429
# Longer names exist nowhere (the user model's limit); the attempt log's column is not much wider.
USERNAME_MAX = 150


def lockout_username(request, credentials: dict | None) -> str | None:
    """The username an attempt is counted under: as typed, cut to the longest possible one."""
    username = (credentials or {}).get("username")
    if username is None and hasattr(request, "POST"):
        username = request.POST.get("username")
    return None if username is None else str(username)[:USERNAME_MAX]


def _plain_request(request) -> HttpRequest:
    """Django's request beneath DRF's, where the lockout flags and client address live."""
    return getattr(request, "_request", request)


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check, first of the authentication backends. A sign-in with no request has no
    client to lock out (the test client's ``login``, a shell): it is left to the next backend
    instead of failing, since every way in over HTTP passes its request."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_until(*, username: str | None, ip_address: str | None) -> datetime:
    """When the lock on this username and address ends: the cool-off after its last failure."""
    cool_off = get_cool_off() or timedelta(0)
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=ip_address)
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    return (last or timezone.now()) + cool_off


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """Say that sign-in is locked and for how long: JSON for the API, a page otherwise (429,
    with Retry-After). Called by django-axes for every refused or locking attempt."""
    if isinstance(original_response, dict):  # axes' async middleware passes credentials here
        credentials, original_response = original_response, None
    plain = _plain_request(request)
    username = get_client_username(plain, credentials)
    ip_address = getattr(plain, "axes_ip_address", None) or get_client_ip_address(plain)
    until = lockout_until(username=username, ip_address=ip_address)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    minutes = math.ceil(seconds / 60)
    message = (
        "Too many failed sign-ins with this username from your address. Sign-in is locked for "
        f"{minutes} minute{'s' if minutes != 1 else ''}; try again after "
        f"{until:%H:%M} UTC."
    )
    if plain.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": message, "retry_after": seconds, "locked_until": until.isoformat()},
            status=LOCKED_OUT_STATUS,
        )
    else:
        response = render(
            plain,
            "registration/locked_out.html",
            {"message": message, "minutes": minutes, "until": until},
            status=LOCKED_OUT_STATUS,
        )
    response["Retry-After"] = str(seconds)
    return response


def on_user_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    """Audit each sign-in that locks an account and address, or is refused while locked."""
    plain = _plain_request(request)
    audit_record(
        action="auth.locked_out",
        username=username or "",
        request=plain,
        detail={"ip_address": ip_address, "path": plain.path},
    )
