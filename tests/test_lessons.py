"""Lessons identified: their lifecycle (who takes which step, what the status allows, reasons),
the oversight committee's view (overdue first, filters, counts) and need to know."""

from datetime import date, datetime

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from coordination.lessons import lesson_assign, lesson_create, lesson_transition
from coordination.markings import Marking
from coordination.models import Lesson, LessonStatus
from coordination.roles import Role
from ctpn.errors import Conflict
from incidents.models import IncidentEvent, IncidentStatus
from incidents.services import incident_transition

from .factories import AgencyFactory, UserFactory, lesson_fields

pytestmark = pytest.mark.django_db

S = LessonStatus


def identify(incident, user, owner_agency, **overrides):
    return lesson_create(
        incident_id=incident.pk, user=user, owner_agency=owner_agency, **lesson_fields(**overrides)
    )


# Paths from `identified` to each status: (status, who takes the step).
PATHS = {
    S.IDENTIFIED: [],
    S.ACTION_PLANNED: [(S.ACTION_PLANNED, "owner")],
    S.IMPLEMENTED: [(S.ACTION_PLANNED, "owner"), (S.IMPLEMENTED, "owner")],
    S.VERIFIED: [(S.ACTION_PLANNED, "owner"), (S.IMPLEMENTED, "owner"), (S.VERIFIED, "oversight")],
    S.NOT_ACCEPTED: [(S.NOT_ACCEPTED, "oversight")],
}
ALLOWED = {
    S.IDENTIFIED: {S.ACTION_PLANNED, S.NOT_ACCEPTED},
    S.ACTION_PLANNED: {S.IMPLEMENTED, S.NOT_ACCEPTED},
    S.IMPLEMENTED: {S.VERIFIED, S.ACTION_PLANNED, S.NOT_ACCEPTED},
    S.VERIFIED: set(),
    S.NOT_ACCEPTED: set(),
}


def lesson_in(status, incident, commander, fire, liaison, oversight):
    lesson = identify(incident, commander, fire)
    people = {"owner": liaison, "oversight": oversight}
    for step, who in PATHS[status]:
        lesson_transition(lesson_id=lesson.pk, user=people[who], to=step, note="because")
    lesson.refresh_from_db()
    assert lesson.status == status
    return lesson


