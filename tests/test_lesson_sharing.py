"""City-to-city sharing: shareable lessons exported as an exchange document, imported by
another city (here a second city in the same database, as another deployment would), all or
nothing, idempotently, audited, and never carrying restricted lessons or personal names."""

import copy
import json
import uuid

import pytest
from django.urls import reverse

from coordination.lessons import exchange_schema, lesson_create
from coordination.markings import Marking
from coordination.models import AuditEntry, Lesson, LessonTransition
from coordination.roles import Role

from .factories import UserFactory, lesson_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def oslo_oversight(oslo_police):
    return UserFactory(username="oslo-oversight", agency=oslo_police, roles=[Role.OVERSIGHT])


def shared_lesson(incident, user, owner_agency, **overrides):
    fields = {"marking": Marking.GREEN, "shareable": True, **overrides}
    return lesson_create(
        incident_id=incident.pk, user=user, owner_agency=owner_agency, **lesson_fields(**fields)
    )


def export(api, user, *ids):
    return api(user).get(reverse("lesson-api-export"), {"id": list(ids)} if ids else {})


def do_import(api, user, document):
    body = document if isinstance(document, (bytes, str)) else json.dumps(document)
    return api(user).generic(
        "POST", reverse("lesson-api-import"), body, content_type="application/json"
    )


def counts():
    return (
        Lesson.objects.count(),
        LessonTransition.objects.count(),
        AuditEntry.objects.filter(action="import").count(),
    )


def test_a_round_trip_lands_in_the_other_city_as_identified_without_owner(
    api, incident, commander, liaison, fire, oversight, oslo_oversight
):
    lesson = shared_lesson(incident, commander, fire, owner=liaison)
    clear = shared_lesson(incident, commander, fire, title="Public lesson", marking=Marking.CLEAR)

    exported = export(api, oversight, lesson.pk, clear.pk)
    assert exported.status_code == 200, exported.content
    document = exported.json()
    assert (document["format"], document["version"]) == ("ctpn-lesson-exchange", 1)
    assert document["source"]["city"] == "Stockholm"
    assert [entry["uuid"] for entry in document["lessons"]] == [str(lesson.uuid), str(clear.uuid)]

    imported = do_import(api, oslo_oversight, document)
    assert imported.status_code == 200, imported.content
    created = imported.json()["created"]
    assert [row["uuid"] for row in created] == [str(lesson.uuid), str(clear.uuid)]
    copy_ = Lesson.objects.get(city=oslo_oversight.agency.city, uuid=lesson.uuid)
    assert (copy_.status, copy_.owner_agency, copy_.owner, copy_.incident) == (
        "identified",
        None,
        None,
        None,
    )
    assert (copy_.source, copy_.origin_city, copy_.marking) == ("imported", "Stockholm", "GREEN")
    assert copy_.title == lesson.title and copy_.description == lesson.description
    # The original stays as it was; the copy is visible in Oslo and not in Stockholm's lists.
    assert Lesson.objects.filter(uuid=lesson.uuid).count() == 2
    oslo_list = api(oslo_oversight).get(reverse("lesson-api-list")).json()["results"]
    assert {row["uuid"] for row in oslo_list} == {str(lesson.uuid), str(clear.uuid)}
    stockholm_list = api(oversight).get(reverse("lesson-api-list")).json()["results"]
    assert {row["city"] for row in stockholm_list} == {incident.city_id}

    # The audit log outlives test transactions (its own connection): read the newest entries.
    audit = {
        action: AuditEntry.objects.filter(action=action).first() for action in ("export", "import")
    }
    assert audit["export"].detail["lessons"] == [str(lesson.uuid), str(clear.uuid)]
    assert audit["import"].detail["created"] == [str(lesson.uuid), str(clear.uuid)]
    assert audit["import"].username == "oslo-oversight"


