"""A rota's iCalendar feed: RFC 5545 structure, the token in its URL, what it covers."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.urls import reverse

from comms.ical import calendar_token, escape_text, fold
from comms.services import rota_calendar_revoke
from coordination.roles import Role

from .factories import RotaFactory, RotaOverrideFactory, ShiftFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 6, 10, tzinfo=UTC)


@pytest.fixture
def rota(police):
    return RotaFactory(agency=police, name="Strategic duty officer")


@pytest.fixture
def anna(police):
    return UserFactory(
        username="anna",
        first_name="Anna",
        last_name="Öberg, Lindqvist; Jr",
        agency=police,
        roles=[Role.DUTY_OFFICER],
    )


@pytest.fixture
def planned(rota, anna, police):
    """Anna every day 08:00-20:00 from 1 May; cover by Bob on 8 May with a long reason."""
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 1),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
        note="Day duty",
    )
    bob = UserFactory(
        username="bob", first_name="Bob", last_name="Berg", agency=police, roles=[Role.DUTY_OFFICER]
    )
    return RotaOverrideFactory(
        rota=rota,
        user=bob,
        starts_at=datetime(2026, 5, 8, 9, tzinfo=UTC),
        ends_at=datetime(2026, 5, 8, 11, tzinfo=UTC),
        reason="Anna gives evidence in court; Bob covers, then hands back.\nCall the desk. " * 2,
    )


def feed_url(rota, token=None) -> str:
    token = calendar_token(rota) if token is None else token
    return reverse("rota-calendar", args=[rota.pk]) + f"?token={token}"


def unfold(body: str) -> list[str]:
    return body.replace("\r\n ", "").split("\r\n")


def events(body: str) -> list[dict[str, str]]:
    found, current = [], None
    for line in unfold(body):
        if line == "BEGIN:VEVENT":
            current = {}
        elif line == "END:VEVENT":
            found.append(current)
            current = None
        elif current is not None:
            name, _, value = line.partition(":")
            current[name] = value
    return found


@time_machine.travel(NOW, tick=False)
def test_the_feed_is_a_valid_calendar_without_a_session(client, rota, planned):
    response = client.get(feed_url(rota))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.content.decode("utf-8")

    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")
    assert body.endswith("END:VCALENDAR\r\n")
    # Every line ends CRLF and no physical line is longer than 75 octets.
    assert "\n" not in body.replace("\r\n", "")
    assert max(len(line.encode("utf-8")) for line in body.split("\r\n")) <= 75
    lines = unfold(body)
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") > 0
    for event in events(body):
        assert {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY"} <= set(event)
        for name in ("DTSTAMP", "DTSTART", "DTEND"):
            assert re.fullmatch(r"\d{8}T\d{6}Z", event[name]), event[name]
        assert event["DTEND"] > event["DTSTART"]
    uids = [event["UID"] for event in events(body)]
    assert len(uids) == len(set(uids))


@time_machine.travel(NOW, tick=False)
def test_the_feed_covers_shifts_from_a_week_ago_to_two_months_ahead_and_cover(
    client, rota, planned
):
    found = events(client.get(feed_url(rota)).content.decode("utf-8"))
    shifts = sorted(e["DTSTART"] for e in found if e["UID"].startswith("shift-"))
    # Daily from 1 May (shift start), clipped to 7 days before now; 60 days ahead.
    assert shifts[0] == "20260501T060000Z"
    assert shifts[-1] == "20260705T060000Z"
    assert len(shifts) == 66
    cover = [e for e in found if e["UID"].startswith("override-")]
    assert len(cover) == 1
    assert (cover[0]["DTSTART"], cover[0]["DTEND"]) == ("20260508T090000Z", "20260508T110000Z")
    assert cover[0]["SUMMARY"] == "Cover: Primary duty officer: Bob Berg"
    # Text is escaped: commas, semicolons and newlines in names and reasons.
    first = next(e for e in found if e["UID"].startswith("shift-"))
    assert first["SUMMARY"] == "Primary duty officer: Anna Öberg\\, Lindqvist\\; Jr"
    assert "\\n" in cover[0]["DESCRIPTION"] and "\\;" in cover[0]["DESCRIPTION"]


def test_a_missing_or_wrong_token_is_refused(client, rota):
    assert client.get(reverse("rota-calendar", args=[rota.pk])).status_code == 404
    assert client.get(feed_url(rota, token="x" * 20)).status_code == 404
    other = RotaFactory(agency=rota.agency, name="Other")
    # A token is good for its own rota only.
    assert client.get(feed_url(rota, token=calendar_token(other))).status_code == 404
    assert client.get(feed_url(other)).status_code == 200
    assert client.head(feed_url(other)).status_code == 200
    assert client.post(feed_url(other)).status_code == 405


def test_a_revoked_token_is_refused_and_the_new_one_works(client, rota, administrator):
    old = feed_url(rota)
    assert client.get(old).status_code == 200
    rota = rota_calendar_revoke(user=administrator, rota_id=rota.pk)
    assert client.get(old).status_code == 404
    assert client.get(feed_url(rota)).status_code == 200


def test_the_token_survives_nothing_but_the_secret_key(client, rota, settings):
    url = feed_url(rota)
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    assert client.get(url).status_code == 404


def test_folding_never_splits_a_character():
    line = "SUMMARY:" + "Ö" * 100
    folded = fold(line)
    for piece in folded.split("\r\n"):
        assert len(piece.encode("utf-8")) <= 75
    assert folded.replace("\r\n ", "") == line


def test_escaping_follows_rfc_5545():
    assert escape_text("a\\b;c,d\ne\r\nf\x07") == "a\\\\b\\;c\\,d\\ne\\nf"