def test_a_lesson_goes_from_identified_to_learned_with_its_history(
    api, incident, commander, fire, liaison, oversight
):
    lesson = identify(incident, commander, fire, due_date=date(2030, 1, 1))
    assert (lesson.status, lesson.source, lesson.marking) == (S.IDENTIFIED, "incident", "AMBER")

    fire_api, oversight_api = api(liaison), api(oversight)
    url = reverse("lesson-api-transition", args=[lesson.pk])
    planned = fire_api.post(url, {"to": "action_planned", "note": "Monthly drills booked."})
    assert planned.status_code == 200, planned.content
    assert planned.json()["allowed_transitions"] == ["implemented", "not_accepted"]
    assert fire_api.post(url, {"to": "implemented"}).status_code == 200
    verified = oversight_api.post(url, {"to": "verified", "note": "Seen at the last drill."})
    assert verified.status_code == 200, verified.content

    body = verified.json()
    assert body["status"] == "verified" and body["allowed_transitions"] == []
    steps = [(h["from_status"], h["to_status"], h["by"], h["note"]) for h in body["history"]]
    assert steps == [
        ("", "identified", commander.pk, "Identified (Incident)."),
        ("identified", "action_planned", liaison.pk, "Monthly drills booked."),
        ("action_planned", "implemented", liaison.pk, ""),
        ("implemented", "verified", oversight.pk, "Seen at the last drill."),
    ]
    kinds = list(
        IncidentEvent.objects.filter(incident=incident, kind__startswith="lesson.").values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["lesson.identified"] + ["lesson.transitioned"] * 3


@pytest.mark.parametrize(
    ("start", "target"),
    [(start, target) for start in S for target in S if target not in ALLOWED[start]],
)
def test_every_step_the_status_does_not_allow_is_refused_saying_which_it_allows(
    api, start, target, incident, commander, fire, liaison, oversight
):
    lesson = lesson_in(start, incident, commander, fire, liaison, oversight)
    superuser = UserFactory(agency=None, is_superuser=True, roles=[])

    response = api(superuser).post(
        reverse("lesson-api-transition", args=[lesson.pk]), {"to": target, "note": "x"}
    )

    assert response.status_code == 409, response.content
    assert set(response.json()["allowed"]) == ALLOWED[start]
    assert target in response.json()["detail"]
    assert Lesson.objects.get(pk=lesson.pk).status == start
    assert lesson.history.count() == len(PATHS[start]) + 1


@pytest.mark.parametrize(
    ("start", "target"),
    [(start, target) for start, targets in ALLOWED.items() for target in targets],
)
def test_every_allowed_step_is_taken_by_whose_step_it_is_and_nobody_else(
    start, target, incident, commander, fire, liaison, oversight
):
    lesson = lesson_in(start, incident, commander, fire, liaison, oversight)
    owner_step = target in (S.ACTION_PLANNED, S.IMPLEMENTED) and start != S.IMPLEMENTED
    right, wrong = (liaison, oversight) if owner_step else (oversight, liaison)
    # A commander of another participating agency is neither the owner nor oversight.
    for refused in (wrong, commander):
        with pytest.raises(PermissionDenied):
            lesson_transition(lesson_id=lesson.pk, user=refused, to=target, note="because")

    lesson_transition(lesson_id=lesson.pk, user=right, to=target, note="because")

    lesson.refresh_from_db()
    assert lesson.status == target
    assert lesson.history.last().by == right


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.IDENTIFIED, S.NOT_ACCEPTED),
        (S.ACTION_PLANNED, S.NOT_ACCEPTED),
        (S.IMPLEMENTED, S.NOT_ACCEPTED),
        (S.IMPLEMENTED, S.ACTION_PLANNED),
    ],
)
def test_not_accepting_or_sending_back_needs_a_reason(
    api, start, target, incident, commander, fire, liaison, oversight
):
    lesson = lesson_in(start, incident, commander, fire, liaison, oversight)
    url = reverse("lesson-api-transition", args=[lesson.pk])

    refused = api(oversight).post(url, {"to": target, "note": "   "})
    assert refused.status_code == 400 and "note" in refused.json()
    assert Lesson.objects.get(pk=lesson.pk).status == start

    done = api(oversight).post(url, {"to": target, "note": "Covered by the national review."})
    assert done.status_code == 200
    if target == S.NOT_ACCEPTED:
        assert done.json()["not_accepted_reason"] == "Covered by the national review."


def test_a_refused_step_over_the_api_says_whose_it_is(api, incident, commander, fire, oversight):
    lesson = identify(incident, commander, fire)
    url = reverse("lesson-api-transition", args=[lesson.pk])

    response = api(commander).post(url, {"to": "action_planned"})

    assert response.status_code == 403
    assert "owner agency (FRS)" in response.json()["detail"]
    assert api(oversight).post(url, {"to": "bogus"}).status_code == 400


def test_an_observer_cannot_write_lessons_and_the_owner_must_take_part(
    api, incident, observer, commander, transport
):
    response = api(observer).post(
        reverse("lesson-api-list"),
        {"incident": incident.pk, "owner_agency": incident.lead_agency_id, **lesson_fields()},
    )
    assert response.status_code == 403
    with pytest.raises(ValidationError) as refused:
        identify(incident, commander, transport)
    assert "owner_agency" in refused.value.message_dict
    assert Lesson.objects.count() == 0


def test_lessons_are_identified_after_the_incident_closed(incident, commander, fire):
    incident_transition(incident_id=incident.pk, user=commander, to=IncidentStatus.CLOSED)

    lesson = identify(incident, commander, fire)

    assert lesson.incident_id == incident.pk


def test_a_lesson_without_an_owner_waits_for_oversight_to_assign_one(
    incident, commander, fire, liaison, oversight
):
    lesson = identify(incident, commander, fire)
    Lesson.objects.filter(pk=lesson.pk).update(owner_agency=None)
    with pytest.raises(Conflict, match="no owner agency"):
        lesson_transition(lesson_id=lesson.pk, user=liaison, to=S.ACTION_PLANNED)
    with pytest.raises(PermissionDenied):
        lesson_assign(lesson_id=lesson.pk, user=liaison, owner_agency=fire)

    lesson_assign(lesson_id=lesson.pk, user=oversight, owner_agency=fire, due_date=date(2031, 5, 1))
    lesson_transition(lesson_id=lesson.pk, user=liaison, to=S.ACTION_PLANNED)

    lesson.refresh_from_db()
    assert (lesson.owner_agency, lesson.due_date, lesson.status) == (
        fire,
        date(2031, 5, 1),
        S.ACTION_PLANNED,
    )


