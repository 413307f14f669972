"""TLP markings with recipient lists: who may read RED and AMBER+STRICT items, how recipients are
checked, and how the author's agency raises or lowers a marking (audited, hash-chained for
decisions)."""

import pytest
from django.db import connection

from coordination.markings import Marking
from coordination.models import Action, AuditEntry, Decision, DecisionMarkingChange
from coordination.roles import Role
from coordination.services import (
    action_create,
    decision_log_verify,
    decision_marking_change,
    decision_record,
)
from incidents.models import IncidentEvent, MethaneReport, TimelineEntry
from incidents.services import item_marking_change, timeline_add

from .factories import UserFactory, decision_fields, methane_fields, row_counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def fire_officer(fire):
    """Another person of the fire service, taking part through it."""
    return UserFactory(username="fire-officer", agency=fire, roles=[Role.LIAISON_OFFICER])


@pytest.fixture
def superuser():
    return UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)


def url(incident, path: str = "") -> str:
    return f"/api/v1/incidents/{incident.pk}/{path}"


def decision_body(**overrides) -> dict:
    body = decision_fields()
    body["decided_at"] = body["decided_at"].isoformat()
    body.update(overrides)
    return body


def visible(model, user) -> set[int]:
    return set(model.objects.visible_to(user).values_list("pk", flat=True))


# --- writing restricted items ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("decisions/", decision_body()),
        ("methane/", methane_fields()),
        ("timeline/", {"text": "Second device found"}),
        ("actions/", {"title": "Sweep the concourse", "owner_agency": None}),
    ],
)
def test_red_items_name_people_and_always_their_author(
    api, incident, liaison, commander, fire_officer, path, body
):
    body = {**body, "marking": "RED", "recipient_people": [commander.pk]}
    if "owner_agency" in body:
        body["owner_agency"] = liaison.agency_id
    response = api(liaison).post(url(incident, path), body, format="json")

    assert response.status_code == 201, response.data
    assert response.data["marking"] == "RED"
    assert sorted(response.data["recipient_people"]) == sorted([commander.pk, liaison.pk])
    item_id = response.data["id"]
    assert api(commander).get(url(incident, f"{path}{item_id}/")).status_code == 200
    # A colleague of the author's own agency is not named: RED is people, not agencies.
    assert api(fire_officer).get(url(incident, f"{path}{item_id}/")).status_code == 404
    listed = api(fire_officer).get(url(incident, path)).data["results"]
    assert item_id not in [row["id"] for row in listed]


def test_amber_strict_names_agencies_and_always_the_authors(
    api, incident, liaison, commander, fire_officer, police, observer
):
    response = api(liaison).post(
        url(incident, "timeline/"),
        {"text": "Informant inside", "marking": "AMBER+STRICT"},
        format="json",
    )
    assert response.status_code == 201, response.data
    assert response.data["recipient_agencies"] == [liaison.agency_id]
    entry_id = response.data["id"]
    assert entry_id in visible(TimelineEntry, fire_officer)
    assert entry_id not in visible(TimelineEntry, commander)

    shared = api(liaison).post(
        url(incident, "timeline/"),
        {"text": "Informant named", "marking": "AMBER+STRICT", "recipient_agencies": [police.pk]},
        format="json",
    )
    assert shared.status_code == 201, shared.data
    assert shared.data["id"] in visible(TimelineEntry, commander)
    assert shared.data["id"] in visible(TimelineEntry, observer)


def test_a_superuser_or_administrator_reads_restricted_items_only_when_named(
    incident, liaison, superuser, administrator, commander
):
    red = timeline_add(incident_id=incident.pk, user=liaison, text="For gold", marking="RED")
    open_entry = timeline_add(incident_id=incident.pk, user=liaison, text="For all")
    for reader in (superuser, administrator, commander):
        assert red.pk not in visible(TimelineEntry, reader)
        assert open_entry.pk in visible(TimelineEntry, reader)
    named = timeline_add(
        incident_id=incident.pk,
        user=liaison,
        text="For gold",
        marking="RED",
        recipient_people=[commander],
    )
    assert named.pk in visible(TimelineEntry, commander)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"marking": "AMBER+STRICT", "recipient_agencies": ["transport"]}, "recipient_agencies"),
        ({"marking": "RED", "recipient_people": ["outsider"]}, "recipient_people"),
        ({"marking": "AMBER", "recipient_agencies": ["police"]}, "recipient_agencies"),
        ({"marking": "AMBER+STRICT", "recipient_people": ["commander"]}, "recipient_people"),
        ({"marking": "RED", "recipient_agencies": ["police"]}, "recipient_agencies"),
        ({"marking": "RED", "recipient_people": [0]}, "recipient_people"),
    ],
)
def test_recipients_must_fit_the_marking_and_take_part(
    api, incident, liaison, request, body, field
):
    names = {"transport", "outsider", "police", "commander"}

    def resolve(value):
        return request.getfixturevalue(value).pk if value in names else value

    body = {k: [resolve(v) for v in vs] if isinstance(vs, list) else vs for k, vs in body.items()}
    before = row_counts()
    for path, base in [
        ("decisions/", decision_body()),
        ("timeline/", {"text": "x"}),
        ("methane/", methane_fields()),
        ("actions/", {"title": "x", "owner_agency": liaison.agency_id}),
    ]:
        response = api(liaison).post(url(incident, path), {**base, **body}, format="json")
        assert response.status_code == 400, (path, response.data)
        assert field in response.data, response.data
    assert row_counts() == before


