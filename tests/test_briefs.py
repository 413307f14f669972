"""Situation briefs (IIMARCH): generated from the incident's state at a chosen instant, never
from restricted items or items less open than the brief, editable as drafts, numbered and frozen
once issued, and compared with the brief before them."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from comms.briefs import brief_changes, brief_generate, brief_issue, brief_update
from comms.models import Brief
from comms.statements import statement_draft, statement_publish
from coordination.markings import Marking
from coordination.roles import Role
from coordination.services import action_create, action_update, decision_record, decision_supersede
from ctpn.errors import Conflict
from incidents.models import IncidentEvent
from incidents.services import methane_submit, timeline_add

from .factories import UserFactory, decision_fields, methane_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def police_comms(police):
    return UserFactory(username="police-comms", agency=police, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def history(incident, commander, liaison, police, fire, police_comms):
    """An incident's life at three instants, ten minutes apart, starting an hour from now.

    t1: M/ETHANE v1, decision D-0001, action A1 opened, timeline TL1.
    t2: M/ETHANE v2, D-0002 supersedes D-0001, A1 done, A2 opened, timeline TL2, and restricted
        and less open items that no AMBER-or-more-open brief of the commander may show.
    t3: a public line is published.
    """
    t1 = timezone.now() + timedelta(hours=1)
    t2, t3 = t1 + timedelta(minutes=10), t1 + timedelta(minutes=20)
    found: dict = {"t1": t1, "t2": t2, "t3": t3}
    with time_machine.travel(t1, tick=False):
        methane_submit(incident_id=incident.pk, user=liaison, **methane_fields(hazards="HAZ-ONE"))
        found["d1"] = decision_record(
            incident_id=incident.pk,
            author=commander,
            **decision_fields(working_strategy="STRATEGY-ONE", threat_assessment="THREAT-ONE"),
        )
        found["a1"] = action_create(
            incident_id=incident.pk, user=liaison, title="ACTION-ONE", owner_agency=fire
        )
        timeline_add(incident_id=incident.pk, user=liaison, text="TIMELINE-ONE")
    with time_machine.travel(t2, tick=False):
        methane_submit(incident_id=incident.pk, user=liaison, **methane_fields(hazards="HAZ-TWO"))
        found["d2"] = decision_supersede(
            original=found["d1"],
            author=commander,
            **decision_fields(working_strategy="STRATEGY-TWO", threat_assessment="THREAT-TWO"),
        )
        action_update(action_id=found["a1"].pk, user=liaison, status="done")
        found["a2"] = action_create(
            incident_id=incident.pk, user=liaison, title="ACTION-TWO", owner_agency=police
        )
        timeline_add(incident_id=incident.pk, user=liaison, text="TIMELINE-TWO")
        # The commander may read these (named), but no AMBER brief may carry them.
        timeline_add(
            incident_id=incident.pk,
            user=liaison,
            text="RED-TIMELINE",
            marking=Marking.RED,
            recipient_people=[commander],
        )
        decision_record(
            incident_id=incident.pk,
            author=liaison,
            marking=Marking.AMBER_STRICT,
            recipient_agencies=[police],
            **decision_fields(decision="STRICT-DECISION", working_strategy="STRICT-STRATEGY"),
        )
        timeline_add(incident_id=incident.pk, user=liaison, text="GREEN-TIMELINE", marking="GREEN")
    with time_machine.travel(t3, tick=False):
        line = statement_draft(
            incident_id=incident.pk, user=police_comms, headline="LINE-ONE", body="Stay away."
        )
        statement_publish(statement_id=line.pk, user=police_comms)
    return found


def generate(incident, user, at, **kwargs) -> Brief:
    """A brief of ``at``, generated a little later (the time machine's now)."""
    with time_machine.travel(at + timedelta(minutes=30), tick=False):
        return brief_generate(incident_id=incident.pk, user=user, as_of=at, **kwargs)


def everything(brief: Brief) -> str:
    return "\n".join(
        [
            brief.information,
            brief.intent,
            brief.method,
            brief.risk_assessment,
            brief.communications,
            str(brief.content),
        ]
    )


def test_a_brief_shows_the_state_at_its_instant(incident, commander, history):
    first = generate(incident, commander, history["t1"] + timedelta(minutes=5))
    assert "HAZ-ONE" in first.information and "HAZ-TWO" not in first.information
    assert "TIMELINE-ONE" in first.information and "TIMELINE-TWO" not in first.information
    assert "STRATEGY-ONE" in first.intent and "THREAT-ONE" in first.intent
    assert "D-0001" in first.method and "D-0002" not in first.method
    assert "ACTION-ONE" in first.method and "ACTION-TWO" not in first.method
    assert "THREAT-ONE" in first.risk_assessment
    assert first.communications == "No public line published."

    second = generate(incident, commander, history["t2"] + timedelta(minutes=5))
    assert "HAZ-TWO" in second.information and "HAZ-ONE" not in second.information
    assert "STRATEGY-TWO" in second.intent and "STRATEGY-ONE" not in second.intent
    assert "D-0002" in second.method and "D-0001" not in second.method  # superseded by then
    assert "ACTION-TWO" in second.method and "ACTION-ONE" not in second.method  # done by then
    assert "TIMELINE-ONE" in second.information and "TIMELINE-TWO" in second.information
    assert second.communications == "No public line published."

    third = generate(incident, commander, history["t3"] + timedelta(minutes=5))
    assert "LINE-ONE" in third.communications and "Stay away." in third.communications
    # Rebuilt for a past instant after everything happened: the same as at the time.
    again = generate(incident, commander, history["t1"] + timedelta(minutes=5))
    assert again.content == {**first.content}
    assert (again.information, again.intent, again.method) == (
        first.information,
        first.intent,
        first.method,
    )


def test_restricted_and_less_open_items_never_enter_a_brief(incident, commander, history):
    amber = generate(incident, commander, history["t3"] + timedelta(minutes=5))
    text = everything(amber)
    for hidden in ("RED-TIMELINE", "STRICT-DECISION", "STRICT-STRATEGY"):
        assert hidden not in text
    assert "GREEN-TIMELINE" in text and "TIMELINE-TWO" in text

    green = generate(
        incident, commander, history["t3"] + timedelta(minutes=5), marking=Marking.GREEN
    )
    text = everything(green)
    assert "GREEN-TIMELINE" in text
    for hidden in ("TIMELINE-TWO", "HAZ-TWO", "STRATEGY-TWO", "ACTION-TWO", "RED-TIMELINE"):
        assert hidden not in text


def test_a_brief_cannot_be_restricted_nor_of_the_future(incident, commander):
    for marking in (Marking.RED, Marking.AMBER_STRICT, "PURPLE"):
        with pytest.raises(Exception) as refused:
            brief_generate(incident_id=incident.pk, user=commander, marking=marking)
        assert "marking" in refused.value.message_dict  # type: ignore[attr-defined]
    with pytest.raises(Exception) as refused:
        brief_generate(
            incident_id=incident.pk, user=commander, as_of=timezone.now() + timedelta(hours=1)
        )
    assert "as_of" in refused.value.message_dict  # type: ignore[attr-defined]
    assert Brief.objects.count() == 0


def test_issuing_numbers_and_freezes_a_brief(incident, commander, liaison):
    drafts = [brief_generate(incident_id=incident.pk, user=commander) for _ in range(3)]
    assert all(d.number is None for d in drafts)
    brief_update(brief_id=drafts[0].pk, user=liaison, administration="Cell at City Hall, 14:00.")
    issued = [brief_issue(brief_id=d.pk, user=commander) for d in drafts]
    assert [b.number for b in issued] == [1, 2, 3]

    with pytest.raises(Conflict):
        brief_update(brief_id=drafts[0].pk, user=commander, intent="Rewritten")
    with pytest.raises(Conflict):
        brief_issue(brief_id=drafts[0].pk, user=commander)
    frozen = Brief.objects.get(pk=drafts[0].pk)
    assert frozen.administration == "Cell at City Hall, 14:00." and frozen.intent != "Rewritten"
    kinds = list(
        IncidentEvent.objects.filter(incident=incident, kind__startswith="brief.").values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["brief.drafted"] * 3 + ["brief.edited"] + ["brief.issued"] * 3


def test_what_changed_since_the_last_brief(client, incident, commander, history):
    first = generate(incident, commander, history["t1"] + timedelta(minutes=5))
    with time_machine.travel(history["t1"] + timedelta(minutes=6), tick=False):
        brief_issue(brief_id=first.pk, user=commander)
    second = generate(incident, commander, history["t3"] + timedelta(minutes=5))
    assert second.previous_id == first.pk
    # Only what was recorded since brief 1 is in the timeline.
    assert "TIMELINE-TWO" in second.information and "TIMELINE-ONE" not in second.information

    changes = brief_changes(second)
    assert [d["label"] for d in changes["new_decisions"]] == ["D-0002"]
    assert [d["label"] for d in changes["ended_decisions"]] == ["D-0001"]
    assert [(c["field"], c["before"], c["after"]) for c in changes["methane_changes"]] == [
        ("hazards", "HAZ-ONE", "HAZ-TWO")
    ]
    assert [a["title"] for a in changes["actions_opened"]] == ["ACTION-TWO"]
    assert [a["title"] for a in changes["actions_closed"]] == ["ACTION-ONE"]
    assert [t["text"] for t in changes["timeline"]] == ["TIMELINE-TWO", "GREEN-TIMELINE"]
    assert changes["statement_changed"] is True

    client.force_login(commander)
    page = client.get(f"/incidents/{incident.pk}/briefs/{second.pk}/changes/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "What changed since brief 1" in body
    assert 'data-decision="D-0002"' in body and 'data-field="hazards"' in body
    assert f'data-opened="{history["a2"].pk}"' in body
    assert f'data-closed="{history["a1"].pk}"' in body


# --- API and pages --------------------------------------------------------------------------------


def test_the_api_generates_edits_issues_and_refuses_edits_after(api, incident, commander):
    url = f"/api/v1/incidents/{incident.pk}/briefs/"
    client = api(commander)
    created = client.post(url, {"administration": "Gold room"}, format="json")
    assert created.status_code == 201, created.content
    brief = created.json()
    assert brief["status"] == "draft" and brief["number"] is None
    assert brief["marking"] == "AMBER" and brief["administration"] == "Gold room"

    edited = client.patch(f"{url}{brief['id']}/", {"humanitarian": "Rest centre"}, format="json")
    assert edited.status_code == 200 and edited.json()["humanitarian"] == "Rest centre"
    assert client.patch(f"{url}{brief['id']}/", {}, format="json").status_code == 400
    bad = client.patch(f"{url}{brief['id']}/", {"number": 7}, format="json")
    assert bad.status_code == 400

    issued = client.post(f"{url}{brief['id']}/issue/")
    assert issued.status_code == 200 and issued.json()["number"] == 1
    frozen = client.patch(f"{url}{brief['id']}/", {"intent": "Later"}, format="json")
    assert frozen.status_code == 409 and "frozen" in frozen.json()["detail"]
    assert client.post(f"{url}{brief['id']}/issue/").status_code == 409
    changes = client.get(f"{url}{brief['id']}/changes/")
    assert changes.status_code == 200 and changes.json()["previous"] is None

    future = client.post(url, {"as_of": "2999-01-01T00:00:00Z"}, format="json")
    assert future.status_code == 400 and "as_of" in future.json()
    red = client.post(url, {"marking": "RED"}, format="json")
    assert red.status_code == 400 and "marking" in red.json()


def test_need_to_know_on_briefs(api, client, incident, commander, outsider, observer):
    brief = brief_generate(incident_id=incident.pk, user=commander)
    url = f"/api/v1/incidents/{incident.pk}/briefs/"
    assert api(outsider).get(url).status_code == 404
    assert api(outsider).get(f"{url}{brief.pk}/").status_code == 404
    assert api(outsider).post(f"{url}{brief.pk}/issue/").status_code == 404
    assert api(observer).get(url).json()["count"] == 1
    assert api(observer).post(url, {}, format="json").status_code == 403
    assert api(observer).post(f"{url}{brief.pk}/issue/").status_code == 403

    client.force_login(outsider)
    for page in ("briefs/", f"briefs/{brief.pk}/", f"briefs/{brief.pk}/changes/"):
        assert client.get(f"/incidents/{incident.pk}/{page}").status_code == 404
    client.force_login(observer)
    page = client.get(f"/incidents/{incident.pk}/briefs/{brief.pk}/").content.decode()
    assert "Draft situation brief" in page and "Issue (numbers" not in page


def test_the_pages_generate_edit_and_issue(client, incident, commander):
    client.force_login(commander)
    listing = client.get(f"/incidents/{incident.pk}/briefs/")
    assert listing.status_code == 200 and "Generate draft" in listing.content.decode()
    made = client.post(
        f"/incidents/{incident.pk}/briefs/",
        {"as_of": "", "marking": "AMBER", "administration": "Gold room", "humanitarian": ""},
    )
    assert made.status_code == 302
    brief = Brief.objects.get()
    saved = client.post(
        f"/incidents/{incident.pk}/briefs/{brief.pk}/",
        {
            "information": "Edited info",
            "intent": "",
            "method": "",
            "administration": "Gold room",
            "risk_assessment": "",
            "communications": "",
            "humanitarian": "Rest centre",
        },
    )
    assert saved.status_code == 302
    brief.refresh_from_db()
    assert brief.information == "Edited info" and brief.humanitarian == "Rest centre"
    issued = client.post(f"/incidents/{incident.pk}/briefs/{brief.pk}/issue/")
    assert issued.status_code == 302
    again = client.post(f"/incidents/{incident.pk}/briefs/{brief.pk}/issue/")
    assert again.status_code == 409
    page = client.get(f"/incidents/{incident.pk}/briefs/{brief.pk}/").content.decode()
    assert "Situation brief 1" in page and "Edited info" in page and "Save draft" not in page
    early = client.post(
        f"/incidents/{incident.pk}/briefs/",
        {"as_of": "1999-01-01T10:00", "marking": "AMBER"},
    )
    assert early.status_code == 400


def test_the_database_refuses_to_change_an_issued_brief(incident, commander):
    from django.db import DatabaseError, transaction

    draft = brief_generate(incident_id=incident.pk, user=commander)
    Brief.objects.filter(pk=draft.pk).update(intent="A draft may change")
    brief_issue(brief_id=draft.pk, user=commander)
    with pytest.raises(DatabaseError), transaction.atomic():
        Brief.objects.filter(pk=draft.pk).update(intent="Rewritten behind the service's back")
    with pytest.raises(DatabaseError), transaction.atomic():
        Brief.objects.filter(pk=draft.pk).delete()
    assert Brief.objects.get(pk=draft.pk).intent == "A draft may change"
