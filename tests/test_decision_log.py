"""The joint decision log: append-only, hash-chained, verifiable (invariant 1)."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from coordination.models import GENESIS_HASH, Decision, DecisionPosition
from coordination.roles import Role
from coordination.services import decision_log_verify, decision_record, decision_supersede
from ctpn.errors import Conflict
from incidents.models import IncidentEvent

from .factories import UserFactory, decision_fields

pytestmark = pytest.mark.django_db


def record(incident, author, **overrides):
    return decision_record(incident_id=incident.pk, author=author, **decision_fields(**overrides))


def test_entries_are_numbered_and_chained_to_the_previous_hash(incident, liaison):
    first = record(incident, liaison)
    second = record(incident, liaison, decision="Open a casualty clearing station.")

    assert (first.sequence, second.sequence) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.entry_hash
    assert len(second.entry_hash) == 64 and second.entry_hash != first.entry_hash
    report = decision_log_verify(incident_id=incident.pk)
    assert report.intact and report.entries == 2 and report.last_hash == second.entry_hash


def test_agreement_and_dissent_are_recorded_and_hashed(incident, liaison, police, fire):
    entry = record(
        incident,
        liaison,
        agreed_by=[fire],
        dissents=[(police, "Evacuation routes are not yet secured.")],
    )

    stances = {(p.agency_id, p.stance, p.statement) for p in entry.positions.all()}
    assert stances == {
        (fire.pk, "agree", ""),
        (police.pk, "dissent", "Evacuation routes are not yet secured."),
    }
    assert entry.compute_hash(entry.stored_positions()) == entry.entry_hash
    assert entry.compute_hash([]) != entry.entry_hash  # positions are part of what is hashed


def test_an_agency_outside_the_incident_cannot_agree(incident, liaison, transport):
    with pytest.raises(ValidationError) as refused:
        record(incident, liaison, agreed_by=[transport])
    assert "agreed_by" in refused.value.message_dict
    assert not Decision.objects.exists()


def test_a_dissent_must_say_what_it_dissents_from(incident, liaison, police):
    with pytest.raises(ValidationError) as refused:
        record(incident, liaison, dissents=[(police, "  ")])
    assert "dissents" in refused.value.message_dict


def test_a_late_entry_must_give_its_reason(incident, liaison):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    with pytest.raises(ValidationError) as refused:
        record(incident, liaison, decided_at=an_hour_ago)
    assert "late_entry_reason" in refused.value.message_dict

    entry = record(
        incident, liaison, decided_at=an_hour_ago, late_entry_reason="Radio log transcribed."
    )
    assert entry.late_entry_reason == "Radio log transcribed."
    assert entry.recorded_at - entry.decided_at > timedelta(minutes=15)


def test_a_decision_cannot_be_taken_in_the_future(incident, liaison):
    with pytest.raises(ValidationError) as refused:
        record(incident, liaison, decided_at=timezone.now() + timedelta(hours=1))
    assert "decided_at" in refused.value.message_dict


def test_every_jdm_section_is_required(incident, liaison):
    with pytest.raises(ValidationError) as refused:
        record(incident, liaison, information="", rationale=" ", options=[])
    assert {"information", "rationale", "options"} <= set(refused.value.message_dict)


def test_a_correction_supersedes_and_leaves_the_original(incident, liaison):
    original = record(incident, liaison)
    correction = decision_supersede(
        original=original,
        author=liaison,
        **decision_fields(decision="Evacuate the station and the shopping centre above it."),
    )

    original.refresh_from_db()
    assert correction.supersedes == original
    assert original.superseded_by == correction
    assert original.decision.startswith("Evacuate the central station")
    assert decision_log_verify(incident_id=incident.pk).intact


def test_a_superseded_entry_cannot_be_corrected_twice(incident, liaison):
    original = record(incident, liaison)
    correction = decision_supersede(original=original, author=liaison, **decision_fields())

    with pytest.raises(Conflict) as refused:
        decision_supersede(original=original, author=liaison, **decision_fields())
    assert str(correction) in refused.value.message


def test_an_observer_cannot_record(incident, observer):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        record(incident, observer)


def test_each_decision_appends_one_event_in_the_same_transaction(incident, liaison):
    before = incident.events.count()
    entry = record(incident, liaison)

    event = IncidentEvent.objects.get(incident=incident, subject_type="decision")
    assert incident.events.count() == before + 1
    assert event.kind == "decision.recorded"
    assert event.subject_id == entry.pk
    assert event.payload["entry_hash"] == entry.entry_hash


def test_the_database_refuses_to_update_or_delete_an_entry(incident, liaison):
    entry = record(incident, liaison, agreed_by=[liaison.agency])

    for sql, params in [
        ("UPDATE coordination_decision SET decision = %s WHERE id = %s", ["Nothing", entry.pk]),
        ("DELETE FROM coordination_decision WHERE id = %s", [entry.pk]),
        (
            "UPDATE coordination_decisionposition SET stance = %s WHERE decision_id = %s",
            ["dissent", entry.pk],
        ),
        ("DELETE FROM coordination_decisionposition WHERE decision_id = %s", [entry.pk]),
    ]:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(pk=entry.pk).update(decision="Nothing")
    assert Decision.objects.get(pk=entry.pk).decision == entry.decision


def _tamper(sql: str, params: list) -> None:
    """An out-of-band edit by someone able to switch the trigger off."""
    with connection.cursor() as cursor:
        # Check the deferred foreign keys now: PostgreSQL will not alter a table with pending ones.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE coordination_decision DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE coordination_decisionposition DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE coordination_decision ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE coordination_decisionposition ENABLE TRIGGER USER")


def test_verify_finds_the_entry_edited_out_of_band(incident, liaison):
    entries = [record(incident, liaison, decision=f"Decision {n}") for n in range(1, 5)]
    _tamper(
        "UPDATE coordination_decision SET decision = %s WHERE id = %s",
        ["Decision 2, quietly changed", entries[1].pk],
    )

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact
    assert report.broken_at == 2 and report.broken_id == entries[1].pk
    assert "changed after recording" in report.reason


def test_verify_finds_an_edit_that_also_rewrote_the_hash(incident, liaison):
    """Recomputing the edited entry's own hash does not help: the next link breaks."""
    entries = [record(incident, liaison, decision=f"Decision {n}") for n in range(1, 4)]
    forged = Decision.objects.get(pk=entries[0].pk)
    forged.decision = "Rewritten"
    forged_hash = forged.compute_hash(forged.stored_positions())
    _tamper(
        "UPDATE coordination_decision SET decision = %s, entry_hash = %s WHERE id = %s",
        ["Rewritten", forged_hash, forged.pk],
    )

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and report.broken_at == 2
    assert "link to the previous entry" in report.reason