def test_importing_the_same_lessons_again_creates_nothing(
    api, incident, commander, fire, oversight, oslo_oversight
):
    lesson = shared_lesson(incident, commander, fire)
    document = export(api, oversight, lesson.pk).json()
    assert do_import(api, oslo_oversight, document).status_code == 200
    before = Lesson.objects.count()

    again = do_import(api, oslo_oversight, document)

    assert again.status_code == 200
    assert again.json() == {"created": [], "already_present": [str(lesson.uuid)]}
    assert Lesson.objects.count() == before


def test_an_imported_lesson_is_assigned_then_progressed_in_the_importing_city(
    api, incident, commander, fire, oversight, oslo_oversight, oslo_police
):
    lesson = shared_lesson(incident, commander, fire)
    do_import(api, oslo_oversight, export(api, oversight, lesson.pk).json())
    copy_ = Lesson.objects.get(city=oslo_police.city, uuid=lesson.uuid)
    oslo_liaison = UserFactory(agency=oslo_police, roles=[Role.LIAISON_OFFICER])
    step = reverse("lesson-api-transition", args=[copy_.pk])

    assert api(oslo_liaison).post(step, {"to": "action_planned"}).status_code == 409
    assigned = api(oslo_oversight).post(
        reverse("lesson-api-assign", args=[copy_.pk]),
        {"owner_agency": oslo_police.pk, "due_date": "2031-01-31"},
    )
    assert assigned.status_code == 200, assigned.content
    assert api(oslo_liaison).post(step, {"to": "action_planned"}).status_code == 200
    # Stockholm's people cannot reach Oslo's copy.
    assert api(oversight).get(reverse("lesson-api-detail", args=[copy_.pk])).status_code == 404


@pytest.mark.parametrize(
    ("marking", "shareable"),
    [
        (Marking.AMBER, False),
        (Marking.GREEN, False),  # GREEN, but nobody marked it shareable
        (Marking.AMBER_STRICT, False),
        (Marking.RED, False),
    ],
)
def test_lessons_that_are_not_shareable_are_refused_for_export(
    api, incident, commander, fire, oversight, marking, shareable
):
    shared = shared_lesson(incident, commander, fire)
    secret = lesson_create(
        incident_id=incident.pk,
        user=commander,
        owner_agency=fire,
        **lesson_fields(title="SECRET-LESSON", marking=marking, shareable=shareable),
    )
    if marking in (Marking.AMBER_STRICT, Marking.RED):
        # The committee must be able to read it for the refusal to be about sharing.
        reader = commander
        reader.role_assignments.create(role=Role.OVERSIGHT)
        reader = type(reader).objects.get(pk=reader.pk)
    else:
        reader = oversight

    exports_before = AuditEntry.objects.filter(action="export").count()
    refused = export(api, reader, shared.pk, secret.pk)
    everything = export(api, reader)

    assert refused.status_code == 409, refused.content
    assert secret.label in refused.json()["detail"]
    assert everything.status_code == 200
    assert "SECRET-LESSON" not in everything.content.decode()
    assert [e["uuid"] for e in everything.json()["lessons"]] == [str(shared.uuid)]
    # Only the export that happened is recorded.
    assert AuditEntry.objects.filter(action="export").count() == exports_before + 1


def test_an_export_carries_no_people_nor_internal_fields(
    api, incident, commander, liaison, fire, oversight
):
    from coordination.lessons import debrief_create, lesson_from_observation, observation_add

    debrief = debrief_create(
        incident_id=incident.pk,
        user=commander,
        title="Debrief",
        held_at=incident.opened_at,
        participants=[liaison],
    )
    observation = observation_add(
        debrief_id=debrief.pk, user=liaison, category="other", text="Shared map layers lagged."
    )
    lesson = lesson_from_observation(observation_id=observation.pk, user=commander)
    from coordination.lessons import lesson_assign, lesson_update

    lesson_assign(lesson_id=lesson.pk, user=oversight, owner_agency=fire, owner=liaison)
    lesson_update(lesson_id=lesson.pk, user=oversight, marking=Marking.GREEN, shareable=True)

    body = export(api, oversight, lesson.pk).content.decode()

    for private in (
        liaison.username,
        liaison.first_name,
        liaison.last_name,
        liaison.email,
        commander.username,
        commander.last_name,
        fire.name,
        incident.reference,
        incident.title,
    ):
        assert private not in body, private
    entry = json.loads(body)["lessons"][0]
    assert set(entry) == set(exchange_schema()["$defs"]["lesson"]["properties"])
    assert entry["owner_agency_type"] == "fire_rescue"


