"""Meetings of the strategic cell: lifecycle, agenda, attendees and minutes frozen at close,
decisions and actions linked to the meeting in which they were taken, need to know."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from coordination.markings import Marking
from coordination.meetings import (
    meeting_attendance_record,
    meeting_schedule,
    meeting_transition,
    meeting_update,
)
from coordination.models import Attendance, Decision, Meeting, MeetingStatus
from coordination.services import action_create, action_update, decision_log_verify, decision_record
from ctpn.errors import Conflict
from incidents.models import IncidentEvent, IncidentLevel, IncidentType
from incidents.services import incident_open

from .auth import signed_in_client
from .factories import decision_fields

pytestmark = pytest.mark.django_db


def schedule(incident, user, **overrides):
    fields = {
        "title": "Strategic coordinating group 1",
        "scheduled_at": timezone.now() + timedelta(hours=1),
        "location": "City Hall, room 4",
        "virtual_link": "https://meet.example.org/scg",
        "agenda": [{"title": "Situation", "notes": "METHANE"}, {"title": "Strategy"}],
    }
    fields.update(overrides)
    return meeting_schedule(incident_id=incident.pk, user=user, **fields)


def test_a_meeting_is_scheduled_started_and_closed_with_an_event_for_each(
    incident, commander, liaison, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        meeting = schedule(incident, commander, chair=commander, attendees=[commander, liaison])
    assert meeting.status == MeetingStatus.SCHEDULED
    assert meeting.marking == Marking.AMBER
    assert [i.title for i in meeting.agenda_items.all()] == ["Situation", "Strategy"]
    assert {a.agency_id for a in meeting.attendees.all()} == {
        commander.agency_id,
        liaison.agency_id,
    }
    meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.IN_PROGRESS)
    meeting_transition(meeting_id=meeting.pk, user=liaison, to=MeetingStatus.CLOSED)
    meeting.refresh_from_db()
    assert meeting.status == MeetingStatus.CLOSED
    assert meeting.started_at and meeting.closed_at
    kinds = list(
        IncidentEvent.objects.filter(incident=incident, kind__startswith="meeting.")
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == ["meeting.scheduled", "meeting.started", "meeting.closed"]


def test_refused_transitions_answer_409_saying_why(incident, commander):
    meeting = schedule(incident, commander)
    with pytest.raises(Conflict) as refused:
        meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.CLOSED)
    assert "in_progress" in refused.value.message
    assert refused.value.allowed == [MeetingStatus.IN_PROGRESS]
    meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.IN_PROGRESS)
    meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.CLOSED)
    with pytest.raises(Conflict, match="final"):
        meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.IN_PROGRESS)

    api = signed_in_client(commander)
    url = reverse(
        "incident-meeting-transition", kwargs={"incident_pk": incident.pk, "pk": meeting.pk}
    )
    response = api.post(url, {"to": "in_progress"}, content_type="application/json")
    assert response.status_code == 409
    assert "closed" in response.json()["detail"]


def test_minutes_change_until_the_meeting_closes_then_are_frozen(incident, commander, liaison):
    meeting = schedule(incident, commander, attendees=[liaison])
    item = meeting.agenda_items.get(position=1)
    meeting_update(
        meeting_id=meeting.pk,
        user=commander,
        minutes="Agreed to evacuate.",
        agenda_minutes={item.pk: "Two casualties."},
    )
    row = meeting.attendees.get()
    meeting_attendance_record(
        meeting_id=meeting.pk, user=commander, attendance={row.pk: Attendance.APOLOGIES}
    )
    meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.IN_PROGRESS)
    meeting_transition(meeting_id=meeting.pk, user=commander, to=MeetingStatus.CLOSED)
    with pytest.raises(Conflict, match="closed"):
        meeting_update(meeting_id=meeting.pk, user=commander, minutes="Rewritten.")
    with pytest.raises(Conflict):
        meeting_update(meeting_id=meeting.pk, user=commander, agenda_minutes={item.pk: "x"})
    with pytest.raises(Conflict):
        meeting_attendance_record(
            meeting_id=meeting.pk, user=commander, attendance={row.pk: Attendance.PRESENT}
        )
    meeting.refresh_from_db()
    item.refresh_from_db()
    row.refresh_from_db()
    assert meeting.minutes == "Agreed to evacuate."
    assert item.minutes == "Two casualties."
    assert row.attendance == Attendance.APOLOGIES

    # The page refuses too, saying why, and the minutes stay as they were.
    client = signed_in_client(commander)
    url = reverse("pages:incident-meeting-minutes", args=[incident.pk, meeting.pk])
    response = client.post(url, {"minutes": "Changed after the fact"})
    assert response.status_code == 409
    assert "closed" in response.content.decode()
    meeting.refresh_from_db()
    assert meeting.minutes == "Agreed to evacuate."


def test_bad_input_names_the_field(incident, commander, outsider):
    with pytest.raises(ValidationError) as refused:
        schedule(incident, commander, title=" ", virtual_link="javascript:alert(1)")
    assert set(refused.value.message_dict) == {"title", "virtual_link"}
    with pytest.raises(ValidationError) as refused:
        schedule(incident, commander, chair=outsider)
    assert "chair" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        schedule(incident, commander, attendees=[outsider])
    assert "attendees" in refused.value.message_dict
    assert not Meeting.objects.exists()

    api = signed_in_client(commander)
    url = reverse("incident-meeting-list", kwargs={"incident_pk": incident.pk})
    response = api.post(url, {"title": "SCG"}, content_type="application/json")
    assert response.status_code == 400
    assert "scheduled_at" in response.json()


def other_incident(commander, police, fire):
    return incident_open(
        user=commander,
        title="Suspicious package",
        type=IncidentType.IED,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        participating_agencies=[fire],
    )


def test_decisions_and_actions_link_to_a_meeting_of_the_same_incident_only(
    incident, commander, police, fire
):
    meeting = schedule(incident, commander)
    elsewhere = schedule(other_incident(commander, police, fire), commander)
    entry = decision_record(
        incident_id=incident.pk, author=commander, meeting=meeting, **decision_fields()
    )
    assert entry.meeting == meeting
    with pytest.raises(ValidationError) as refused:
        decision_record(
            incident_id=incident.pk, author=commander, meeting=elsewhere, **decision_fields()
        )
    assert "meeting" in refused.value.message_dict
    action = action_create(
        incident_id=incident.pk,
        user=commander,
        title="Close the station",
        owner_agency=police,
        meeting=meeting,
    )
    assert action.meeting == meeting
    with pytest.raises(ValidationError) as refused:
        action_update(action_id=action.pk, user=commander, meeting=elsewhere)
    assert "meeting" in refused.value.message_dict
    action_update(action_id=action.pk, user=commander, meeting=None)
    action.refresh_from_db()
    assert action.meeting is None

    api = signed_in_client(commander)
    url = reverse("incident-decision-list", kwargs={"incident_pk": incident.pk})
    body = decision_fields(meeting=elsewhere.pk)
    body["decided_at"] = body["decided_at"].isoformat()
    response = api.post(url, body, content_type="application/json")
    assert response.status_code == 400
    assert "meeting" in response.json()
    body["meeting"] = meeting.pk
    response = api.post(url, body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["meeting"] == meeting.pk

    detail = api.get(
        reverse("incident-meeting-detail", kwargs={"incident_pk": incident.pk, "pk": meeting.pk})
    ).json()
    assert entry.pk in detail["decisions"]
    assert action.pk not in detail["actions"]


def test_the_decision_chain_verifies_with_and_without_meetings(incident, commander):
    plain = decision_record(incident_id=incident.pk, author=commander, **decision_fields())
    meeting = schedule(incident, commander)
    linked = decision_record(
        incident_id=incident.pk, author=commander, meeting=meeting, **decision_fields()
    )
    # An entry outside a meeting hashes exactly as before meetings existed.
    assert '"meeting"' not in plain.canonical_content(plain.stored_positions())
    assert f'"meeting":{meeting.pk}' in linked.canonical_content(linked.stored_positions())
    report = decision_log_verify(incident_id=incident.pk)
    assert report.intact and report.entries == 2
    assert report.last_hash == linked.entry_hash

    # The meeting is covered by the hash: an entry claiming another meeting no longer verifies.
    forged = Decision.objects.get(pk=linked.pk)
    forged.meeting_id = None
    assert forged.compute_hash(forged.stored_positions(), forged.stored_recipients()) != (
        linked.entry_hash
    )


def test_meetings_follow_need_to_know(incident, commander, liaison, outsider, observer):
    red = schedule(incident, liaison, title="Covert options", marking=Marking.RED)
    strict = schedule(incident, liaison, title="Fire only", marking=Marking.AMBER_STRICT)
    amber = schedule(incident, liaison, title="Open SCG")
    assert set(Meeting.objects.visible_to(liaison)) == {red, strict, amber}
    assert set(Meeting.objects.visible_to(commander)) == {amber}
    assert set(Meeting.objects.visible_to(outsider)) == set()

    # A meeting one may not read cannot be linked: it looks like one that does not exist.
    with pytest.raises(ValidationError) as refused:
        decision_record(incident_id=incident.pk, author=commander, meeting=red, **decision_fields())
    assert "meeting" in refused.value.message_dict

    client = signed_in_client(observer)
    listing = client.get(reverse("pages:incident-meetings", args=[incident.pk]))
    assert listing.status_code == 200
    assert b"Open SCG" in listing.content
    assert b"Covert options" not in listing.content and b"Fire only" not in listing.content
    assert (
        client.get(reverse("pages:incident-meeting", args=[incident.pk, red.pk])).status_code == 404
    )
    page = client.get(reverse("pages:incident-meeting", args=[incident.pk, amber.pk]))
    assert page.status_code == 200 and b"Open SCG" in page.content
    dashboard = client.get(reverse("pages:incident-dashboard", args=[incident.pk]))
    assert b"panel-meetings" in dashboard.content

    outsider_client = signed_in_client(outsider)
    assert (
        outsider_client.get(reverse("pages:incident-meetings", args=[incident.pk])).status_code
        == 404
    )
    api_url = reverse("incident-meeting-list", kwargs={"incident_pk": incident.pk})
    assert outsider_client.get(api_url).status_code == 404
    titles = [m["title"] for m in signed_in_client(commander).get(api_url).json()["results"]]
    assert titles == ["Open SCG"]


def test_the_pages_schedule_and_minute_a_meeting(incident, commander, liaison):
    client = signed_in_client(commander)
    new = reverse("pages:incident-meeting-new", args=[incident.pk])
    assert client.get(new).status_code == 200
    local = (timezone.now() + timedelta(hours=2)).astimezone(incident.city.zone)
    response = client.post(
        new,
        {
            "title": "SCG 2",
            "scheduled_at": local.strftime("%Y-%m-%dT%H:%M"),
            "location": "Gold room",
            "agenda": "Casualties | latest figures\nMedia",
            "attendees": [liaison.pk],
            "chair": commander.pk,
            "marking": Marking.AMBER,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    meeting = Meeting.objects.get(title="SCG 2")
    assert [(i.title, i.notes) for i in meeting.agenda_items.all()] == [
        ("Casualties", "latest figures"),
        ("Media", ""),
    ]
    item = meeting.agenda_items.first()
    minutes = reverse("pages:incident-meeting-minutes", args=[incident.pk, meeting.pk])
    response = client.post(minutes, {"minutes": "All agreed.", f"item_{item.pk}": "Four P1."})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.minutes == "Four P1."
    transition = reverse("pages:incident-meeting-transition", args=[incident.pk, meeting.pk])
    assert client.post(transition, {"to": "closed"}).status_code == 409
    assert client.post(transition, {"to": "in_progress"}).status_code == 302
    assert client.post(transition, {"to": "closed"}).status_code == 302
    response = client.post(minutes, {"minutes": "Rewritten", f"item_{item.pk}": "x"})
    assert response.status_code == 409
    meeting.refresh_from_db()
    assert meeting.minutes == "All agreed."
    assert client.post(new, {"title": ""}).status_code == 400


def test_the_decision_and_action_forms_offer_the_incident_meetings(incident, commander, police):
    meeting = schedule(incident, commander, title="SCG 3")
    client = signed_in_client(commander)
    page = client.get(
        reverse("pages:incident-decision-new", args=[incident.pk]) + f"?meeting={meeting.pk}"
    )
    assert page.status_code == 200
    assert f'<option value="{meeting.pk}" selected>SCG 3</option>' in page.content.decode()
    local = timezone.localtime(timezone.now(), incident.city.zone).strftime("%Y-%m-%dT%H:%M")
    fields = decision_fields()
    form = {
        name: fields[name]
        for name in (
            "information",
            "threat_assessment",
            "working_strategy",
            "powers_policies",
            "decision",
            "rationale",
        )
    }
    form.update(
        {
            "decided_at": local,
            "option_1": "Evacuate",
            "option_1_chosen": "on",
            "option_1_reason": "Saves life",
            "marking": Marking.AMBER,
            "meeting": meeting.pk,
        }
    )
    response = client.post(reverse("pages:incident-decision-new", args=[incident.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Decision.objects.get(incident=incident).meeting == meeting

    response = client.post(
        reverse("pages:incident-action-new", args=[incident.pk]),
        {
            "title": "Brief the media",
            "owner_agency": police.pk,
            "marking": "AMBER",
            "meeting": meeting.pk,
        },
    )
    assert response.status_code == 302
    assert meeting.actions.get().title == "Brief the media"
    page = client.get(reverse("pages:incident-meeting", args=[incident.pk, meeting.pk]))
    assert b"Brief the media" in page.content and b"D-0001" in page.content


def test_the_scheduling_agency_raises_a_meeting_marking_and_it_is_audited(
    incident, commander, liaison, police
):
    from coordination.meetings import meeting_marking_change
    from coordination.models import AuditEntry

    meeting = schedule(incident, commander, title="Sensitive SCG")
    assert meeting in Meeting.objects.visible_to(liaison)
    with pytest.raises(PermissionDenied):
        meeting_marking_change(meeting_id=meeting.pk, user=liaison, marking=Marking.RED)
    api = signed_in_client(commander)
    url = reverse("incident-meeting-marking", kwargs={"incident_pk": incident.pk, "pk": meeting.pk})
    response = api.post(
        url,
        {"marking": "AMBER+STRICT", "recipient_agencies": [police.pk]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["marking"] == "AMBER+STRICT"
    assert meeting not in Meeting.objects.visible_to(liaison)
    assert AuditEntry.objects.filter(
        action="marking.changed", user=commander, target_id=str(meeting.pk)
    ).exists()
    # The events that announced it are hidden from the fire service now too.
    readable = IncidentEvent.objects.visible_to(liaison).filter(subject_type="meeting")
    assert not readable.exists()


def test_the_api_shape_of_a_meeting_without_chair_or_link(incident, commander):
    meeting = schedule(incident, commander, virtual_link="", location="")
    data = (
        signed_in_client(commander)
        .get(
            reverse(
                "incident-meeting-detail", kwargs={"incident_pk": incident.pk, "pk": meeting.pk}
            )
        )
        .json()
    )
    assert data["chair"] is None and data["chair_name"] is None
    assert data["virtual_link"] == ""
    assert [item["title"] for item in data["agenda"]] == ["Situation", "Strategy"]
    assert data["allowed_transitions"] == ["in_progress"]
