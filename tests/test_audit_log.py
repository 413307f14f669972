"""The audit log records who did what and from where, outlives the caller's rollback, and is one
linear hash chain that any out-of-band edit breaks."""

import itertools
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.test import RequestFactory
from django.urls import reverse

from coordination.audit import audit_log_verify, audit_read, audit_record, client_ip
from coordination.markings import Marking
from coordination.models import AuditChainHead, AuditEntry
from coordination.tasks import audit_log_verify_task

from .factories import UserFactory

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
    assert (entry.agency_id, entry.city_id) == (police.pk, police.city_id)
    assert entry.ip_address == "10.1.2.3"
    assert entry.user_agent == "x" * 256
    assert (entry.target_type, entry.target_id) == ("coordination.agency", str(police.pk))
    assert entry.target_label == "POL"
    assert entry.detail == {"from": "AMBER", "to": "RED"}
    assert entry.at.utcoffset().total_seconds() == 0
    assert entry.entry_hash == entry.compute_hash()
    previous = AuditEntry.objects.filter(sequence=entry.sequence - 1).first()
    assert entry.prev_hash == (previous.entry_hash if previous else "0" * 64)
    assert AuditChainHead.objects.get().last_hash == entry.entry_hash


def test_the_user_defaults_to_the_requests_and_anonymous_means_nobody(commander):
    request = RequestFactory().get("/")
    request.user = commander
    audit_record(action="mfa.verified", request=request)
    assert entries_for(commander, "mfa.verified").count() == 1

    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    audit_record(action="mfa.failed", request=request, username="somebody-anon")
    entry = AuditEntry.objects.get(action="mfa.failed", username="somebody-anon")
    assert entry.user_id is None and entry.city_id is None


FORWARDED = "6.6.6.6, 198.51.100.9"