def test_recipients_are_part_of_the_decision_hash(incident, liaison, commander):
    entry = decision_record(
        incident_id=incident.pk,
        author=liaison,
        marking="RED",
        recipient_people=[commander],
        **decision_fields(),
    )
    assert decision_log_verify(incident_id=incident.pk).intact
    stored = entry.stored_recipients()
    assert stored == ((), tuple(sorted([commander.pk, liaison.pk])))
    assert entry.compute_hash(entry.stored_positions(), stored) == entry.entry_hash
    assert entry.compute_hash(entry.stored_positions(), ((), (liaison.pk,))) != entry.entry_hash
    with pytest.raises(Exception, match="append-only"), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM coordination_decision_recipient_people WHERE decision_id = %s",
            [entry.pk],
        )


# --- changing a marking ---------------------------------------------------------------------------


def test_raising_a_decision_appends_a_chained_change_and_rules_access(
    api, incident, liaison, commander, fire_officer, django_capture_on_commit_callbacks
):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    assert entry.pk in visible(Decision, commander)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(fire_officer).post(
            url(incident, f"decisions/{entry.pk}/marking/"),
            {"marking": "RED", "recipient_people": [liaison.pk], "reason": "Source at risk"},
            format="json",
        )
    assert response.status_code == 200, response.data
    assert response.data["marking"] == "RED"
    assert response.data["recorded_marking"] == "AMBER"
    assert sorted(response.data["recipient_people"]) == sorted([liaison.pk, fire_officer.pk])
    assert entry.pk not in visible(Decision, commander)
    assert Decision.objects.get(pk=entry.pk).marking == "AMBER"  # the entry is untouched

    # The earlier event that announced the decision is hidden from the commander on replay.
    replay = api(commander).get(url(incident, "events/")).data["results"]
    about = [e for e in replay if e.get("subject_id") == entry.pk]
    assert about == []
    assert "Evacuate the central station" not in str(replay)
    changes = AuditEntry.objects.filter(action="marking.changed", target_id=str(entry.pk))
    assert changes.filter(detail__to="RED", user=fire_officer).exists()

    lowered = decision_marking_change(decision_id=entry.pk, user=liaison, marking="AMBER")
    assert lowered.prev_hash == DecisionMarkingChange.objects.get(marking="RED").entry_hash
    assert entry.pk in visible(Decision, commander)
    assert decision_log_verify(incident_id=incident.pk).intact


def test_a_missing_marking_change_breaks_the_chain(incident, liaison):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    decision_marking_change(decision_id=entry.pk, user=liaison, marking="RED")
    tables = ["coordination_decisionmarkingchange_recipient_people"]
    tables.append("coordination_decisionmarkingchange")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            cursor.execute(f"DELETE FROM {table}")
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    report = decision_log_verify(incident_id=incident.pk)
    assert not report.intact and "marking" in report.reason


@pytest.mark.parametrize("kind", ["actions", "timeline", "methane"])
def test_only_the_authors_agency_changes_a_marking(
    api, incident, liaison, commander, fire_officer, kind
):
    if kind == "actions":
        item = action_create(
            incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=liaison.agency
        )
    elif kind == "timeline":
        item = timeline_add(incident_id=incident.pk, user=liaison, text="Cordon up")
    else:
        from incidents.services import methane_submit

        item = methane_submit(incident_id=incident.pk, user=liaison, **methane_fields())
    path = url(incident, f"{kind}/{item.pk}/marking/")
    audited = AuditEntry.objects.filter(action="marking.changed").count()
    refused = api(commander).post(path, {"marking": "CLEAR"}, format="json")
    assert refused.status_code == 403
    bad = api(fire_officer).post(path, {"marking": "PURPLE"}, format="json")
    assert bad.status_code == 400 and "marking" in bad.data
    changed = api(fire_officer).post(
        path, {"marking": "AMBER+STRICT", "recipient_agencies": []}, format="json"
    )
    assert changed.status_code == 200, changed.data
    assert changed.data["marking"] == "AMBER+STRICT"
    assert changed.data["recipient_agencies"] == [liaison.agency_id]
    model = {"actions": Action, "timeline": TimelineEntry, "methane": MethaneReport}[kind]
    assert item.pk not in visible(model, commander)
    assert api(commander).post(path, {"marking": "AMBER"}, format="json").status_code == 404
    assert IncidentEvent.objects.filter(kind__endswith=".marking_changed").count() == 1
    # The audit log is written on its own connection, so it outlives each test: count the change.
    assert AuditEntry.objects.filter(action="marking.changed").count() == audited + 1


