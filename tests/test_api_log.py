"""The incident log over the REST API: decisions, M/ETHANE, actions, timeline, event stream."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.utils import timezone

from coordination.models import Action, Decision
from coordination.services import decision_record
from incidents.models import IncidentEvent, MethaneReport, TimelineEntry
from incidents.services import timeline_add

from .factories import decision_fields

pytestmark = pytest.mark.django_db


def url(incident, path: str = "") -> str:
    return f"/api/v1/incidents/{incident.pk}/{path}"


def decision_body(**overrides) -> dict:
    """A complete JDM entry as a client sends it (times as ISO 8601 strings)."""
    body = decision_fields(**overrides)
    for name in ("decided_at", "review_by"):
        if isinstance(body.get(name), datetime):
            body[name] = body[name].isoformat()
    return body


def methane_body(**overrides) -> dict:
    body = {
        "major_incident_declared": True,
        "exact_location": "Central station, main concourse",
        "latitude": "59.330231",
        "longitude": "18.059196",
        "incident_type": "Marauding terrorist attack, firearms",
        "hazards": "Attacker still mobile; crowd surge on the platforms",
        "access": "RVP at Vasagatan north; access from the north only",
        "casualties_fatal": 2,
        "casualties_p1": 5,
        "casualties_p2": 11,
        "casualties_p3": 30,
        "casualties_notes": "Numbers rising",
        "emergency_services_present": "Police, fire",
        "emergency_services_required": "Ambulance HART, more armed police",
    }
    body.update(overrides)
    return body


def events_of(incident) -> list[IncidentEvent]:
    return list(IncidentEvent.objects.filter(incident_id=incident.pk).order_by("seq"))


# --- Decisions ---------------------------------------------------------------------------------


def test_a_liaison_records_a_joint_decision_with_agreement_and_dissent(
    api, liaison, incident, police, fire
):
    review_by = timezone.now() + timedelta(hours=2)

    response = api(liaison).post(
        url(incident, "decisions/"),
        decision_body(
            review_by=review_by,
            agreed_by=[fire.pk],
            dissents=[{"agency": police.pk, "statement": "Routes not yet secured."}],
        ),
    )

    assert response.status_code == 201, response.data
    entry = Decision.objects.get(pk=response.data["id"])
    assert entry.incident == incident and entry.sequence == 1
    assert entry.author == liaison and entry.author_agency == fire
    assert entry.decision == "Evacuate the central station and close it to the public."
    assert entry.options[1] == {
        "option": "Shelter in place",
        "chosen": False,
        "reason": "Attacker still mobile.",
    }
    assert entry.review_by == review_by
    assert entry.marking == "AMBER"
    assert {(p.agency_id, p.stance, p.statement) for p in entry.positions.all()} == {
        (fire.pk, "agree", ""),
        (police.pk, "dissent", "Routes not yet secured."),
    }
    assert response.data["label"] == "D-0001"
    assert response.data["author_agency_name"] == "FRS"
    assert response.data["entry_hash"] == entry.entry_hash
    assert {(p["agency_name"], p["stance"]) for p in response.data["positions"]} == {
        ("FRS", "agree"),
        ("POL", "dissent"),
    }


def test_a_decision_can_be_read_back_in_full(api, liaison, observer, incident):
    created = api(liaison).post(url(incident, "decisions/"), decision_body()).data

    response = api(observer).get(url(incident, f"decisions/{created['id']}/"))

    assert response.status_code == 200
    assert response.data == created
    for section in ("information", "threat_assessment", "working_strategy", "powers_policies"):
        assert response.data[section]
    assert response.data["superseded_by"] is None and response.data["supersedes"] is None


def test_the_decision_log_lists_oldest_first(api, liaison, incident):
    for n in range(3):
        decision_record(
            incident_id=incident.pk, author=liaison, **decision_fields(decision=f"Decision {n}")
        )

    response = api(liaison).get(url(incident, "decisions/"))

    assert response.status_code == 200
    assert [row["decision"] for row in response.data["results"]] == [
        "Decision 0",
        "Decision 1",
        "Decision 2",
    ]
    assert [row["sequence"] for row in response.data["results"]] == [1, 2, 3]


def test_a_correction_supersedes_the_original_which_stays(api, liaison, incident):
    client = api(liaison)
    original = client.post(url(incident, "decisions/"), decision_body()).data

    response = client.post(
        url(incident, "decisions/"),
        decision_body(
            decision="Evacuate the station and the mall above.", supersedes=original["id"]
        ),
    )

    assert response.status_code == 201, response.data
    assert response.data["supersedes"] == original["id"]
    assert response.data["sequence"] == 2
    reread = client.get(url(incident, f"decisions/{original['id']}/")).data
    assert reread["superseded_by"] == response.data["id"]
    assert reread["decision"] == original["decision"]
    assert reread["entry_hash"] == original["entry_hash"]


def test_an_entry_already_corrected_cannot_be_corrected_again(api, liaison, incident):
    client = api(liaison)
    original = client.post(url(incident, "decisions/"), decision_body()).data
    correction = client.post(
        url(incident, "decisions/"), decision_body(supersedes=original["id"])
    ).data

    response = client.post(url(incident, "decisions/"), decision_body(supersedes=original["id"]))

    assert response.status_code == 409
    assert "D-0002" in response.data["detail"]
    assert response.data["allowed"] == [str(correction["id"])]
    assert Decision.objects.count() == 2


def test_verify_says_the_chain_is_intact(api, liaison, observer, incident):
    client = api(liaison)
    client.post(url(incident, "decisions/"), decision_body())
    last = client.post(url(incident, "decisions/"), decision_body(decision="Second")).data

    response = api(observer).get(url(incident, "decisions/verify/"))

    assert response.status_code == 200
    assert response.data == {
        "intact": True,
        "entries": 2,
        "broken_at": None,
        "broken_id": None,
        "reason": "",
        "last_hash": last["entry_hash"],
    }


def test_verify_says_where_the_chain_breaks(api, liaison, incident):
    entries = [
        decision_record(incident_id=incident.pk, author=liaison, **decision_fields(decision=t))
        for t in ("One", "Two", "Three")
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE coordination_decision DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE coordination_decision SET decision = 'Changed' WHERE id = %s", [entries[1].pk]
        )
        cursor.execute("ALTER TABLE coordination_decision ENABLE TRIGGER USER")

    response = api(liaison).get(url(incident, "decisions/verify/"))

    assert response.status_code == 200
    assert response.data["intact"] is False
    assert response.data["broken_at"] == 2 and response.data["broken_id"] == entries[1].pk


def test_an_empty_log_verifies_as_intact(api, liaison, incident):
    response = api(liaison).get(url(incident, "decisions/verify/"))

    assert response.status_code == 200
    assert response.data["intact"] is True and response.data["entries"] == 0


def test_an_observer_cannot_record_a_decision(api, observer, incident):
    response = api(observer).post(url(incident, "decisions/"), decision_body())

    assert response.status_code == 403
    assert not Decision.objects.exists()


# --- M/ETHANE ----------------------------------------------------------------------------------


def test_a_second_methane_report_supersedes_the_first(api, liaison, commander, incident):
    first = api(liaison).post(url(incident, "methane/"), methane_body())
    assert first.status_code == 201, first.data
    assert first.data["version"] == 1 and first.data["supersedes"] is None

    second = api(commander).post(
        url(incident, "methane/"), methane_body(casualties_p1=7, major_incident_declared=True)
    )

    assert second.status_code == 201, second.data
    assert second.data["version"] == 2
    assert second.data["supersedes"] == first.data["id"]
    assert second.data["superseded_by"] is None
    assert second.data["submitted_agency_name"] == "POL"
    reread = api(liaison).get(url(incident, f"methane/{first.data['id']}/")).data
    assert reread["superseded_by"] == second.data["id"]
    assert reread["casualties_p1"] == 5  # the first report was not overwritten
    listed = api(liaison).get(url(incident, "methane/")).data["results"]
    assert [row["version"] for row in listed] == [1, 2]


def test_a_methane_report_keeps_every_section(api, liaison, incident):
    response = api(liaison).post(url(incident, "methane/"), methane_body())

    report = MethaneReport.objects.get(pk=response.data["id"])
    assert report.major_incident_declared is True
    assert report.exact_location == "Central station, main concourse"
    assert (report.casualties_fatal, report.casualties_p1) == (2, 5)
    assert (report.casualties_p2, report.casualties_p3) == (11, 30)
    assert report.emergency_services_required == "Ambulance HART, more armed police"
    assert report.submitted_by == liaison


# --- Actions -----------------------------------------------------------------------------------


def test_an_action_is_created_then_moved_along(api, liaison, incident, fire):
    client = api(liaison)
    due_at = timezone.now() + timedelta(minutes=30)
    created = client.post(
        url(incident, "actions/"),
        {
            "title": "Set up an inner cordon",
            "owner_agency": fire.pk,
            "owner": liaison.pk,
            "due_at": due_at.isoformat(),
        },
    )
    assert created.status_code == 201, created.data
    assert created.data["status"] == "open"
    assert created.data["owner_name"] == str(liaison)
    assert created.data["completed_at"] is None
    action_url = url(incident, f"actions/{created.data['id']}/")
    seq_before = events_of(incident)[-1].seq

    started = client.patch(action_url, {"status": "in_progress"})

    assert started.status_code == 200, started.data
    assert started.data["status"] == "in_progress"
    assert started.data["completed_at"] is None
    [event] = events_of(incident)[-1:]
    assert (event.seq, event.kind) == (seq_before + 1, "action.updated")
    assert event.payload["previous_status"] == "open"
    assert event.payload["status"] == "in_progress"

    done = client.patch(action_url, {"status": "done"})

    assert done.status_code == 200
    completed_at = datetime.fromisoformat(done.data["completed_at"])
    assert abs(completed_at - timezone.now()) < timedelta(minutes=1)
    assert Action.objects.get(pk=created.data["id"]).completed_at == completed_at

    reopened = client.patch(action_url, {"status": "open"})

    assert reopened.data["completed_at"] is None


def test_an_action_can_be_read_and_listed_soonest_due_first(api, liaison, incident, fire):
    client = api(liaison)
    now = timezone.now()
    later = client.post(
        url(incident, "actions/"),
        {
            "title": "Later",
            "owner_agency": fire.pk,
            "due_at": (now + timedelta(hours=2)).isoformat(),
        },
    ).data
    sooner = client.post(
        url(incident, "actions/"),
        {
            "title": "Sooner",
            "owner_agency": fire.pk,
            "due_at": (now + timedelta(hours=1)).isoformat(),
        },
    ).data

    listed = client.get(url(incident, "actions/")).data["results"]
    one = client.get(url(incident, f"actions/{later['id']}/"))

    assert [row["id"] for row in listed] == [sooner["id"], later["id"]]
    assert one.status_code == 200 and one.data["title"] == "Later"


def test_an_action_can_come_from_a_decision(api, liaison, incident, fire):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())

    response = api(liaison).post(
        url(incident, "actions/"),
        {"title": "Close the station", "owner_agency": fire.pk, "decision": entry.pk},
    )

    assert response.status_code == 201, response.data
    assert response.data["decision"] == entry.pk


def test_an_observer_cannot_change_an_action(api, liaison, observer, incident, fire):
    created = api(liaison).post(
        url(incident, "actions/"), {"title": "Cordon", "owner_agency": fire.pk}
    )

    response = api(observer).patch(
        url(incident, f"actions/{created.data['id']}/"), {"status": "done"}
    )

    assert response.status_code == 403
    assert Action.objects.get().status == "open"


def test_a_patch_with_nothing_to_change_is_refused(api, liaison, incident, fire):
    created = api(liaison).post(
        url(incident, "actions/"), {"title": "Cordon", "owner_agency": fire.pk}
    )

    response = api(liaison).patch(url(incident, f"actions/{created.data['id']}/"), {})

    assert response.status_code == 400
    assert "non_field_errors" in response.data


# --- Timeline ----------------------------------------------------------------------------------


def test_the_timeline_lists_what_happened_in_order(api, liaison, incident):
    client = api(liaison)
    now = timezone.now()
    response = client.post(
        url(incident, "timeline/"),
        {
            "text": "Second shots reported",
            "occurred_at": (now - timedelta(minutes=5)).isoformat(),
            "category": "information",
        },
    )
    assert response.status_code == 201, response.data
    assert response.data["author_agency_name"] == "FRS"
    client.post(
        url(incident, "timeline/"),
        {"text": "First call received", "occurred_at": (now - timedelta(minutes=20)).isoformat()},
    )

    listed = client.get(url(incident, "timeline/"))

    assert listed.status_code == 200
    assert [row["text"] for row in listed.data["results"]] == [
        "First call received",
        "Second shots reported",
    ]
    assert listed.data["results"][0]["category"] == "significant_event"
    one = client.get(url(incident, f"timeline/{response.data['id']}/"))
    assert one.status_code == 200 and one.data["text"] == "Second shots reported"
    assert TimelineEntry.objects.count() == 2


# --- Events ------------------------------------------------------------------------------------


@pytest.fixture
def busy_incident(incident, liaison):
    """An incident with events 1 (opened) to 8 (seven timeline entries)."""
    for n in range(7):
        timeline_add(incident_id=incident.pk, user=liaison, text=f"Entry {n}")
    return incident


def test_events_after_a_sequence_number_come_oldest_first(api, observer, busy_incident):
    response = api(observer).get(url(busy_incident, "events/?after=3"))

    assert response.status_code == 200
    assert [e["seq"] for e in response.data["results"]] == [4, 5, 6, 7, 8]
    assert response.data["next"] is None
    assert response.data["results"][0]["kind"] == "timeline.added"
    assert response.data["results"][0]["payload"]["text"] == "Entry 2"


def test_events_from_the_start(api, observer, busy_incident):
    response = api(observer).get(url(busy_incident, "events/"))

    assert [e["seq"] for e in response.data["results"]] == list(range(1, 9))
    assert response.data["results"][0]["kind"] == "incident.opened"


def test_events_page_with_limit_and_next(api, observer, busy_incident):
    client = api(observer)
    seen: list[int] = []
    next_url = url(busy_incident, "events/?after=1&limit=3")
    pages = 0
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200
        assert len(response.data["results"]) <= 3
        seen += [e["seq"] for e in response.data["results"]]
        next_url = response.data["next"]
        if next_url:
            assert parse_qs(urlparse(next_url).query)["limit"] == ["3"]
        pages += 1

    assert seen == [2, 3, 4, 5, 6, 7, 8]
    assert pages == 3


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", ""])
def test_a_bad_after_is_a_bad_request_naming_after(api, observer, busy_incident, after):
    response = api(observer).get(url(busy_incident, f"events/?after={after}"))

    assert response.status_code == 400
    assert "after" in response.data


@pytest.mark.parametrize("limit", ["0", "abc", "1001"])
def test_a_bad_limit_is_a_bad_request_naming_limit(api, observer, busy_incident, limit):
    response = api(observer).get(url(busy_incident, f"events/?limit={limit}"))

    assert response.status_code == 400
    assert "limit" in response.data


def test_an_after_beyond_the_last_event_returns_nothing(api, observer, busy_incident):
    for after in ("8", "99999999999999999999999"):
        response = api(observer).get(url(busy_incident, f"events/?after={after}"))
        assert response.status_code == 200
        assert response.data == {"next": None, "results": []}


# --- Every write appends exactly one event -----------------------------------------------------


def _writes(fire, action_id):
    return {
        "decision": ("post", "decisions/", decision_body(), "decision.recorded"),
        "methane": ("post", "methane/", methane_body(), "methane.submitted"),
        "action": (
            "post",
            "actions/",
            {"title": "Cordon", "owner_agency": fire.pk},
            "action.created",
        ),
        "action-patch": ("patch", f"actions/{action_id}/", {"status": "blocked"}, "action.updated"),
        "timeline": ("post", "timeline/", {"text": "Shots fired"}, "timeline.added"),
        "transition": ("post", "transition/", {"to": "activated"}, "incident.transitioned"),
    }


@pytest.mark.parametrize(
    "write", ["decision", "methane", "action", "action-patch", "timeline", "transition"]
)
def test_every_write_appends_exactly_one_event_with_the_next_seq(
    api, commander, liaison, incident, fire, write
):
    existing = api(liaison).post(
        url(incident, "actions/"), {"title": "Earlier", "owner_agency": fire.pk}
    )
    before = events_of(incident)
    method, path, body, kind = _writes(fire, existing.data["id"])[write]

    response = getattr(api(commander), method)(url(incident, path), body)

    assert response.status_code in (200, 201), response.data
    after = events_of(incident)
    assert len(after) == len(before) + 1
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    new = after[-1]
    assert new.kind == kind
    assert new.actor == commander
    incident.refresh_from_db()
    assert incident.last_event_seq == new.seq
    if "id" in response.data and write != "transition":
        assert new.subject_id == response.data["id"]
    listed = api(liaison).get(url(incident, f"events/?after={before[-1].seq}")).data["results"]
    assert [(e["seq"], e["kind"]) for e in listed] == [(new.seq, kind)]


def test_opening_an_incident_appends_its_first_event(api, commander, police):
    response = api(commander).post(
        "/api/v1/incidents/",
        {"title": "Fire", "type": "other", "level": 1, "lead_agency": police.pk},
    )

    events = IncidentEvent.objects.filter(incident_id=response.data["id"])
    assert [(e.seq, e.kind) for e in events] == [(1, "incident.opened")]
    assert response.data["last_event_seq"] == 1
