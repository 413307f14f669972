"""Agencies agree with, or dissent from, a joint decision after it was recorded: once per agency,
append-only, hashed into the log so that verification sees any edit or removal."""

import itertools

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction

from coordination.models import Decision, DecisionPosition
from coordination.roles import Role
from coordination.services import (
    decision_log_verify,
    decision_position_record,
    decision_record,
    decision_supersede,
)
from ctpn.errors import Conflict
from incidents.models import IncidentEvent

from .factories import UserFactory, decision_fields, row_counts

pytestmark = pytest.mark.django_db


def record(incident, author, **overrides):
    return decision_record(incident_id=incident.pk, author=author, **decision_fields(**overrides))


def url(incident, decision):
    return f"/api/v1/incidents/{incident.pk}/decisions/{decision.pk}/positions/"


def _tamper(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE coordination_decisionposition DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE coordination_decisionposition ENABLE TRIGGER USER")


def test_a_later_position_is_chained_to_the_decision_and_leaves_its_hash(
    incident, liaison, commander, police
):
    entry = record(incident, liaison)
    original_hash = entry.entry_hash

    position = decision_position_record(
        decision=entry, user=commander, position="dissent", reason="Routes not secured."
    )

    entry = Decision.objects.get(pk=entry.pk)
    assert entry.entry_hash == original_hash
    assert position.agency == police and position.stance == "dissent"
    assert position.prev_hash == original_hash
    assert position.compute_hash() == position.entry_hash and len(position.entry_hash) == 64
    assert position.recorded_by == commander and position.recorded_at is not None
    assert decision_log_verify(incident_id=incident.pk).intact


def test_later_positions_of_one_decision_form_a_chain(incident, liaison, commander):
    entry = record(incident, liaison)
    first = decision_position_record(decision=entry, user=commander, position="agree", reason="")
    second = decision_position_record(decision=entry, user=liaison, position="agree", reason="")

    assert second.prev_hash == first.entry_hash
    report = decision_log_verify(incident_id=incident.pk)
    assert report.intact and report.entries == 1


def test_positions_recorded_with_the_decision_stay_in_its_hash(incident, liaison, fire, commander):
    entry = record(incident, liaison, agreed_by=[fire])
    decision_position_record(decision=entry, user=commander, position="agree", reason="")

    entry = Decision.objects.get(pk=entry.pk)
    assert entry.stored_positions() == [(fire.pk, "agree", "")]
    assert entry.compute_hash(entry.stored_positions()) == entry.entry_hash


def test_one_position_per_agency(incident, liaison, commander, police):
    entry = record(incident, liaison, dissents=[(police, "Too early.")])
    before = row_counts()

    with pytest.raises(Conflict) as refused:
        decision_position_record(decision=entry, user=commander, position="agree", reason="")
    assert "POL has already recorded that it dissents" in refused.value.message
    assert row_counts() == before


def test_a_second_police_officer_cannot_add_a_second_police_position(
    incident, liaison, commander, police
):
    entry = record(incident, liaison)
    decision_position_record(decision=entry, user=commander, position="agree", reason="")
    colleague = UserFactory(agency=police, roles=[Role.LIAISON_OFFICER])

    with pytest.raises(Conflict):
        decision_position_record(decision=entry, user=colleague, position="dissent", reason="No.")
    assert entry.positions.count() == 1


def test_a_dissent_says_why_and_an_unknown_position_is_refused(incident, liaison, commander):
    entry = record(incident, liaison)
    with pytest.raises(ValidationError) as refused:
        decision_position_record(decision=entry, user=commander, position="dissent", reason=" ")
    assert "reason" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        decision_position_record(decision=entry, user=commander, position="abstain", reason="")
    assert "position" in refused.value.message_dict
    assert not entry.positions.exists()


def test_an_agency_outside_the_incident_cannot_take_a_position(
    incident, liaison, outsider, administrator
):
    entry = record(incident, liaison)
    with pytest.raises(Exception) as refused:
        decision_position_record(decision=entry, user=outsider, position="agree", reason="")
    assert isinstance(refused.value, (PermissionDenied, type(incident).DoesNotExist))
    # An administrator of the city sees the incident but their agency does not take part.
    with pytest.raises(PermissionDenied):
        decision_position_record(decision=entry, user=administrator, position="agree", reason="")
    assert not entry.positions.exists()


def test_an_observer_cannot_take_a_position(incident, liaison, observer):
    entry = record(incident, liaison)
    with pytest.raises(PermissionDenied):
        decision_position_record(decision=entry, user=observer, position="agree", reason="")


def test_a_superseded_decision_takes_no_new_positions(incident, liaison, commander):
    entry = record(incident, liaison)
    correction = decision_supersede(original=entry, author=liaison, **decision_fields())

    with pytest.raises(Conflict) as refused:
        decision_position_record(decision=entry, user=commander, position="agree", reason="")
    assert str(correction) in refused.value.message


def test_a_position_appends_an_event_about_the_decision(incident, liaison, commander):
    entry = record(incident, liaison)
    before = incident.events.count()
    position = decision_position_record(
        decision=entry, user=commander, position="dissent", reason="Not yet."
    )

    assert incident.events.count() == before + 1
    event = IncidentEvent.objects.get(incident=incident, kind="decision.position_recorded")
    assert (event.subject_type, event.subject_id) == ("decision", entry.pk)
    assert event.payload["entry_hash"] == position.entry_hash
    assert event.payload["stance"] == "dissent" and event.payload["agency_name"] == "POL"


def test_the_database_refuses_to_change_a_later_position(incident, liaison, commander):
    entry = record(incident, liaison)
    position = decision_position_record(decision=entry, user=commander, position="agree", reason="")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DecisionPosition.objects.filter(pk=position.pk).update(stance="dissent")


def test_verify_finds_a_later_position_edited_out_of_band(incident, liaison, commander):
    entries = [record(incident, liaison, decision=f"Decision {n}") for n in range(1, 4)]
    position = decision_position_record(
        decision=entries[1], user=commander, position="agree", reason=""
    )
    _tamper(
        "UPDATE coordination_decisionposition SET stance = 'dissent' WHERE id = %s", [position.pk]
    )

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and report.broken_at == 2
    assert "position recorded later no longer matches" in report.reason


def test_verify_finds_a_forged_position_with_a_recomputed_hash(incident, liaison, commander):
    entry = record(incident, liaison)
    first = decision_position_record(decision=entry, user=commander, position="agree", reason="")
    decision_position_record(decision=entry, user=liaison, position="agree", reason="")
    forged = DecisionPosition.objects.get(pk=first.pk)
    forged.stance = "dissent"
    _tamper(
        "UPDATE coordination_decisionposition SET stance = 'dissent', entry_hash = %s "
        "WHERE id = %s",
        [forged.compute_hash(), first.pk],
    )

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and report.broken_at == 1
    assert "not linked" in report.reason


def test_verify_finds_the_newest_later_position_deleted(incident, liaison, commander):
    entry = record(incident, liaison)
    position = decision_position_record(
        decision=entry, user=commander, position="dissent", reason="Too early."
    )
    _tamper("DELETE FROM coordination_decisionposition WHERE id = %s", [position.pk])

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and report.broken_at == 1
    assert "POL recorded later is missing" in report.reason


def test_verify_finds_a_later_position_passed_off_as_an_original(incident, liaison, commander):
    entry = record(incident, liaison)
    position = decision_position_record(decision=entry, user=commander, position="agree", reason="")
    _tamper(
        "UPDATE coordination_decisionposition SET entry_hash = '', prev_hash = '' WHERE id = %s",
        [position.pk],
    )

    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and report.broken_at == 1


# --- the API -------------------------------------------------------------------------------------


def test_api_records_a_position(api, incident, liaison, commander):
    entry = record(incident, liaison)
    response = api(commander).post(
        url(incident, entry), {"position": "dissent", "reason": "Routes not secured."}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agency_name"] == "POL" and body["stance"] == "dissent"
    assert body["statement"] == "Routes not secured."
    assert body["entry_hash"] == DecisionPosition.objects.get(decision=entry).entry_hash
    shown = api(commander).get(f"/api/v1/incidents/{incident.pk}/decisions/{entry.pk}/").json()
    assert [p["agency_name"] for p in shown["positions"]] == ["POL"]


def test_api_answers_409_to_a_second_position(api, incident, liaison, commander):
    entry = record(incident, liaison)
    assert api(commander).post(url(incident, entry), {"position": "agree"}).status_code == 201

    response = api(commander).post(url(incident, entry), {"position": "dissent", "reason": "x"})
    assert response.status_code == 409
    assert "already recorded that it agrees" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "position"),
        ({"position": "maybe"}, "position"),
        ({"position": "dissent"}, "reason"),
        ({"position": "dissent", "reason": "   "}, "reason"),
        ({"position": ["agree"]}, "position"),
    ],
)
def test_api_names_the_field_at_fault(api, incident, liaison, commander, body, field):
    entry = record(incident, liaison)
    response = api(commander).post(url(incident, entry), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not entry.positions.exists()


def test_api_refuses_observers_and_hides_the_incident_from_outsiders(
    api, incident, liaison, observer, outsider
):
    entry = record(incident, liaison)
    assert api(observer).post(url(incident, entry), {"position": "agree"}).status_code == 403
    assert api(outsider).post(url(incident, entry), {"position": "agree"}).status_code == 404
    assert api().post(url(incident, entry), {"position": "agree"}).status_code in (401, 403)
    missing = f"/api/v1/incidents/{incident.pk}/decisions/999999/positions/"
    assert api(liaison).post(missing, {"position": "agree"}).status_code == 404
    assert not entry.positions.exists()


def test_api_refuses_a_decision_of_another_incident(api, incident, liaison, commander, police):
    from incidents.models import IncidentLevel, IncidentType
    from incidents.services import incident_open

    other = incident_open(
        user=commander,
        title="Second scene",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
    )
    entry = record(incident, liaison)
    response = api(commander).post(url(other, entry), {"position": "agree"})
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_positions_keep_one_per_agency_and_a_linear_chain(incident, liaison, city):
    """Real concurrent transactions: agencies race to take positions, two people per agency."""
    import threading

    from coordination.models import AgencyType

    from .factories import AgencyFactory

    entry = record(incident, liaison)
    agencies = [AgencyFactory(city=city, type=AgencyType.OTHER) for _ in range(3)]
    incident.participating_agencies.add(*agencies)
    people = [
        UserFactory(agency=agency, roles=[Role.LIAISON_OFFICER])
        for agency in agencies
        for _ in range(2)
    ]
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def take_position(user) -> None:
        from django.db import connections

        try:
            barrier.wait()
            decision_position_record(decision=entry, user=user, position="agree", reason="")
            outcomes.append("recorded")
        except Conflict:
            outcomes.append("conflict")
        except BaseException as exc:  # reported below; a thread must not die silently
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take_position, args=(user,)) for user in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["conflict"] * 3 + ["recorded"] * 3
    later = list(DecisionPosition.objects.filter(decision=entry).order_by("pk"))
    assert sorted(p.agency_id for p in later) == sorted(a.pk for a in agencies)
    assert later[0].prev_hash == entry.entry_hash
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(later))
    assert decision_log_verify(incident_id=incident.pk).intact