def test_verify_finds_a_deleted_entry_and_a_deleted_dissent(incident, liaison, police):
    entries = [record(incident, liaison, decision=f"Decision {n}") for n in range(1, 4)]
    with_dissent = record(incident, liaison, dissents=[(police, "Too early.")])
    _tamper("DELETE FROM coordination_decisionposition WHERE decision_id = %s", [with_dissent.pk])
    assert decision_log_verify(incident_id=incident.pk).broken_at == 4

    _tamper("DELETE FROM coordination_decision WHERE id = %s", [entries[1].pk])
    report = decision_log_verify(incident_id=incident.pk)
    assert report.broken_at == 3 and "missing" in report.reason


def test_verify_command_reports_intact_and_broken_logs(incident, liaison, capsys):
    entry = record(incident, liaison)
    call_command("verify_decision_log")
    assert f"{incident.reference}: intact, 1 entries" in capsys.readouterr().out

    _tamper("UPDATE coordination_decision SET rationale = 'x' WHERE id = %s", [entry.pk])
    with pytest.raises(CommandError, match="1 decision log"):
        call_command("verify_decision_log", incident.reference)
    assert "BROKEN at entry 1" in capsys.readouterr().out


def test_nightly_verification_task_counts_broken_logs(incident, liaison):
    from coordination.tasks import decision_logs_verify

    entry = record(incident, liaison)
    assert decision_logs_verify() == {"checked": 1, "broken": 0}
    _tamper("UPDATE coordination_decision SET rationale = 'x' WHERE id = %s", [entry.pk])
    assert decision_logs_verify() == {"checked": 1, "broken": 1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_liaisons_keep_the_chain_linear(incident, fire, police):
    """Real concurrent transactions on PostgreSQL: each thread has its own connection."""
    liaisons = [UserFactory(agency=fire, roles=[Role.LIAISON_OFFICER]) for _ in range(4)]
    per_thread = 5
    barrier = threading.Barrier(len(liaisons))
    failures: list[BaseException] = []

    def append_many(author) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                record(incident, author, decision=f"{author.username} decision {n}")
        except BaseException as exc:  # reported below; a thread must not die silently
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append_many, args=(author,)) for author in liaisons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures
    total = len(liaisons) * per_thread
    entries = list(Decision.objects.filter(incident=incident).order_by("sequence"))
    assert [e.sequence for e in entries] == list(range(1, total + 1))
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    assert decision_log_verify(incident_id=incident.pk).intact
    seqs = list(incident.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert DecisionPosition.objects.count() == 0