def valid_document():
    return {
        "format": "ctpn-lesson-exchange",
        "version": 1,
        "exported_at": "2026-05-01T10:00:00Z",
        "source": {"deployment": "Bergen CTPN", "city": "Bergen"},
        "lessons": [
            {
                "uuid": str(uuid.UUID(int=1)),
                "title": "First",
                "description": "First lesson.",
                "marking": "GREEN",
                "identified_on": "2026-04-01",
            },
            {
                "uuid": str(uuid.UUID(int=2)),
                "title": "Second",
                "description": "Second lesson.",
                "marking": "CLEAR",
                "identified_on": "2026-04-02",
                "due_date": "2026-09-30",
            },
        ],
    }


def broken(change):
    document = copy.deepcopy(valid_document())
    change(document)
    return document


FAULTS = {
    "wrong version": (broken(lambda d: d.update(version=2)), "$.version"),
    "missing field": (broken(lambda d: d["lessons"][1].pop("description")), "$.lessons[1]"),
    "marking RED": (
        broken(lambda d: d["lessons"][1].update(marking="RED")),
        "$.lessons[1].marking",
    ),
    "marking AMBER": (
        broken(lambda d: d["lessons"][0].update(marking="AMBER")),
        "$.lessons[0].marking",
    ),
    "bad date": (
        broken(lambda d: d["lessons"][1].update(due_date="2026-02-30")),
        "$.lessons[1].due_date",
    ),
    "bad date shape": (
        broken(lambda d: d["lessons"][0].update(identified_on="1 April 2026")),
        "$.lessons[0].identified_on",
    ),
    "duplicate uuid": (
        broken(lambda d: d["lessons"][1].update(uuid=d["lessons"][0]["uuid"].upper())),
        "$.lessons[1].uuid",
    ),
    "bad uuid": (broken(lambda d: d["lessons"][0].update(uuid="nope")), "$.lessons[0].uuid"),
    "blank title": (broken(lambda d: d["lessons"][0].update(title="  ")), "$.lessons[0].title"),
    "unknown field": (
        broken(lambda d: d["lessons"][0].update(author="Jane Doe")),
        "$.lessons[0]",
    ),
    "not an object": ([1, 2, 3], "$"),
    "not JSON": ("{this is not json", "$"),
    "not UTF-8": (b"\xff\xfe{}", "$"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_document_is_refused_whole_naming_the_path_of_the_fault(api, fault, oslo_oversight):
    document, path = FAULTS[fault]
    before = counts()

    response = do_import(api, oslo_oversight, document)

    assert response.status_code == 400, response.content
    assert path in response.json(), response.json()
    assert counts() == before  # nothing written, the good lesson of the document neither


def test_a_good_document_imports_and_an_outsider_cannot_import(api, oslo_oversight, oslo_police):
    liaison = UserFactory(agency=oslo_police, roles=[Role.LIAISON_OFFICER])

    assert do_import(api, liaison, valid_document()).status_code == 403
    assert counts()[0] == 0
    response = do_import(api, oslo_oversight, valid_document())
    assert response.status_code == 200
    assert [row["title"] for row in response.json()["created"]] == ["First", "Second"]
    second = Lesson.objects.get(title="Second")
    assert (second.origin_city, second.origin_deployment) == ("Bergen", "Bergen CTPN")
    assert second.due_date is None  # the origin's due date is not the importing city's


def test_the_schema_file_is_the_one_the_import_checks_against():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(exchange_schema())
    assert exchange_schema()["properties"]["lessons"]["items"]["$ref"] == "#/$defs/lesson"
    markings = exchange_schema()["$defs"]["lesson"]["properties"]["marking"]["enum"]
    assert markings == ["CLEAR", "GREEN"]