def test_only_green_or_clear_lessons_may_be_marked_shareable(
    api, incident, commander, fire, liaison
):
    with pytest.raises(ValidationError) as refused:
        identify(incident, commander, fire, shareable=True)
    assert "shareable" in refused.value.message_dict
    lesson = identify(incident, commander, fire)
    url = reverse("lesson-api-detail", args=[lesson.pk])

    assert api(liaison).patch(url, {"shareable": True}).status_code == 400
    shared = api(liaison).patch(url, {"shareable": True, "marking": "GREEN"})
    assert shared.status_code == 200, shared.content
    assert (shared.json()["shareable"], shared.json()["marking"]) == (True, "GREEN")
    assert api(liaison).patch(url, {"marking": "AMBER"}).status_code == 400


# --- the oversight committee's view -------------------------------------------------------------


def test_the_oversight_view_lists_overdue_lessons_first_then_by_due_date(
    api, incident, commander, fire, police, liaison, oversight
):
    # 2030-06-10 noon in Stockholm.
    with time_machine.travel(datetime(2030, 6, 10, 10, 0, tzinfo=None), tick=False):
        later = identify(incident, commander, fire, title="Later", due_date=date(2030, 7, 1))
        undated = identify(incident, commander, police, title="Undated")
        soon = identify(incident, commander, fire, title="Soon", due_date=date(2030, 6, 12))
        late = identify(incident, commander, police, title="Late", due_date=date(2030, 6, 9))
        later_late = identify(incident, commander, fire, title="Very", due_date=date(2030, 5, 1))
        done = identify(incident, commander, fire, title="Done", due_date=date(2030, 1, 1))
        lesson_transition(lesson_id=done.pk, user=oversight, to=S.NOT_ACCEPTED, note="No.")

        response = api(oversight).get(reverse("lesson-api-list"))
        counts = api(oversight).get(reverse("lesson-api-counts")).json()
        overdue_only = api(oversight).get(reverse("lesson-api-list"), {"overdue": "true"}).json()
        fire_only = api(oversight).get(reverse("lesson-api-list"), {"owner_agency": fire.pk})
        refused = api(oversight).get(reverse("lesson-api-list"), {"status": "nonsense"})
        everything = api(oversight).get(
            reverse("lesson-api-list"), {"status": ["not_accepted", "identified"]}
        )

    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [later_late.pk, late.pk, soon.pk, later.pk, undated.pk]
    assert [row["overdue"] for row in response.json()["results"]] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert counts == {
        "total": 5,
        "overdue": 2,
        "by_status": {"identified": 5},
        "by_agency": {"FRS": 3, "POL": 2},
    }
    assert [row["id"] for row in overdue_only["results"]] == [later_late.pk, late.pk]
    assert {row["id"] for row in fire_only.json()["results"]} == {later_late.pk, soon.pk, later.pk}
    assert refused.status_code == 400 and "status" in refused.json()
    assert len(everything.json()["results"]) == 6


def test_the_oversight_page_shows_counts_and_overdue_first(
    client, incident, commander, fire, oversight
):
    with time_machine.travel(datetime(2030, 6, 10, 10, 0), tick=False):
        identify(incident, commander, fire, title="Soon-lesson", due_date=date(2030, 6, 12))
        identify(incident, commander, fire, title="Late-lesson", due_date=date(2030, 6, 1))
        client.force_login(oversight)
        page = client.get(reverse("lessons"))
        filtered = client.get(reverse("lessons"), {"overdue": "false"})

    text = page.content.decode()
    assert page.status_code == 200
    assert text.index("Late-lesson") < text.index("Soon-lesson")
    assert '<span id="lesson-overdue" class="overdue-count">1</span>' in text
    assert "Late-lesson" not in filtered.content.decode()