def test_reads_of_restricted_items_are_audited(api, incident, liaison, commander):
    red = timeline_add(
        incident_id=incident.pk,
        user=liaison,
        text="For gold",
        marking=Marking.RED,
        recipient_people=[commander],
    )
    timeline_add(incident_id=incident.pk, user=liaison, text="For all")
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    assert api(commander).get(url(incident, "timeline/")).status_code == 200
    assert api(commander).get(url(incident, f"timeline/{red.pk}/")).status_code == 200
    reads = AuditEntry.objects.filter(action="read.restricted").exclude(pk__in=before)
    assert reads.count() == 2
    assert set(reads.values_list("target_id", flat=True)) == {str(red.pk)}


def test_item_marking_change_refuses_people_outside_the_incident(incident, liaison, outsider):
    entry = timeline_add(incident_id=incident.pk, user=liaison, text="Cordon up")
    with pytest.raises(Exception) as refused:
        item_marking_change(
            model=TimelineEntry,
            item_id=entry.pk,
            user=liaison,
            marking="RED",
            recipient_people=[outsider],
        )
    assert "recipient_people" in refused.value.message_dict  # type: ignore[attr-defined]
    assert TimelineEntry.objects.get(pk=entry.pk).marking == "AMBER"


# --- the page forms -------------------------------------------------------------------------------


def test_the_timeline_form_names_recipients(client, incident, liaison, commander, outsider):
    client.force_login(liaison)
    path = f"/incidents/{incident.pk}/timeline/new/"
    form = client.get(path).content.decode()
    assert 'name="recipient_people"' in form and 'name="recipient_agencies"' in form
    assert outsider.username not in form  # only people of agencies taking part are offered

    response = client.post(
        path,
        {
            "text": "Source inside",
            "category": "information",
            "marking": "RED",
            "recipient_people": [commander.pk],
        },
    )
    assert response.status_code == 302
    entry = TimelineEntry.objects.get(text="Source inside")
    assert entry.current_audience().people == tuple(sorted([commander.pk, liaison.pk]))

    refused = client.post(
        path,
        {
            "text": "Wrong list",
            "category": "information",
            "marking": "AMBER",
            "recipient_people": [commander.pk],
        },
    )
    assert refused.status_code == 400
    assert "Name people only for RED" in refused.content.decode()
    assert not TimelineEntry.objects.filter(text="Wrong list").exists()


def test_the_dashboard_shows_the_marking_in_force_and_its_recipients(
    client, incident, liaison, commander
):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    decision_marking_change(
        decision_id=entry.pk, user=liaison, marking="RED", recipient_people=[commander]
    )
    client.force_login(commander)
    page = client.get(f"/incidents/{incident.pk}/panels/decisions/").content.decode()
    assert "TLP:RED" in page
    assert f"{commander} ({commander.agency.short_name})" in page


# --- edge cases -----------------------------------------------------------------------------------


def test_a_superuser_cannot_re_mark_what_no_agency_of_theirs_wrote(api, incident, liaison):
    root = UserFactory(username="root2", agency=None, is_superuser=True, is_staff=True)
    entry = timeline_add(incident_id=incident.pk, user=liaison, text="Cordon up")
    response = api(root).post(
        url(incident, f"timeline/{entry.pk}/marking/"), {"marking": "CLEAR"}, format="json"
    )
    assert response.status_code == 403
    assert TimelineEntry.objects.get(pk=entry.pk).marking == "AMBER"


def test_recipients_of_another_city_do_not_exist(api, incident, liaison, oslo_police):
    stranger = UserFactory(username="oslo-gold", agency=oslo_police)
    for body in (
        {"marking": "RED", "recipient_people": [stranger.pk]},
        {"marking": "AMBER+STRICT", "recipient_agencies": [oslo_police.pk]},
        {"marking": "RED", "recipient_people": "everyone"},
    ):
        response = api(liaison).post(
            url(incident, "timeline/"), {"text": "x", **body}, format="json"
        )
        assert response.status_code == 400, response.data
        assert set(response.data) & {"recipient_people", "recipient_agencies"}
    assert not TimelineEntry.objects.exists()


@pytest.mark.parametrize(
    "audience",
    [None, {}, {"people": "7"}, {"people": [[7]]}, {"agencies": None, "people": None}, "RED"],
)
def test_a_restricted_live_event_with_a_malformed_audience_reaches_nobody(audience):
    from comms.consumers import EventReader

    message = {"type": "event", "event": {"seq": 9, "marking": "RED", "payload": {"x": "s"}}}
    if audience is not None:
        message["audience"] = audience
    reader = EventReader(user_id=7, agency_id=3)
    assert reader(message) == {"type": "event", "event": {"seq": 9, "kind": "hidden"}}


def test_a_named_reader_gets_the_event_without_its_audience():
    from comms.consumers import EventReader

    event = {"seq": 4, "marking": "AMBER+STRICT", "payload": {"x": "s"}}
    message = {"type": "event", "event": event, "audience": {"agencies": [3], "people": []}}
    assert EventReader(user_id=1, agency_id=3)(message) == {"type": "event", "event": event}
    assert EventReader(user_id=1, agency_id=4)(message)["event"] == {"seq": 4, "kind": "hidden"}
