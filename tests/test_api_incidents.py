"""Incidents over the REST API: listing, opening, numbering and the enforced lifecycle."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from coordination.models import Action, AgencyType, Decision
from coordination.roles import Role
from coordination.services import action_create
from incidents.models import (
    TRANSITIONS,
    Incident,
    IncidentEvent,
    IncidentLevel,
    IncidentStatus,
    IncidentType,
    MethaneReport,
    TimelineEntry,
)
from incidents.services import incident_open, incident_transition

from .factories import AgencyFactory, CityFactory, UserFactory, decision_fields, methane_fields

pytestmark = pytest.mark.django_db

INCIDENTS = "/api/v1/incidents/"

# The shortest way, through the service, from a new incident to each status.
PATH_TO: dict[str, list[str]] = {
    IncidentStatus.REPORTED: [],
    IncidentStatus.ACTIVATED: [IncidentStatus.ACTIVATED],
    IncidentStatus.RESPONSE: [IncidentStatus.ACTIVATED, IncidentStatus.RESPONSE],
    IncidentStatus.RECOVERY: [
        IncidentStatus.ACTIVATED,
        IncidentStatus.RESPONSE,
        IncidentStatus.RECOVERY,
    ],
    IncidentStatus.CLOSED: [IncidentStatus.CLOSED],
}
ALL_PAIRS = [
    (source, target) for source in IncidentStatus.values for target in IncidentStatus.values
]


def detail(incident) -> str:
    return f"{INCIDENTS}{incident.pk}/"


def transition_url(incident) -> str:
    return f"{INCIDENTS}{incident.pk}/transition/"


def walk(incident, user, status: str) -> Incident:
    for step in PATH_TO[status]:
        incident = incident_transition(incident_id=incident.pk, user=user, to=step)
    return incident


def events_of(incident) -> list[IncidentEvent]:
    return list(IncidentEvent.objects.filter(incident_id=incident.pk).order_by("seq"))


def open_incident(user, lead_agency, **overrides) -> Incident:
    fields = {
        "user": user,
        "title": "Suspicious package at the arena",
        "type": IncidentType.IED,
        "level": IncidentLevel.LEVEL_2,
        "lead_agency": lead_agency,
    }
    fields.update(overrides)
    return incident_open(**fields)


def test_the_list_shows_visible_incidents_with_their_state(api, liaison, incident):
    response = api(liaison).get(INCIDENTS)

    assert response.status_code == 200
    assert response.data["count"] == 1
    [row] = response.data["results"]
    assert row["id"] == incident.pk
    assert row["reference"] == incident.reference
    assert row["status"] == IncidentStatus.REPORTED
    assert row["allowed_transitions"] == list(TRANSITIONS[IncidentStatus.REPORTED])
    assert row["lead_agency_name"] == "POL"


def test_retrieve_returns_one_incident(api, liaison, incident, police, fire):
    response = api(liaison).get(detail(incident))

    assert response.status_code == 200
    assert response.data["reference"] == incident.reference
    assert response.data["title"] == "Armed attack at central station"
    assert response.data["type"] == IncidentType.MARAUDING_TERRORIST_ATTACK
    assert response.data["level"] == IncidentLevel.LEVEL_3
    assert sorted(response.data["participating_agencies"]) == sorted([police.pk, fire.pk])
    assert response.data["city_time_zone"] == "Europe/Stockholm"


def test_a_missing_incident_is_not_found(api, liaison, incident):
    assert api(liaison).get(f"{INCIDENTS}{incident.pk + 1000}/").status_code == 404


def test_a_commander_opens_an_incident_with_every_field(api, commander, police, fire, transport):
    chair = UserFactory(agency=fire, roles=[Role.NEUTRAL_COMMANDER])

    response = api(commander).post(
        INCIDENTS,
        {
            "title": "  Vehicle driven into crowd on the bridge  ",
            "type": IncidentType.VEHICLE_AS_WEAPON,
            "level": IncidentLevel.LEVEL_3,
            "lead_agency": fire.pk,
            "participating_agencies": [transport.pk],
            "neutral_commander": chair.pk,
            "latitude": "59.329323",
            "longitude": "18.068581",
            "location_description": "Centralbron, northbound",
            "is_exercise": True,
        },
    )

    assert response.status_code == 201, response.data
    incident = Incident.objects.get(pk=response.data["id"])
    assert incident.title == "Vehicle driven into crowd on the bridge"
    assert incident.type == IncidentType.VEHICLE_AS_WEAPON
    assert incident.level == IncidentLevel.LEVEL_3
    assert incident.status == IncidentStatus.REPORTED
    assert incident.is_exercise is True
    assert incident.lead_agency == fire
    assert incident.neutral_commander == chair
    assert str(incident.latitude) == "59.329323" and str(incident.longitude) == "18.068581"
    assert incident.created_by == commander
    # The lead, the opener's agency and the named agencies take part.
    assert set(incident.participating_agencies.all()) == {fire, police, transport}
    assert response.data["reference"] == incident.reference
    assert response.data["neutral_commander_name"] == str(chair)
    assert response.data["is_exercise"] is True
    assert response.data["latitude"] == "59.329323"
    assert [(e.seq, e.kind) for e in events_of(incident)] == [(1, "incident.opened")]
    assert events_of(incident)[0].actor == commander
    assert str(incident).startswith("EXERCISE ")


def test_opening_needs_only_the_essentials(api, commander, police):
    response = api(commander).post(
        INCIDENTS,
        {"title": "Drone over the airport", "type": "other", "level": 1, "lead_agency": police.pk},
    )

    assert response.status_code == 201, response.data
    assert response.data["is_exercise"] is False
    assert response.data["latitude"] is None
    assert response.data["participating_agencies"] == [police.pk]


@pytest.mark.parametrize("role", [Role.LIAISON_OFFICER, Role.OBSERVER, Role.LOGGIST])
def test_only_roles_allowed_to_open_incidents_may_create_one(api, police, role):
    user = UserFactory(agency=police, roles=[role])

    response = api(user).post(
        INCIDENTS,
        {"title": "Not mine to open", "type": "other", "level": 1, "lead_agency": police.pk},
    )

    assert response.status_code == 403
    assert not Incident.objects.exists()


@pytest.mark.parametrize("role", [Role.DUTY_OFFICER, Role.ADMINISTRATOR, Role.TACTICAL_COMMANDER])
def test_duty_officers_administrators_and_commanders_may_open_incidents(api, police, role):
    user = UserFactory(agency=police, roles=[role])

    response = api(user).post(
        INCIDENTS, {"title": "Gas leak", "type": "other", "level": 1, "lead_agency": police.pk}
    )

    assert response.status_code == 201, response.data


def test_references_count_up_per_city_and_year(api, commander, police):
    oslo = CityFactory(name="Oslo", code="OSL", time_zone="Europe/Oslo")
    oslo_police = AgencyFactory(city=oslo, name="Oslo Police", short_name="OPD")
    oslo_gold = UserFactory(agency=oslo_police, roles=[Role.STRATEGIC_COMMANDER])
    this_year = timezone.now().astimezone(police.city.zone).year

    def open_via_api(user, lead, **extra):
        response = api(user).post(
            INCIDENTS,
            {"title": "Incident", "type": "other", "level": 1, "lead_agency": lead.pk, **extra},
        )
        assert response.status_code == 201, response.data
        return response.data["reference"]

    assert open_via_api(commander, police) == f"STO-{this_year}-0001"
    assert open_via_api(commander, police) == f"STO-{this_year}-0002"
    assert open_via_api(oslo_gold, oslo_police) == f"OSL-{this_year}-0001"
    assert open_via_api(commander, police, opened_at="2025-06-01T10:00:00Z") == "STO-2025-0001"
    assert open_via_api(commander, police, opened_at="2025-07-01T10:00:00Z") == "STO-2025-0002"
    # 23:30 UTC on New Year's Eve is already the new year in Stockholm: the city's year counts.
    assert open_via_api(commander, police, opened_at="2024-12-31T23:30:00Z") == "STO-2025-0003"
    assert open_via_api(commander, police) == f"STO-{this_year}-0003"


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=[f"{s}-to-{t}" for s, t in ALL_PAIRS])
def test_every_transition_of_the_lifecycle(api, commander, incident, source, target):
    incident = walk(incident, commander, source)
    before = events_of(incident)

    response = api(commander).post(transition_url(incident), {"to": target})

    incident.refresh_from_db()
    if target in TRANSITIONS[source]:
        assert response.status_code == 200, response.data
        assert response.data["status"] == target
        assert response.data["allowed_transitions"] == list(TRANSITIONS[target])
        assert incident.status == target
        [event] = events_of(incident)[len(before) :]
        assert event.seq == before[-1].seq + 1
        assert event.kind == "incident.transitioned"
        assert event.payload["from"] == source and event.payload["status"] == target
        assert event.actor == commander
    else:
        assert response.status_code == 409, response.data
        assert response.data["allowed"] == list(TRANSITIONS[source])
        if source == IncidentStatus.CLOSED:
            assert "closed is final" in response.data["detail"]
        else:
            assert f"from {source} to {target}" in response.data["detail"]
        assert incident.status == source
        assert events_of(incident) == before


def test_closing_records_when_and_recovery_may_fall_back_to_response(api, commander, incident):
    client = api(commander)
    for step in ("activated", "response", "recovery", "response", "recovery"):
        assert client.post(transition_url(incident), {"to": step}).status_code == 200
    assert client.get(detail(incident)).data["closed_at"] is None

    response = client.post(transition_url(incident), {"to": "closed"})

    assert response.status_code == 200
    closed_at = datetime.fromisoformat(response.data["closed_at"])
    assert abs(closed_at - timezone.now()) < timedelta(minutes=1)
    assert closed_at.utcoffset() == timedelta(0)


def test_an_unknown_target_status_is_a_bad_request_naming_to(api, commander, incident):
    response = api(commander).post(transition_url(incident), {"to": "finished"})

    assert response.status_code == 400
    assert "to" in response.data
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.REPORTED


@pytest.mark.parametrize("role", [Role.OBSERVER, Role.LIAISON_OFFICER, Role.LOGGIST])
def test_only_commanders_and_administrators_may_transition(api, incident, police, role):
    member = UserFactory(agency=police, roles=[role])

    response = api(member).post(transition_url(incident), {"to": "activated"})

    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.REPORTED
    assert incident.last_event_seq == 1


@pytest.mark.parametrize(
    "role", [Role.TACTICAL_COMMANDER, Role.NEUTRAL_COMMANDER, Role.STRATEGIC_COMMANDER]
)
def test_commanders_of_participating_agencies_may_transition(api, incident, fire, role):
    member = UserFactory(agency=fire, roles=[role])

    response = api(member).post(transition_url(incident), {"to": "activated"})

    assert response.status_code == 200
    assert response.data["status"] == IncidentStatus.ACTIVATED


def test_an_administrator_of_a_participating_agency_may_transition(api, incident, fire):
    administrator = UserFactory(agency=fire, roles=[Role.ADMINISTRATOR])
    response = api(administrator).post(transition_url(incident), {"to": "activated"})

    assert response.status_code == 200
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.ACTIVATED


def test_a_city_administrator_outside_the_incident_reads_but_does_not_write(
    api, incident, administrator, fire
):
    """The administrator sees every incident of the city, but only participants act in one."""
    client = api(administrator)
    assert client.get(detail(incident)).status_code == 200

    response = client.post(transition_url(incident), {"to": "activated"})
    assert response.status_code == 403
    assert "does not take part" in response.data["detail"]
    response = client.post(f"{detail(incident)}timeline/", {"text": "From outside"})
    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.REPORTED
    assert incident.events.count() == 1


def test_a_closed_incident_refuses_new_log_entries(api, commander, liaison, incident, fire):
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    incident_transition(incident_id=incident.pk, user=commander, to="closed")
    before = incident.events.count()
    client = api(liaison)
    base = detail(incident)
    decided_at = (timezone.now() - timedelta(minutes=1)).isoformat()
    writes = [
        ("post", "decisions/", {**decision_fields(), "decided_at": decided_at}),
        (
            "post",
            "methane/",
            methane_fields(),
        ),
        ("post", "actions/", {"title": "Set up a cordon", "owner_agency": fire.pk}),
        ("patch", f"actions/{action.pk}/", {"status": "done"}),
        ("post", "timeline/", {"text": "Too late"}),
    ]

    for method, path, body in writes:
        response = getattr(client, method)(base + path, body)
        assert response.status_code == 409, (path, response.data)
        assert "closed" in response.data["detail"]

    assert incident.events.count() == before
    assert not Decision.objects.exists()
    assert not MethaneReport.objects.exists()
    assert not TimelineEntry.objects.exists()
    assert Action.objects.get().status == "open"


def test_incidents_filter_by_status_and_exercise_flag(api, commander, police, incident):
    drill = open_incident(commander, police, title="Annual drill", is_exercise=True)
    closed = open_incident(commander, police, title="False alarm")
    incident_transition(incident_id=closed.pk, user=commander, to="closed")
    activated = walk(open_incident(commander, police, title="Real one"), commander, "activated")
    client = api(commander)

    def ids(query: str) -> set[int]:
        response = client.get(INCIDENTS + query)
        assert response.status_code == 200
        return {row["id"] for row in response.data["results"]}

    # Exercises are never listed with real incidents: only when asked for.
    assert ids("") == {incident.pk, closed.pk, activated.pk}
    assert ids("?status=closed") == {closed.pk}
    assert ids("?status=activated") == {activated.pk}
    assert ids("?status=reported") == {incident.pk}
    assert ids("?status=reported&is_exercise=true") == {drill.pk}
    assert ids("?is_exercise=true") == {drill.pk}
    assert ids("?is_exercise=1") == {drill.pk}
    assert ids("?is_exercise=false") == {incident.pk, closed.pk, activated.pk}
    assert ids("?status=reported&is_exercise=false") == {incident.pk}


def test_a_bad_filter_value_is_a_bad_request(api, commander, incident):
    response = api(commander).get(INCIDENTS + "?status=finished")

    assert response.status_code == 400
    assert "status" in response.data


def test_times_are_utc_in_the_api(api, liaison, incident):
    response = api(liaison).get(detail(incident))

    opened_at = datetime.fromisoformat(response.data["opened_at"])
    assert opened_at.utcoffset() == timedelta(0)
    assert opened_at == incident.opened_at.astimezone(UTC)


def test_an_incident_of_another_city_cannot_be_led_from_here(api, commander):
    oslo = CityFactory(name="Oslo", code="OSL", time_zone="Europe/Oslo")
    oslo_fire = AgencyFactory(city=oslo, type=AgencyType.FIRE_RESCUE)

    response = api(commander).post(
        INCIDENTS, {"title": "Not ours", "type": "other", "level": 1, "lead_agency": oslo_fire.pk}
    )

    assert response.status_code == 400
    assert "lead_agency" in response.data
    assert not Incident.objects.exists()
