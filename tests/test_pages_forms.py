"""The liaison's forms: each parses, calls its service, redirects to the dashboard (PRG); errors
show next to the field; refusals answer 403 (not allowed), 404 (not visible) or 409 (the state)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from coordination.models import Action, Decision, DecisionPosition
from coordination.services import action_create, decision_record
from incidents.models import IncidentStatus, MethaneReport, TimelineEntry
from incidents.services import incident_transition, methane_submit

from .factories import decision_fields, methane_fields, row_counts

pytestmark = pytest.mark.django_db


def local_input(incident, moment) -> str:
    """A moment as the browser's datetime-local control sends it, in the city's time."""
    return timezone.localtime(moment, incident.city.zone).strftime("%Y-%m-%dT%H:%M")


def decision_body(incident, **overrides) -> dict[str, str]:
    body = {
        "information": "Shots reported at the central station.",
        "threat_assessment": "Attacker at large; high risk to the public.",
        "working_strategy": "Save life; contain; protect the public.",
        "powers_policies": "Joint operating principles.",
        "option_1": "Evacuate the station",
        "option_1_chosen": "on",
        "option_1_reason": "Removes the public from harm.",
        "option_2": "Shelter in place",
        "option_2_reason": "Attacker still mobile.",
        "option_3": "",
        "option_3_reason": "",
        "decision": "Evacuate the central station.",
        "rationale": "Protects life while the threat is located.",
        "decided_at": local_input(incident, timezone.now()),
        "late_entry_reason": "",
        "review_by": "",
        "marking": "AMBER",
    }
    body.update(overrides)
    return body


def dashboard_url(incident) -> str:
    return f"/incidents/{incident.pk}/"


# --- the joint decision ---------------------------------------------------------------------------


def test_form_shows_the_jdm_steps_in_order(client, liaison, incident):
    client.force_login(liaison)
    page = client.get(f"/incidents/{incident.pk}/decisions/new/").content.decode()
    steps = [
        "Step 1 of 5: Information and intelligence",
        "Step 2 of 5: Assessment of threat and risk, and working strategy",
        "Step 3 of 5: Powers, policies and procedures",
        "Step 4 of 5: Options and contingencies",
        "Step 5 of 5: Decision and rationale",
    ]
    positions = [page.index(step) for step in steps]
    assert positions == sorted(positions)
    assert 'type="datetime-local"' in page and "js/jdm-steps.js" in page
    # Works without the script: one form, every fieldset present, a real submit button.
    assert page.count('<fieldset class="step"') == 5 and 'type="submit"' in page


def test_record_a_decision_redirects_to_the_dashboard(client, liaison, incident, fire):
    client.force_login(liaison)
    response = client.post(f"/incidents/{incident.pk}/decisions/new/", decision_body(incident))
    assert response.status_code == 302 and response["Location"] == dashboard_url(incident)

    entry = Decision.objects.get(incident=incident)
    assert entry.author == liaison and entry.author_agency == fire
    assert entry.options == [
        {
            "option": "Evacuate the station",
            "chosen": True,
            "reason": "Removes the public from harm.",
        },
        {"option": "Shelter in place", "chosen": False, "reason": "Attacker still mobile."},
    ]
    page = client.get(response["Location"]).content.decode()
    assert "Decision D-0001 recorded." in page


def test_decided_at_is_read_in_the_city_time_zone(client, liaison, incident):
    client.force_login(liaison)
    moment = (timezone.now() - timedelta(minutes=5)).replace(second=0, microsecond=0)
    client.post(
        f"/incidents/{incident.pk}/decisions/new/",
        decision_body(incident, decided_at=local_input(incident, moment)),
    )
    assert Decision.objects.get(incident=incident).decided_at == moment


def test_missing_sections_are_named_next_to_their_fields(client, liaison, incident):
    client.force_login(liaison)
    before = row_counts()
    response = client.post(
        f"/incidents/{incident.pk}/decisions/new/",
        decision_body(incident, information="", rationale="", option_2_reason=""),
    )
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("information", "rationale", "option_2_reason"):
        assert f'id="id_{field}_error"' in page, field
        assert f'aria-describedby="id_{field}_error"' in page or (
            f'id="id_{field}"' in page and 'aria-invalid="true"' in page
        )
    assert "There is a problem" in page
    assert row_counts() == before


def test_a_service_refusal_lands_on_its_field(client, liaison, incident):
    """The service, not the form, knows that a late entry needs its reason."""
    client.force_login(liaison)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    response = client.post(
        f"/incidents/{incident.pk}/decisions/new/",
        decision_body(incident, decided_at=local_input(incident, an_hour_ago)),
    )
    assert response.status_code == 400
    page = response.content.decode()
    error = page[page.index('id="id_late_entry_reason_error"') :][:300]
    assert "late" in error.lower() or "reason" in error.lower()
    assert not Decision.objects.exists()


def test_garbage_dates_and_markings_are_field_errors_not_500(client, liaison, incident):
    client.force_login(liaison)
    response = client.post(
        f"/incidents/{incident.pk}/decisions/new/",
        decision_body(
            incident, decided_at="yesterday-ish", marking="PURPLE", review_by="1899-01-01T00:00"
        ),
    )
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("decided_at", "marking", "review_by"):
        assert f'id="id_{field}_error"' in page, field
    assert not Decision.objects.exists()


def test_observers_are_refused_and_outsiders_do_not_see_it(client, observer, outsider, incident):
    url = f"/incidents/{incident.pk}/decisions/new/"
    client.force_login(observer)
    assert client.get(url).status_code == 403
    response = client.post(url, decision_body(incident))
    assert response.status_code == 403
    assert b"Your roles do not allow this" in response.content

    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.post(url, decision_body(incident)).status_code == 404
    assert not Decision.objects.exists()


def test_the_city_administrator_reads_but_may_not_record(client, administrator, incident):
    client.force_login(administrator)
    response = client.get(f"/incidents/{incident.pk}/decisions/new/")
    assert response.status_code == 403
    assert b"does not take part" in response.content


def test_a_closed_incident_refuses_with_409_saying_why(client, commander, liaison, incident):
    incident_transition(incident_id=incident.pk, user=commander, to=IncidentStatus.CLOSED)
    client.force_login(liaison)
    response = client.post(f"/incidents/{incident.pk}/decisions/new/", decision_body(incident))
    assert response.status_code == 409
    assert b"is closed; it accepts no further entries" in response.content


# --- agree or dissent -----------------------------------------------------------------------------


def test_agree_and_dissent_on_behalf_of_the_agency(client, commander, liaison, incident):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    url = f"/incidents/{incident.pk}/decisions/{entry.pk}/position/"
    client.force_login(commander)
    page = client.get(url).content.decode()
    assert "Evacuate the central station" in page and "Police" in page

    response = client.post(url, {"position": "dissent", "reason": ""})
    assert response.status_code == 400
    assert b'id="id_reason_error"' in response.content

    response = client.post(url, {"position": "dissent", "reason": "Routes not secured."})
    assert response.status_code == 302 and response["Location"] == dashboard_url(incident)
    position = DecisionPosition.objects.get(decision=entry)
    assert position.stance == "dissent" and position.entry_hash

    response = client.post(url, {"position": "agree"})
    assert response.status_code == 409
    assert b"already recorded that it dissents" in response.content


def test_position_on_a_decision_of_another_incident_is_404(client, commander, liaison, incident):
    from incidents.models import IncidentLevel, IncidentType
    from incidents.services import incident_open

    other = incident_open(
        user=commander,
        title="Other",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=commander.agency,
    )
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    client.force_login(commander)
    url = f"/incidents/{other.pk}/decisions/{entry.pk}/position/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"position": "agree"}).status_code == 404


# --- M/ETHANE -------------------------------------------------------------------------------------


def test_methane_form_is_prefilled_from_the_latest(client, liaison, incident):
    methane_submit(
        incident_id=incident.pk, user=liaison, **methane_fields(hazards="Fire on platform 3")
    )
    client.force_login(liaison)
    page = client.get(f"/incidents/{incident.pk}/methane/new/").content.decode()
    assert "Fire on platform 3" in page and "Prefilled from version 1" in page


def test_submit_methane(client, liaison, incident):
    client.force_login(liaison)
    body = {**methane_fields(), "major_incident_declared": "on", "casualties_p1": "3"}
    body.pop("major_incident_declared")
    body["major_incident_declared"] = "on"
    body["marking"] = "AMBER"
    response = client.post(f"/incidents/{incident.pk}/methane/new/", body)
    assert response.status_code == 302, response.content.decode()[:2000]
    report = MethaneReport.objects.get(incident=incident)
    assert report.major_incident_declared and report.casualties_p1 == 3


def test_methane_errors_name_their_fields(client, liaison, incident):
    client.force_login(liaison)
    body = {
        **methane_fields(),
        "hazards": "",
        "casualties_p1": "-2",
        "latitude": "95",
        "marking": "AMBER",
    }
    response = client.post(f"/incidents/{incident.pk}/methane/new/", body)
    assert response.status_code == 400
    for field in ("hazards", "casualties_p1", "latitude"):
        assert f'id="id_{field}_error"'.encode() in response.content, field
    assert not MethaneReport.objects.exists()


def test_methane_coordinates_come_in_pairs(client, liaison, incident):
    client.force_login(liaison)
    body = {**methane_fields(), "latitude": "59.33", "marking": "AMBER"}
    response = client.post(f"/incidents/{incident.pk}/methane/new/", body)
    assert response.status_code == 400
    assert b'id="id_longitude_error"' in response.content


# --- actions --------------------------------------------------------------------------------------


def test_add_an_action_and_change_its_status(client, liaison, incident, police):
    client.force_login(liaison)
    due = timezone.now() + timedelta(hours=1)
    response = client.post(
        f"/incidents/{incident.pk}/actions/new/",
        {
            "title": "Close the metro",
            "owner_agency": police.pk,
            "due_at": local_input(incident, due),
            "marking": "AMBER",
        },
    )
    assert response.status_code == 302
    action = Action.objects.get(incident=incident)
    assert action.owner_agency == police and action.created_by == liaison

    response = client.post(
        f"/incidents/{incident.pk}/actions/{action.pk}/status/", {"status": "done"}
    )
    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == "done" and action.completed_at is not None


def test_an_action_for_an_agency_outside_the_incident_is_refused(
    client, liaison, incident, transport
):
    client.force_login(liaison)
    response = client.post(
        f"/incidents/{incident.pk}/actions/new/",
        {"title": "Stop trains", "owner_agency": transport.pk, "marking": "AMBER"},
    )
    assert response.status_code == 400
    assert b'id="id_owner_agency_error"' in response.content
    assert not Action.objects.exists()


def test_action_status_errors_and_refusals(client, liaison, observer, outsider, incident, fire):
    action = action_create(incident_id=incident.pk, user=liaison, title="X", owner_agency=fire)
    url = f"/incidents/{incident.pk}/actions/{action.pk}/status/"
    client.force_login(liaison)
    assert client.get(url).status_code == 405
    response = client.post(url, {"status": "exploded"})
    assert response.status_code == 400 and b'id="id_status_error"' in response.content
    assert (
        client.post(
            f"/incidents/{incident.pk}/actions/999999/status/", {"status": "done"}
        ).status_code
        == 404
    )

    client.force_login(observer)
    assert client.post(url, {"status": "done"}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"status": "done"}).status_code == 404
    action.refresh_from_db()
    assert action.status == "open"


# --- timeline -------------------------------------------------------------------------------------


def test_add_a_timeline_entry(client, liaison, incident):
    client.force_login(liaison)
    response = client.post(
        f"/incidents/{incident.pk}/timeline/new/",
        {"text": "Cordon in place", "category": "significant_event", "marking": "GREEN"},
    )
    assert response.status_code == 302
    entry = TimelineEntry.objects.get(incident=incident)
    assert entry.text == "Cordon in place" and entry.marking == "GREEN"


def test_a_timeline_entry_in_the_future_is_refused(client, liaison, incident):
    client.force_login(liaison)
    response = client.post(
        f"/incidents/{incident.pk}/timeline/new/",
        {
            "text": "Later",
            "occurred_at": local_input(incident, timezone.now() + timedelta(hours=2)),
            "category": "information",
            "marking": "AMBER",
        },
    )
    assert response.status_code == 400 and b'id="id_occurred_at_error"' in response.content


# --- lifecycle ------------------------------------------------------------------------------------


def test_commander_moves_the_incident(client, commander, incident):
    client.force_login(commander)
    response = client.post(f"/incidents/{incident.pk}/transition/", {"to": "activated"})
    assert response.status_code == 302 and response["Location"] == dashboard_url(incident)
    incident.refresh_from_db()
    assert incident.status == "activated"
    assert "is now Activated" in client.get(response["Location"]).content.decode()


def test_a_refused_transition_says_why(client, commander, incident):
    client.force_login(commander)
    response = client.post(f"/incidents/{incident.pk}/transition/", {"to": "recovery"})
    assert response.status_code == 409
    assert b"cannot move from reported to recovery" in response.content
    incident.refresh_from_db()
    assert incident.status == "reported"

    response = client.post(f"/incidents/{incident.pk}/transition/", {"to": "sideways"})
    assert response.status_code == 400 and b'id="id_to_error"' in response.content


def test_only_holders_of_the_capability_may_transition(client, liaison, outsider, incident):
    client.force_login(liaison)
    assert client.get(f"/incidents/{incident.pk}/transition/").status_code == 403
    assert (
        client.post(f"/incidents/{incident.pk}/transition/", {"to": "activated"}).status_code == 403
    )
    client.force_login(outsider)
    assert (
        client.post(f"/incidents/{incident.pk}/transition/", {"to": "activated"}).status_code == 404
    )
    incident.refresh_from_db()
    assert incident.status == "reported"


def test_forms_need_a_signed_in_user(client, incident):
    for suffix in (
        "decisions/new/",
        "methane/new/",
        "actions/new/",
        "timeline/new/",
        "transition/",
    ):
        response = client.post(f"/incidents/{incident.pk}/{suffix}", {})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_forms_refuse_a_post_without_the_csrf_token(liaison, incident):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(liaison)
    response = client.post(f"/incidents/{incident.pk}/decisions/new/", decision_body(incident))
    assert response.status_code == 403
    assert not Decision.objects.exists()


def test_a_platform_superuser_without_an_agency_cannot_speak_for_one(client, liaison, incident):
    from coordination.models import User

    root = User.objects.create_superuser(username="root", password="x" * 12)
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    client.force_login(root)
    page = client.get(f"/incidents/{incident.pk}/panels/decisions/").content.decode()
    assert "/position/" not in page

    response = client.post(
        f"/incidents/{incident.pk}/decisions/{entry.pk}/position/", {"position": "agree"}
    )
    assert response.status_code == 400
    assert b"You belong to no agency" in response.content
    assert not DecisionPosition.objects.exists()


def test_the_position_page_says_when_there_is_nothing_left_to_record(
    client, commander, liaison, incident
):
    from coordination.services import decision_position_record, decision_supersede

    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    decision_position_record(decision=entry, user=liaison, position="agree", reason="")
    correction = decision_supersede(original=entry, author=liaison, **decision_fields())
    url = f"/incidents/{incident.pk}/decisions/{entry.pk}/position/"

    client.force_login(liaison)  # FRS agreed already
    page = client.get(url).content.decode()
    assert "Fire has already recorded that it agrees" in page and "<fieldset" not in page

    client.force_login(commander)  # POL has not, but the entry was corrected
    page = client.get(url).content.decode()
    assert "has been superseded by" in page and "<fieldset" not in page
    assert f"/decisions/{correction.pk}/position/" in page
