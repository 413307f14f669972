"""A rota as an iCalendar feed (RFC 5545), and the secret token in the feed's URL.

Calendar apps fetch the feed without a session, so the URL carries a token: an HMAC (Django's
``Signer``, keyed by ``SECRET_KEY``) over the rota's id and its ``calendar_key``. Nothing about
the token is stored; replacing the rota's ``calendar_key`` revokes every URL handed out before.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare

from .models import Rota, Tier
from .rotas import PlannedEntry, planned_entries

_SALT = "comms.rota-calendar"
_LINE_OCTETS = 75  # RFC 5545 3.1: lines longer than 75 octets are folded


def calendar_token(rota: Rota) -> str:
    return signing.Signer(salt=_SALT).signature(f"{rota.pk}:{rota.calendar_key}")


def calendar_token_valid(rota: Rota, token: str) -> bool:
    return bool(token) and constant_time_compare(token, calendar_token(rota))


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    value = value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")
    # Other control characters are not allowed in TEXT at all.
    return "".join(ch for ch in value if ch == "\t" or (ord(ch) >= 32 and ord(ch) != 127))


def fold(line: str) -> str:
    """Fold a content line into pieces of at most 75 octets, never splitting a UTF-8 character;
    each continuation starts with one space (RFC 5545 3.1)."""
    pieces: list[str] = []
    current = ""
    size = 0
    limit = _LINE_OCTETS
    for ch in line:
        width = len(ch.encode("utf-8"))
        if size + width > limit:
            pieces.append(current)
            current, size = " ", 1
            limit = _LINE_OCTETS
        current += ch
        size += width
    pieces.append(current)
    return "\r\n".join(pieces)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _event(entry: PlannedEntry, *, rota: Rota, stamp: datetime) -> list[str]:
    occ = entry.occurrence
    tier = Tier(occ.tier).label
    person = entry.user.get_full_name() or entry.user.username
    if entry.override is not None:
        uid = f"override-{entry.override.pk}@ctpn"
        summary = f"Cover: {tier}: {person}"
        description = entry.override.reason or "Cover replaces the planned shift."
    else:
        assert entry.shift is not None
        uid = f"shift-{entry.shift.pk}-{_utc(occ.starts_at)}@ctpn"
        summary = f"{tier}: {person}"
        description = entry.shift.note or f"{rota.name} ({rota.agency.short_name})"
    return [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(occ.starts_at)}",
        f"DTEND:{_utc(occ.ends_at)}",
        f"SUMMARY:{escape_text(summary)}",
        f"DESCRIPTION:{escape_text(description)}",
        f"CATEGORIES:{escape_text(tier)}",
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
    ]


def rota_calendar(rota: Rota, *, now: datetime) -> str:
    """The rota's shifts and cover from ``ROTA_CALENDAR_PAST_DAYS`` before ``now`` to
    ``ROTA_CALENDAR_FUTURE_DAYS`` after, as an iCalendar object; times in UTC."""
    start = now - timedelta(days=settings.ROTA_CALENDAR_PAST_DAYS)
    end = now + timedelta(days=settings.ROTA_CALENDAR_FUTURE_DAYS)
    entries = planned_entries(rota=rota, start=start, end=end)
    lines: list[str] = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//CTPN//On-call rota//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(f'{rota.agency.short_name}: {rota.name}')}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    for entry in entries:
        lines.extend(_event(entry, rota=rota, stamp=now))
    lines.append("END:VCALENDAR")
    return _join(lines)


def _join(lines: Iterable[str]) -> str:
    return "".join(fold(line) + "\r\n" for line in lines)
