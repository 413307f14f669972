"""Administrators read and export their city's audit log; everybody else is refused, and the
refusal is itself recorded."""

import csv
import datetime as dt
import io

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.db import connections
from django.urls import reverse

from coordination.audit import audit_record
from coordination.models import AuditEntry
from coordination.roles import Role

from .factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(police):
    return UserFactory(username="sto-admin", agency=police, roles=[Role.ADMINISTRATOR])


@pytest.fixture
def oslo_administrator(oslo_police):
    return UserFactory(username="osl-admin", agency=oslo_police, roles=[Role.ADMINISTRATOR])


@pytest.fixture
def superuser():
    return UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)


@pytest.fixture
def entries(commander, liaison, oslo_police):
    oslo_person = UserFactory(username="oslo-liaison", agency=oslo_police)
    audit_record(action="auth.login_failed", user=commander, detail={"n": 1})
    audit_record(action="marking.changed", user=liaison, target=commander.agency)
    audit_record(action="auth.login_failed", user=oslo_person)
    audit_record(action="auth.login_failed", username="=cmd|' /C calc'!A0")
    return oslo_person


def signed_in(client, user):
    client.force_login(user)
    return client


def test_administrators_see_only_their_citys_entries(client, administrator, entries):
    response = signed_in(client, administrator).get(reverse("audit-log"))
    assert response.status_code == 200
    shown = {entry.username for entry in response.context["entries"]}
    assert {"gold", "fire-liaison", "sto-admin"} <= shown
    assert "oslo-liaison" not in shown
    assert "=cmd|' /C calc'!A0" not in shown  # no city: platform superusers only
    assert all(e.city_id == administrator.agency.city_id for e in response.context["entries"])


def test_only_administrators_are_shown_the_way_to_the_log(client, administrator, commander):
    link = f'href="{reverse("audit-log")}"'
    assert link in signed_in(client, administrator).get(reverse("home")).content.decode()
    assert link not in signed_in(client, commander).get(reverse("home")).content.decode()


def test_the_other_city_sees_its_own(client, oslo_administrator, entries):
    response = signed_in(client, oslo_administrator).get(reverse("audit-log"))
    assert {e.username for e in response.context["entries"]} == {"oslo-liaison", "osl-admin"}


def test_superusers_see_every_city(client, superuser, entries):
    response = signed_in(client, superuser).get(reverse("audit-log"), {"action": "auth.login_f"})
    shown = {entry.username for entry in response.context["entries"]}
    assert {"gold", "oslo-liaison", "=cmd|' /C calc'!A0"} <= shown


def test_filters_by_action_user_and_dates(client, administrator, commander):
    with time_machine.travel(dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.UTC)):  # 23:30 Stockholm
        audit_record(action="mfa.failed", user=commander)
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)):
        audit_record(action="mfa.verified", user=commander)
    signed_in(client, administrator)

    def shown(**query):
        response = client.get(reverse("audit-log"), query)
        assert response.status_code == 200
        return [e.action for e in response.context["entries"] if e.username == "gold"]

    assert shown(action="mfa.") == ["mfa.verified", "mfa.failed"]
    assert shown(action="mfa.failed") == ["mfa.failed"]
    assert shown(user="GOLD", action="mfa") == ["mfa.verified", "mfa.failed"]
    assert shown(user="nobody") == []
    # Days are the viewer's city's days: 23:30 in Stockholm on 1 March is 1 March.
    assert shown(date_from="2026-03-01", date_to="2026-03-01") == ["mfa.failed"]
    assert shown(date_from="2026-03-02") == ["mfa.verified"]
    page = client.get(reverse("audit-log"), {"action": "mfa.failed"}).content.decode()
    assert "2026-03-01 23:30:00" in page  # shown in the viewer's city time