@pytest.mark.parametrize(
    ("proxies", "meta", "expected"),
    [
        (0, {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": FORWARDED}, "192.0.2.1"),
        # The address our outermost proxy saw, never what the client wrote before it.
        (1, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": FORWARDED}, "198.51.100.9"),
        (2, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": FORWARDED}, "6.6.6.6"),
        (1, {"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1"),
        (1, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "garbage"}, None),
        (0, {"REMOTE_ADDR": "not-an-address"}, None),
        (0, {"REMOTE_ADDR": "2001:DB8:0:0::1"}, "2001:db8::1"),
    ],
)
def test_the_client_address_trusts_forwarding_only_from_our_own_proxies(
    settings, proxies, meta, expected
):
    settings.AUDIT_TRUSTED_PROXY_COUNT = proxies
    assert client_ip(meta) == expected


def test_restricted_reads_are_recorded_one_per_item(commander, police, fire, transport):
    police.marking, fire.marking, transport.marking = Marking.RED, Marking.AMBER, "AMBER+STRICT"
    audit_read(user=commander, items=[police, fire, transport])
    reads = entries_for(commander, "read.restricted").order_by("sequence")
    assert [(e.target_id, e.detail["marking"]) for e in reads] == [
        (str(police.pk), "RED"),
        (str(transport.pk), "AMBER+STRICT"),
    ]
    assert reads[1].prev_hash == reads[0].entry_hash


def test_a_malformed_call_raises(commander):
    with pytest.raises(ValueError):
        audit_record(action="Not An Action", user=commander)
    with pytest.raises(TypeError):
        audit_record(action="auth.login", user=commander, detail=["not", "a", "dict"])
    with pytest.raises(TypeError):
        audit_record(action="auth.login", user=commander, target="not a model")
    assert not entries_for(commander, "auth.login").exists()


def test_a_database_failure_is_logged_not_raised(commander, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise DatabaseError("the database is gone")

    monkeypatch.setattr("coordination.audit._write", refuse)
    audit_record(action="auth.logout", user=commander)  # must not turn into a 500
    assert "could not record auth.logout" in caplog.text


def test_an_entry_survives_the_callers_rollback(commander):
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="mfa.failed", user=commander)
        raise RuntimeError("the request fails after recording")
    assert entries_for(commander, "mfa.failed").count() == 1


def test_page_logins_failures_and_logouts_are_recorded(client, commander):
    login = reverse("login")
    client.post(login, {"username": "gold", "password": "wrong"}, REMOTE_ADDR="192.0.2.7")
    failed = entries_for(commander, "auth.login_failed").get()
    assert failed.username == "gold" and failed.ip_address == "192.0.2.7"
    assert failed.city_id == commander.agency.city_id  # the attacked person's administrators see it
    client.post(login, {"username": "nobody-here", "password": "x"})
    stranger = AuditEntry.objects.get(action="auth.login_failed", username="nobody-here")
    assert stranger.user_id is None and stranger.city_id is None

    commander.set_password("right-password")
    commander.save()
    client.post(login, {"username": "gold", "password": "right-password"})
    assert entries_for(commander, "auth.login").count() == 1
    client.post(reverse("logout"))
    assert entries_for(commander, "auth.logout").count() == 1


def test_a_failed_token_request_is_recorded(api, commander):
    response = api().post("/api/v1/auth/token/", {"username": "gold", "password": "nope"})
    assert response.status_code == 400
    assert entries_for(commander, "auth.login_failed").count() == 1


def test_api_refusals_are_recorded(api, outsider, commander):
    assert api().get("/api/v1/me/").status_code in (401, 403)
    anonymous = AuditEntry.objects.filter(action="access.denied", detail__path="/api/v1/me/")
    assert anonymous.filter(user__isnull=True).exists()

    response = api(outsider).post("/api/v1/agencies/", {"name": "X"}, format="json")
    assert response.status_code == 403
    refusal = entries_for(outsider, "access.denied").get()
    assert refusal.detail["status"] == 403
    assert refusal.detail["method"] == "POST"
    assert refusal.detail["path"] == "/api/v1/agencies/"


# --- durability and concurrency need real commits -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rolled_back_caller_still_leaves_the_entry_even_for_a_person_it_created(police):
    # The caller creates a person, records, then fails: the entry stays, and writing it never
    # waits on the caller's uncommitted row (that would hang here).
    with pytest.raises(RuntimeError), transaction.atomic():
        person = UserFactory(username="short-lived", agency=police)
        audit_record(action="auth.login_failed", user=person)
        raise RuntimeError("the request fails")
    entry = AuditEntry.objects.get(action="auth.login_failed", username="short-lived")
    assert entry.city_id == police.city_id
    # Outside any transaction the entry is written on the ordinary connection and committed.
    audit_record(action="auth.locked_out", username="short-lived")
    assert AuditEntry.objects.filter(action="auth.locked_out").count() == 1
    assert audit_log_verify().intact


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_linear_chain(commander):
    writers, per_writer = 6, 8
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(number: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                if i % 2:  # half of them from inside a caller's transaction
                    with transaction.atomic():
                        audit_record(action="read.restricted", username=f"w{number}-{i}")
                else:
                    audit_record(action="read.restricted", username=f"w{number}-{i}")
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            connections.close_all()

    # Entries other tests committed may come first; this test's are those after them.
    baseline = audit_log_verify().entries
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    entries = list(AuditEntry.objects.filter(sequence__gt=baseline).order_by("sequence"))
    assert len(entries) == writers * per_writer
    assert [e.sequence for e in entries] == list(range(baseline + 1, baseline + len(entries) + 1))
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.entry_hash
        assert entry.at >= previous.at
    report = audit_log_verify()
    assert report.intact and report.entries == baseline + writers * per_writer


def _tamper(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE coordination_auditentry DISABLE TRIGGER USER")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("ALTER TABLE coordination_auditentry ENABLE TRIGGER USER")


@pytest.fixture
def three_entries(commander):
    for action in ("auth.login", "read.restricted", "auth.logout"):
        audit_record(action=action, user=commander)
    return list(AuditEntry.objects.order_by("sequence"))


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_changes_and_removals(three_entries):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=three_entries[0].pk).update(action="auth.logout")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=three_entries[0].pk).delete()
    assert audit_log_verify().intact


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("sql", "which", "reason", "found_at"),
    [
        ("UPDATE coordination_auditentry SET username = 'x' WHERE id = %s", 1, "changed", 1),
        ("UPDATE coordination_auditentry SET detail = '{\"a\": 1}' WHERE id = %s", 1, "changed", 1),
        # A removed entry shows at the one after it, whose number no longer follows.
        ("DELETE FROM coordination_auditentry WHERE id = %s", 1, "missing", 2),
        # The newest has no entry after it: the chain head still remembers it.
        ("DELETE FROM coordination_auditentry WHERE id = %s", 2, "last recorded", 2),
    ],
)
def test_an_edit_behind_the_triggers_back_is_found(three_entries, sql, which, reason, found_at):
    _tamper(sql, [three_entries[which].pk])
    report = audit_log_verify()
    assert not report.intact
    assert reason in report.reason
    assert report.broken_at == three_entries[found_at].sequence
    with pytest.raises(CommandError, match="BROKEN"):
        call_command("verify_audit_log")
    assert audit_log_verify_task() == {"entries": report.entries, "intact": False}


@pytest.mark.django_db(transaction=True)
def test_the_chain_head_only_moves_forward(three_entries):
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        AuditChainHead.objects.update(last_sequence=1)
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        AuditChainHead.objects.all().delete()
    assert audit_log_verify().intact


def _tamper_head(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE coordination_auditchainhead DISABLE TRIGGER USER")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("ALTER TABLE coordination_auditchainhead ENABLE TRIGGER USER")


@pytest.mark.django_db(transaction=True)
def test_a_wound_back_head_hiding_the_newest_entries_is_found(three_entries):
    # Remove the newest entry and wind the head back to the one before, as if it never was.
    _tamper("DELETE FROM coordination_auditentry WHERE id = %s", [three_entries[2].pk])
    _tamper_head(
        "UPDATE coordination_auditchainhead SET last_sequence = %s, last_hash = %s",
        [three_entries[1].sequence, three_entries[1].entry_hash],
    )
    assert audit_log_verify().intact  # undetectable without an outside copy: see the report
    # Winding the head back while leaving the entries is caught.
    _tamper_head(
        "UPDATE coordination_auditchainhead SET last_sequence = %s, last_hash = %s",
        [three_entries[0].sequence, three_entries[0].entry_hash],
    )
    report = audit_log_verify()
    assert not report.intact and "chain head stops there" in report.reason


@pytest.mark.django_db(transaction=True)
def test_a_removed_head_is_found(three_entries):
    _tamper_head("DELETE FROM coordination_auditchainhead", [])
    report = audit_log_verify()
    assert not report.intact and "head is missing" in report.reason


@pytest.mark.django_db(transaction=True)
def test_a_rewritten_chain_tail_does_not_match_the_head(three_entries):
    # Re-hash the last entry after editing it: its own link holds, the head no longer agrees.
    last = three_entries[2]
    last.username = "someone-else"
    last.entry_hash = last.compute_hash()
    _tamper(
        "UPDATE coordination_auditentry SET username = %s, entry_hash = %s WHERE id = %s",
        [last.username, last.entry_hash, last.pk],
    )
    assert not audit_log_verify().intact


@pytest.mark.django_db(transaction=True)
def test_verify_command_and_nightly_task_report_an_intact_log(three_entries, capsys):
    call_command("verify_audit_log")
    assert "intact, 3 entries" in capsys.readouterr().out
    assert audit_log_verify_task() == {"entries": 3, "intact": True}


def test_the_nightly_schedule_verifies_the_audit_log(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "coordination.tasks.audit_log_verify_task" in tasks
