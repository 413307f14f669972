"""Joint debriefs: held for an incident or exercise, observations by agency, closed, and any
observation made a lesson identified in one click."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from coordination.lessons import debrief_create, observation_add
from coordination.models import Debrief, Lesson, Observation
from incidents.models import IncidentEvent, IncidentLevel, IncidentStatus, IncidentType
from incidents.services import incident_open, incident_transition

pytestmark = pytest.mark.django_db


def hold(incident, user, **fields):
    return debrief_create(
        incident_id=incident.pk,
        user=user,
        title=fields.pop("title", "Hot debrief"),
        held_at=fields.pop("held_at", timezone.now() - timedelta(hours=1)),
        **fields,
    )


def test_a_debrief_records_who_took_part_by_agency_and_their_observations(
    api, incident, commander, liaison, police, fire
):
    url = reverse("incident-debrief-list", args=[incident.pk])
    created = api(commander).post(
        url,
        {
            "title": "Structured debrief",
            "held_at": "2026-03-01T09:00:00Z",
            "facilitator": commander.pk,
            "participants": [liaison.pk],
        },
    )
    assert created.status_code == 201, created.content
    debrief = created.json()
    assert set(debrief["agencies"]) == {police.pk, fire.pk}
    assert debrief["status"] == "open" and debrief["is_exercise"] is False

    observations = reverse("incident-debrief-observations", args=[incident.pk, debrief["id"]])
    went_well = api(liaison).post(observations, {"category": "went_well", "text": "RVP was fast."})
    assert went_well.status_code == 201
    assert went_well.json()["agency"] == fire.pk and went_well.json()["author"] == liaison.pk
    bad = api(liaison).post(observations, {"category": "terrible", "text": "x"})
    assert bad.status_code == 400 and "category" in bad.json()
    blank = api(liaison).post(observations, {"category": "other", "text": " "})
    assert blank.status_code == 400 and "text" in blank.json()

    shown = api(liaison).get(reverse("incident-debrief-detail", args=[incident.pk, debrief["id"]]))
    assert [o["text"] for o in shown.json()["observations"]] == ["RVP was fast."]
    kinds = IncidentEvent.objects.filter(incident=incident, kind__startswith="debrief.")
    assert list(kinds.values_list("kind", flat=True)) == [
        "debrief.created",
        "debrief.observation_added",
    ]


def test_a_closed_debrief_takes_no_more_observations(api, incident, commander, liaison):
    debrief = hold(incident, commander)
    close = reverse("incident-debrief-close", args=[incident.pk, debrief.pk])

    assert api(commander).post(close).status_code == 200
    assert api(commander).post(close).status_code == 409
    refused = api(liaison).post(
        reverse("incident-debrief-observations", args=[incident.pk, debrief.pk]),
        {"category": "other", "text": "Too late"},
    )
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    assert Observation.objects.count() == 0


def test_an_observation_becomes_a_lesson_in_one_click_linked_both_ways(
    api, incident, commander, liaison, fire
):
    debrief = hold(incident, commander)
    observation = observation_add(
        debrief_id=debrief.pk,
        user=liaison,
        category="did_not_go_well",
        text="Shared radio channel unavailable for twenty minutes.",
    )
    url = reverse(
        "incident-debrief-observation-lesson", args=[incident.pk, debrief.pk, observation.pk]
    )

    made = api(commander).post(url, {})
    again = api(commander).post(url, {})

    assert made.status_code == 201, made.content
    lesson = made.json()
    assert lesson["title"] == observation.text and lesson["status"] == "identified"
    assert (lesson["source"], lesson["owner_agency"]) == ("observation", fire.pk)
    assert (lesson["observation"], lesson["debrief"]) == (observation.pk, debrief.pk)
    assert again.status_code == 409
    assert Lesson.objects.count() == 1
    shown = api(liaison).get(reverse("incident-debrief-detail", args=[incident.pk, debrief.pk]))
    assert shown.json()["observations"][0]["lesson"] == lesson["id"]


def test_debriefs_are_held_after_the_incident_closed_and_say_exercise(
    client, commander, police, fire
):
    exercise = incident_open(
        user=commander,
        title="Live play",
        type=IncidentType.VEHICLE_AS_WEAPON,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        participating_agencies=[fire],
        is_exercise=True,
    )
    incident_transition(incident_id=exercise.pk, user=commander, to=IncidentStatus.CLOSED)
    debrief = hold(exercise, commander, title="Exercise debrief")
    client.force_login(commander)

    listing = client.get(reverse("debriefs", args=[exercise.pk]))
    page = client.get(reverse("debrief", args=[debrief.pk]))

    assert listing.status_code == page.status_code == 200
    assert "EXERCISE" in listing.content.decode() and "EXERCISE" in page.content.decode()
    assert "Exercise debrief" in listing.content.decode()


def test_outsiders_neither_see_nor_write_debriefs(api, client, incident, commander, outsider):
    debrief = hold(incident, commander)

    listed = api(outsider).get(reverse("incident-debrief-list", args=[incident.pk]))
    written = api(outsider).post(
        reverse("incident-debrief-list", args=[incident.pk]),
        {"title": "x", "held_at": "2026-03-01T09:00:00Z"},
    )
    client.force_login(outsider)

    assert listed.status_code == written.status_code == 404
    assert client.get(reverse("debrief", args=[debrief.pk])).status_code == 404
    assert Debrief.objects.count() == 1


def test_the_debrief_pages_record_observations_and_identify_lessons_without_javascript(
    client, incident, commander, liaison
):
    client.force_login(commander)
    created = client.post(
        reverse("debriefs", args=[incident.pk]),
        {"title": "Page debrief", "held_at": "2026-03-01T10:00", "participants": [liaison.pk]},
    )
    assert created.status_code == 302
    debrief = Debrief.objects.get()
    assert debrief.held_at.isoformat() == "2026-03-01T09:00:00+00:00"  # Stockholm, UTC+1

    missing = client.post(reverse("debriefs", args=[incident.pk]), {"title": ""})
    assert missing.status_code == 400
    added = client.post(
        reverse("debrief-observation", args=[debrief.pk]),
        {"category": "went_well", "text": "Casualty clearing was quick."},
    )
    assert added.status_code == 302
    observation = Observation.objects.get()
    lesson = client.post(reverse("observation-lesson", args=[observation.pk]))
    assert lesson.status_code == 302
    assert lesson["Location"] == reverse("lesson", args=[Lesson.objects.get().pk])
    twice = client.post(reverse("observation-lesson", args=[observation.pk]))
    assert twice.status_code == 409
    assert "already identified" in twice.content.decode()
    closed = client.post(reverse("debrief-close", args=[debrief.pk]))
    assert closed.status_code == 302
    page = client.get(reverse("debrief", args=[debrief.pk])).content.decode()
    assert "Casualty clearing was quick." in page and "Add an observation" not in page
