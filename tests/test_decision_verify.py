"""The chain verification hashes stored rows, read in chunks with what was recorded beside them in
bulk: it must agree with the model's own recomputation of every entry, and see any edit of an
entry, of a position recorded with it or later, of its recipients, of a marking change or of the
meeting it was taken in."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.utils import timezone

from coordination import services
from coordination.meetings import meeting_schedule
from coordination.models import (
    DECISION_HASHED_FIELDS,
    GENESIS_HASH,
    Decision,
    DecisionMarkingChange,
    DecisionPosition,
    decision_hash,
)
from coordination.services import (
    decision_log_verify,
    decision_marking_change,
    decision_position_record,
    decision_record,
)

from .factories import decision_fields

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of two entries, so that a small log crosses chunk boundaries."""
    monkeypatch.setattr(services, "VERIFY_CHUNK", 2)


@pytest.fixture
def log(incident, commander, liaison, police, fire):
    """Seven entries: plain ones, and ones with each kind of thing recorded beside them."""
    meeting = meeting_schedule(
        incident_id=incident.pk,
        user=commander,
        title="Strategic coordinating group 1",
        scheduled_at=timezone.now() + timedelta(hours=1),
        location="City Hall, room 4",
        virtual_link="",
        agenda=[{"title": "Situation"}],
    )

    def record(author, **overrides):
        extra = {
            name: overrides.pop(name)
            for name in ("agreed_by", "dissents", "marking", "recipient_agencies", "meeting")
            if name in overrides
        }
        fields = decision_fields(**overrides)
        return decision_record(incident_id=incident.pk, author=author, **fields, **extra)

    entries = {
        "plain": record(liaison, decision="Close the station."),
        "positions": record(
            liaison, decision="Evacuate.", agreed_by=[fire], dissents=[(police, "Too early.")]
        ),
        "recipients": record(
            liaison,
            decision="Brief the named agencies.",
            marking="AMBER+STRICT",
            recipient_agencies=[police],
        ),
        "marking": record(liaison, decision="Re-marked later."),
        "meeting": record(commander, decision="Taken in the meeting.", meeting=meeting),
        "later": record(liaison, decision="Positions taken later."),
        "last": record(liaison, decision="The newest entry."),
    }
    decision_marking_change(
        decision_id=entries["marking"].pk, user=liaison, marking="RED", reason="Source at risk"
    )
    decision_marking_change(decision_id=entries["marking"].pk, user=liaison, marking="AMBER")
    decision_position_record(
        decision=entries["later"], user=commander, position="dissent", reason="Not yet."
    )
    return entries