def test_need_to_know_applies_to_lessons(
    api, city, incident, commander, fire, liaison, outsider, oversight, oslo_police
):
    amber = identify(incident, commander, fire, title="AMBER-LESSON")
    red = identify(
        incident,
        commander,
        fire,
        title="RED-LESSON",
        marking=Marking.RED,
        recipient_people=[liaison],
    )
    foreign_oversight = UserFactory(agency=oslo_police, roles=[Role.OVERSIGHT])
    neighbour = AgencyFactory(city=city, name="Health", short_name="HLT")
    city_liaison = UserFactory(agency=neighbour, roles=[Role.LIAISON_OFFICER])

    def seen(user):
        return {row["title"] for row in api(user).get(reverse("lesson-api-list")).json()["results"]}

    assert seen(commander) == {"AMBER-LESSON", "RED-LESSON"}  # the author
    assert seen(liaison) == {"AMBER-LESSON", "RED-LESSON"}  # named
    assert seen(oversight) == {"AMBER-LESSON"}  # the city's committee, not named on RED
    assert seen(outsider) == set()  # same city, not taking part, not oversight
    assert seen(city_liaison) == set()
    assert seen(foreign_oversight) == set()  # another city's committee
    assert api(outsider).get(reverse("lesson-api-detail", args=[amber.pk])).status_code == 404
    assert api(oversight).get(reverse("lesson-api-detail", args=[red.pk])).status_code == 404
    with pytest.raises(Lesson.DoesNotExist):
        lesson_transition(lesson_id=red.pk, user=oversight, to=S.NOT_ACCEPTED, note="x")


def test_a_lesson_page_shows_the_history_and_takes_the_next_step(
    client, incident, commander, fire, liaison
):
    lesson = identify(incident, commander, fire, title="Page lesson")
    client.force_login(liaison)

    page = client.get(reverse("lesson", args=[lesson.pk]))
    assert page.status_code == 200 and "Page lesson" in page.content.decode()
    assert "Identified (Incident)." in page.content.decode()

    moved = client.post(
        reverse("lesson-transition", args=[lesson.pk]), {"to": "action_planned", "note": "ok"}
    )
    assert moved.status_code == 302
    refused = client.post(reverse("lesson-transition", args=[lesson.pk]), {"to": "verified"})
    assert refused.status_code == 409
    assert "may move to implemented" in refused.content.decode()
    assert Lesson.objects.get(pk=lesson.pk).status == S.ACTION_PLANNED


def test_an_exercise_lesson_says_exercise(client, commander, police, fire):
    from incidents.models import IncidentLevel, IncidentType
    from incidents.services import incident_open

    exercise = incident_open(
        user=commander,
        title="Tabletop",
        type=IncidentType.CBRN,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        participating_agencies=[fire],
        is_exercise=True,
    )
    lesson = identify(exercise, commander, fire)
    client.force_login(commander)

    assert lesson.is_exercise
    assert "EXERCISE" in client.get(reverse("lesson", args=[lesson.pk])).content.decode()
    assert "EXERCISE" in client.get(reverse("lessons")).content.decode()


def test_the_dashboard_shows_the_incidents_open_lessons_in_a_panel_live_events_refresh(
    client, incident, commander, fire, liaison, oversight
):
    with time_machine.travel(datetime(2030, 6, 10, 10, 0), tick=False):
        late = identify(incident, commander, fire, title="Late-lesson", due_date=date(2030, 6, 1))
        done = identify(incident, commander, fire, title="Refused-lesson")
        lesson_transition(lesson_id=done.pk, user=oversight, to=S.NOT_ACCEPTED, note="No.")
        identify(
            incident, commander, fire, title="RED-lesson", marking=Marking.RED, recipient_people=[]
        )
        client.force_login(liaison)
        panel = client.get(reverse("pages:incident-panel", args=[incident.pk, "lessons"]))
        dashboard = client.get(reverse("pages:incident-dashboard", args=[incident.pk]))

    text = panel.content.decode()
    assert panel.status_code == 200
    assert "Late-lesson" in text and late.label in text and "overdue" in text
    assert "Refused-lesson" not in text  # not open
    assert "RED-lesson" not in text  # the liaison is not named on it
    assert 'data-panel="lessons"' in dashboard.content.decode()
