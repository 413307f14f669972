"""The audit log records who did what, survives the caller's rollback, and is hash-chained."""

import pytest
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse

from coordination.audit import audit_log_verify, audit_read, audit_record
from coordination.markings import Marking
from coordination.models import AuditEntry

pytestmark = pytest.mark.django_db


def entries_for(user, action):
    return AuditEntry.objects.filter(user_id=user.pk, action=action)


def test_an_entry_carries_who_where_what_and_is_chained(commander, police):
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="x" * 400)
    audit_record(
        action="marking.changed",
        user=commander,
        request=request,
        target=police,
        detail={"from": "AMBER", "to": "RED"},
    )
    entry = entries_for(commander, "marking.changed").get()
    assert entry.username == "gold"
    assert entry.agency_id == police.pk
    assert entry.city_id == police.city_id
    assert entry.ip_address == "10.1.2.3"
    assert len(entry.user_agent) == 256
    assert (entry.target_type, entry.target_id) == ("coordination.agency", str(police.pk))
    assert entry.target_label == "POL"
    assert entry.detail == {"from": "AMBER", "to": "RED"}
    assert entry.entry_hash == entry.compute_hash()
    previous = AuditEntry.objects.filter(sequence=entry.sequence - 1).first()
    assert entry.prev_hash == (previous.entry_hash if previous else "0" * 64)


def test_an_entry_survives_the_callers_rollback(commander):
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="mfa.failed", user=commander)
        raise RuntimeError("the request fails after recording")
    assert entries_for(commander, "mfa.failed").count() == 1


def test_restricted_reads_are_recorded_one_per_item(commander, police):
    class Item:
        def __init__(self, marking):
            self.marking = marking

    police.marking = Marking.RED  # any model instance carrying a marking
    audit_read(user=commander, items=[police])
    assert entries_for(commander, "read.restricted").get().detail == {"marking": "RED"}


def test_a_malformed_call_raises(commander):
    with pytest.raises(ValueError):
        audit_record(action="Not An Action", user=commander)
    with pytest.raises(TypeError):
        audit_record(action="auth.login", user=commander, detail=["not", "a", "dict"])


def test_page_logins_failures_and_logouts_are_recorded(client, commander):
    login = reverse("login")
    client.post(login, {"username": "gold", "password": "wrong"}, REMOTE_ADDR="192.0.2.7")
    failed = entries_for(commander, "auth.login_failed").get()
    assert failed.username == "gold" and failed.ip_address == "192.0.2.7"
    client.post(login, {"username": "nobody-here", "password": "x"})
    assert AuditEntry.objects.filter(
        action="auth.login_failed", username="nobody-here", user__isnull=True
    ).exists()
    client.force_login(commander)
    assert entries_for(commander, "auth.login").count() == 1
    client.post(reverse("logout"))
    assert entries_for(commander, "auth.logout").count() == 1
    assert audit_log_verify().intact