def _tamper(table: str, sql: str, params: list) -> None:
    """An out-of-band edit by someone able to switch the append-only trigger off."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def test_verify_agrees_with_the_recomputation_of_every_entry(incident, log):
    entries = list(
        Decision.objects.filter(incident=incident)
        .order_by("sequence")
        .prefetch_related("positions", "recipient_agencies", "recipient_people")
    )
    previous = GENESIS_HASH
    for entry in entries:
        recomputed = entry.compute_hash(entry.stored_positions(), entry.stored_recipients())
        assert recomputed == entry.entry_hash
        assert entry.prev_hash == previous
        # The stored columns alone, as the verification reads them, give the same hash.
        values = Decision.objects.values_list(*DECISION_HASHED_FIELDS).get(pk=entry.pk)
        stored = decision_hash(
            entry.prev_hash, values, entry.stored_positions(), entry.stored_recipients()
        )
        assert stored == entry.entry_hash
        previous = entry.entry_hash
    assert entries[4].meeting_id is not None and log["meeting"].pk == entries[4].pk
    assert entries[1].stored_positions() and entries[2].stored_recipients()[0]

    report = decision_log_verify(incident_id=incident.pk)
    assert report.intact and report.entries == len(entries) == 7
    assert report.last_hash == previous


TAMPERING = {
    "entry": (
        "coordination_decision",
        "UPDATE coordination_decision SET rationale = 'x' WHERE id = %s",
        "last",
        "changed after recording",
    ),
    "position recorded with it": (
        "coordination_decisionposition",
        "UPDATE coordination_decisionposition SET statement = 'Fine.' WHERE decision_id = %s",
        "positions",
        "changed after recording",
    ),
    "recipients": (
        "coordination_decision_recipient_agencies",
        "DELETE FROM coordination_decision_recipient_agencies WHERE decision_id = %s",
        "recipients",
        "changed after recording",
    ),
    "marking change": (
        "coordination_decisionmarkingchange",
        "UPDATE coordination_decisionmarkingchange SET reason = 'Routine' WHERE decision_id = %s",
        "marking",
        "a change of its marking no longer matches its hash",
    ),
    "meeting": (
        "coordination_decision",
        "UPDATE coordination_decision SET meeting_id = NULL WHERE id = %s",
        "meeting",
        "changed after recording",
    ),
    "later position": (
        "coordination_decisionposition",
        "UPDATE coordination_decisionposition SET stance = 'agree' WHERE decision_id = %s",
        "later",
        "a position recorded later no longer matches its hash",
    ),
}


@pytest.mark.parametrize("what", TAMPERING)
def test_verify_finds_each_kind_of_edit(incident, log, what):
    table, sql, entry_name, reason = TAMPERING[what]
    entry = log[entry_name]
    assert decision_log_verify(incident_id=incident.pk).intact

    _tamper(table, sql, [entry.pk])

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact
    assert (report.broken_at, report.broken_id) == (entry.sequence, entry.pk)
    assert reason in report.reason
    # The entries before it were checked, and the chain is reported up to the one before it.
    assert report.entries == entry.sequence
    before = Decision.objects.get(incident=incident, sequence=entry.sequence - 1)
    assert report.last_hash == before.entry_hash


def test_verify_reads_what_is_beside_the_entries_in_a_fixed_number_of_queries(
    incident, log, django_assert_max_num_queries
):
    assert DecisionPosition.objects.filter(decision__incident=incident).count() == 3
    assert DecisionMarkingChange.objects.filter(decision__incident=incident).count() == 2
    # The log in chunks of two, five reads of what is beside it, the announced events: never one
    # query per entry.
    with django_assert_max_num_queries(20):
        assert decision_log_verify(incident_id=incident.pk).intact


def _entry(**overrides):
    fields = {
        "incident_id": 7,
        "sequence": 3,
        "information": "Rapport : un assaillant armé à la gare — « centrale »",
        "threat_assessment": "Threat ongoing.\nRisk high.",
        "working_strategy": "Save life.",
        "powers_policies": "CCA 2004",
        "options": [
            {"reason": "Removes the public.", "option": "Evacuate", "chosen": True},
            {
                "option": "Shelter",
                "chosen": False,
                "reason": "Slower",
                "extra": {"b": 1, "a": [2.5, None]},
            },
        ],
        "decision": "Evacuate.",
        "rationale": "Protects life.",
        "decided_at": datetime(
            2026, 3, 1, 10, 15, 30, 123456, tzinfo=dt_timezone(timedelta(hours=1))
        ),
        "recorded_at": datetime(2026, 3, 1, 9, 20, tzinfo=UTC),
        "late_entry_reason": "",
        "review_by": None,
        "author_id": 11,
        "author_agency_id": 4,
        "supersedes_id": None,
        "marking": "AMBER",
        "prev_hash": "ab" * 32,
        "meeting_id": None,
    }
    fields.update(overrides)
    return Decision(**fields)


@pytest.mark.parametrize(
    ("overrides", "positions", "recipients", "expected"),
    [
        ({}, [], ((), ()), "b458da4e31448baf13dd5a47edc4a6150c1fb60fb2600d9fe48fbc5ea108a2a1"),
        (
            {
                "meeting_id": 9,
                "review_by": datetime(2026, 3, 2, tzinfo=UTC),
                "supersedes_id": 2,
                "late_entry_reason": "Radio down",
            },
            [(5, "dissent", "Trop tôt."), (4, "agree", "")],
            ((6, 4), ()),
            "cef2febf1ced5cf9cd9c62c46c4643116d1693b8dfb0148c71bb514865955dce",
        ),
        (
            {"marking": "RED"},
            [(4, "agree", "")],
            ((), (12, 3)),
            "a0bde14b7955f2daf45448fa9a24d3cc0e2031e085cbb07048be881d712bd377",
        ),
    ],
)
def test_hashes_are_those_recorded_before(overrides, positions, recipients, expected):
    """Hashes computed by the canonical content as it was before it was shared with the
    verification: every recorded log must keep verifying, byte for byte."""
    entry = _entry(**overrides)
    assert entry.compute_hash(positions, recipients) == expected
    values = tuple(getattr(entry, name) for name in DECISION_HASHED_FIELDS)
    assert decision_hash(entry.prev_hash, values, positions, recipients) == expected
