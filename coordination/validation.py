"""Small checks shared by the services of every app. Errors are collected per field, then raised
together, so one 400 names every field at fault."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from .roles import user_can

Errors = dict[str, list[str]]

# Tolerated clock difference between a partner's device and the server.
CLOCK_SKEW = timedelta(minutes=2)
# No moment of an incident is earlier; the very earliest datetimes cannot even be converted to a
# city's time zone, which would turn a typing slip into a server error.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)


def require(user, capability: str) -> None:
    if not user_can(user, capability):
        raise PermissionDenied(f"Your roles do not allow this ({capability}).")


def text_required(errors: Errors, **fields: str | None) -> None:
    for name, value in fields.items():
        if not (value or "").strip():
            errors.setdefault(name, []).append("This field may not be blank.")


def instant_check(errors: Errors, field: str, value: datetime | None, *, future: bool) -> None:
    """A plausible moment: from 2000 on, and not in the future unless ``future`` allows it."""
    if value is None:
        return
    if value < EARLIEST_INSTANT:
        errors.setdefault(field, []).append("Must be in the year 2000 or later.")
    elif not future and value > timezone.now() + CLOCK_SKEW:
        errors.setdefault(field, []).append("Must not be in the future.")


def coordinates_check(errors: Errors, latitude: Any, longitude: Any) -> None:
    if (latitude is None) != (longitude is None):
        errors.setdefault("latitude" if latitude is None else "longitude", []).append(
            "Give both latitude and longitude, or neither."
        )
        return
    for name, value, bound in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if value is None:
            continue
        try:
            number = Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            errors.setdefault(name, []).append("Must be a number.")
            continue
        if not -bound <= number <= bound:
            errors.setdefault(name, []).append(f"Must be between -{bound} and {bound}.")


def errors_raise(errors: Errors) -> None:
    if errors:
        raise ValidationError(errors)


def recording_agency(user):
    """The agency an entry is recorded for; a superuser with no agency cannot record entries."""
    if user.agency_id:
        return user.agency
    raise ValidationError({"agency": ["You belong to no agency, so you cannot record entries."]})