def test_a_bad_filter_is_shown_not_a_500(client, administrator):
    response = signed_in(client, administrator).get(
        reverse("audit-log"), {"date_from": "yesterday", "date_to": "2026-01-01"}
    )
    assert response.status_code == 200
    assert "Enter a valid date" in response.content.decode()
    backwards = {"date_from": "2026-02-01", "date_to": "2026-01-01"}
    export = client.get(reverse("audit-export"), backwards)
    assert export.status_code == 400
    assert "date_to" in export.json()["errors"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31"])
def test_a_date_out_of_range_is_a_field_error(client, administrator, day):
    signed_in(client, administrator)
    for field in ("date_from", "date_to"):
        page = client.get(reverse("audit-log"), {field: day})
        assert page.status_code == 200 and "Give a date" in page.content.decode()
        export = client.get(reverse("audit-export"), {field: day})
        assert export.status_code == 400 and field in export.json()["errors"]


def test_the_log_is_paginated(client, administrator, commander, settings):
    settings.AUDIT_PAGE_SIZE = 3
    for _ in range(5):
        audit_record(action="read.restricted", user=commander)
    signed_in(client, administrator)
    first = client.get(reverse("audit-log"), {"action": "read.restricted"})
    second = client.get(reverse("audit-log"), {"action": "read.restricted", "page": 2})
    assert len(first.context["entries"]) == 3 and len(second.context["entries"]) == 2
    assert first.context["entries"][0].sequence > second.context["entries"][0].sequence
    assert "page=2" in first.content.decode() and "action=read.restricted" in first.content.decode()


def test_the_csv_export_streams_the_filtered_visible_entries(client, administrator, entries):
    signed_in(client, administrator)
    response = client.get(reverse("audit-export"), {"action": "auth.login_failed"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["username"] for row in rows] == ["gold"]
    row = rows[0]
    entry = AuditEntry.objects.get(sequence=int(row["sequence"]))
    assert row["action"] == "auth.login_failed" and row["agency"] == "POL"
    assert row["city"] == "Stockholm" and row["detail"] == '{"n": 1}'
    assert row["entry_hash"] == entry.entry_hash and row["prev_hash"] == entry.prev_hash
    assert dt.datetime.fromisoformat(row["at_utc"]) == entry.at

    export = AuditEntry.objects.get(action="export", user_id=administrator.pk)
    assert export.detail == {
        "what": "audit_log",
        "format": "csv",
        "filters": {"action": "auth.login_failed"},
    }
    assert export.city_id == administrator.agency.city_id


def test_the_export_neutralises_spreadsheet_formulas(client, superuser, entries):
    response = signed_in(client, superuser).get(reverse("audit-export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert "'=cmd|' /C calc'!A0" in [row["username"] for row in rows]
    assert "=cmd|' /C calc'!A0" not in [row["username"] for row in rows]


def test_the_export_spans_many_chunks(client, administrator, commander, monkeypatch):
    monkeypatch.setattr("coordination.views.EXPORT_CHUNK", 2)
    for _ in range(5):
        audit_record(action="read.restricted", user=commander)
    signed_in(client, administrator)
    response = client.get(reverse("audit-export"), {"action": "read.restricted"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    sequences = [int(row["sequence"]) for row in rows]
    assert len(sequences) == 5 and sequences == sorted(sequences, reverse=True)


@pytest.mark.parametrize("page", ["audit-log", "audit-export"])
def test_non_administrators_are_refused_and_the_refusal_recorded(client, commander, page):
    response = signed_in(client, commander).get(reverse(page))
    assert response.status_code == 403
    assert "Only administrators see the audit log." in response.content.decode()
    refusal = AuditEntry.objects.get(action="access.denied", user_id=commander.pk)
    assert refusal.detail["status"] == 403 and refusal.detail["path"] == reverse(page)
    assert not AuditEntry.objects.filter(action="export", user_id=commander.pk).exists()


def test_a_cross_site_refusal_is_recorded(commander):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(commander)
    response = client.post(reverse("logout"))
    assert response.status_code == 403
    refusal = AuditEntry.objects.get(action="access.denied", user_id=commander.pk)
    assert refusal.detail["reason"].startswith("CSRF:")
    assert not AuditEntry.objects.filter(action="auth.logout", user_id=commander.pk).exists()


def test_strangers_are_sent_to_sign_in(client):
    response = client.get(reverse("audit-log"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_the_admin_lists_entries_read_only_and_scoped(client, administrator, entries):
    administrator.is_staff = True
    administrator.save()
    from django.contrib.auth.models import Permission

    administrator.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    signed_in(client, administrator)
    changelist = client.get(reverse("admin:coordination_auditentry_changelist"))
    assert changelist.status_code == 200
    shown = {e.username for e in changelist.context["cl"].result_list}
    assert "gold" in shown and "oslo-liaison" not in shown
    entry = AuditEntry.objects.filter(username="gold").first()
    change = client.post(
        reverse("admin:coordination_auditentry_change", args=[entry.pk]), {"username": "x"}
    )
    assert change.status_code == 403
    assert client.get(reverse("admin:coordination_auditentry_add")).status_code == 403
    delete = client.post(
        reverse("admin:coordination_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    entry.refresh_from_db()
    assert entry.username == "gold"


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_streams_asynchronously(async_client, police, commander):
    try:
        await _export_under_asgi(async_client, police, commander)
    finally:  # the worker thread's connection would keep the test database busy at teardown
        await sync_to_async(connections.close_all)()


async def _export_under_asgi(async_client, police, commander):
    admin = await sync_to_async(UserFactory)(
        username="asgi-admin", agency=police, roles=[Role.ADMINISTRATOR]
    )
    for _ in range(3):
        await sync_to_async(audit_record)(action="read.restricted", user=commander)
    await async_client.aforce_login(admin)
    response = await async_client.get(reverse("audit-export"), {"action": "read.restricted"})
    assert response.status_code == 200
    assert response.is_async  # served chunk by chunk, not read whole into memory first
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert len(list(csv.DictReader(io.StringIO(body)))) == 3
