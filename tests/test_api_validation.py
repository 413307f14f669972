"""Bad input gets a 400 naming the field at fault, never a 500, and writes nothing (invariant 6)."""

from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from coordination.models import Agency
from coordination.roles import Role
from coordination.services import action_create, decision_record
from incidents.models import Incident
from incidents.services import incident_open

from .factories import (
    AgencyFactory,
    CityFactory,
    UserFactory,
    decision_fields,
    methane_fields,
    row_counts,
)

pytestmark = pytest.mark.django_db


@contextmanager
def nothing_written():
    before = row_counts()
    yield
    assert row_counts() == before


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, getattr(response, "data", None))
    assert field in response.data, response.data


def url(incident, path: str = "") -> str:
    return f"/api/v1/incidents/{incident.pk}/{path}"


def iso(value: datetime) -> str:
    return value.isoformat()


def decision_body(**overrides) -> dict:
    body = decision_fields()
    body["decided_at"] = iso(body["decided_at"])
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not ...}


def methane_body(**overrides) -> dict:
    body = methane_fields(**{"major_incident_declared": False, **overrides})
    return {name: value for name, value in body.items() if value is not ...}


# --- Decisions ---------------------------------------------------------------------------------

JDM_TEXT = [
    "information",
    "threat_assessment",
    "working_strategy",
    "powers_policies",
    "decision",
    "rationale",
]


@pytest.mark.parametrize("section", [*JDM_TEXT, "options", "decided_at"])
def test_a_decision_missing_a_jdm_section_is_refused(api, liaison, incident, section):
    with nothing_written():
        response = api(liaison).post(url(incident, "decisions/"), decision_body(**{section: ...}))
    assert_refused(response, section)


@pytest.mark.parametrize("section", JDM_TEXT)
@pytest.mark.parametrize("blank", ["", "   "])
def test_a_decision_with_a_blank_jdm_section_is_refused(api, liaison, incident, section, blank):
    with nothing_written():
        response = api(liaison).post(url(incident, "decisions/"), decision_body(**{section: blank}))
    assert_refused(response, section)


@pytest.mark.parametrize(
    "options",
    [
        [],
        [{"option": "Evacuate", "chosen": True}],
        [{"option": "Evacuate", "chosen": True, "reason": "  "}],
        [{"option": "", "chosen": True, "reason": "Safer"}],
        [{"option": "Evacuate", "chosen": "perhaps", "reason": "Safer"}],
        ["Evacuate"],
        "Evacuate",
        None,
    ],
    ids=[
        "empty",
        "no-reason",
        "blank-reason",
        "blank-text",
        "chosen-not-bool",
        "strings",
        "str",
        "null",
    ],
)
def test_options_must_each_say_what_and_why(api, liaison, incident, options):
    with nothing_written():
        response = api(liaison).post(url(incident, "decisions/"), decision_body(options=options))
    assert_refused(response, "options")


def test_a_decision_cannot_be_taken_in_the_future(api, liaison, incident):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"),
            decision_body(decided_at=iso(timezone.now() + timedelta(hours=1))),
        )
    assert_refused(response, "decided_at")


@pytest.mark.parametrize("decided_at", ["yesterday", "2026-13-45T10:00:00Z", 12])
def test_decided_at_must_be_a_time(api, liaison, incident, decided_at):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"), decision_body(decided_at=decided_at)
        )
    assert_refused(response, "decided_at")


@pytest.mark.parametrize("reason", [..., "", "   "])
def test_a_late_entry_must_say_why(api, liaison, incident, reason):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"),
            decision_body(
                decided_at=iso(timezone.now() - timedelta(hours=2)), late_entry_reason=reason
            ),
        )
    assert_refused(response, "late_entry_reason")


def test_a_review_time_must_follow_the_decision(api, liaison, incident):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"),
            decision_body(review_by=iso(timezone.now() - timedelta(hours=1))),
        )
    assert_refused(response, "review_by")


def marked_writes(fire, marking) -> list[tuple[str, dict]]:
    """One valid body per kind of incident item, carrying ``marking``."""
    return [
        ("decisions/", decision_body(marking=marking)),
        ("methane/", methane_body(marking=marking)),
        ("actions/", {"title": "Cordon", "owner_agency": fire.pk, "marking": marking}),
        ("timeline/", {"text": "Shots fired", "marking": marking}),
    ]


@pytest.mark.parametrize("marking", ["PURPLE", "amber", "TLP:AMBER", "", None, 3])
def test_an_unknown_marking_is_refused(api, liaison, incident, fire, marking):
    for path, body in marked_writes(fire, marking):
        with nothing_written():
            response = api(liaison).post(url(incident, path), body)
        assert_refused(response, "marking")


@pytest.mark.parametrize("field", ["agreed_by", "dissents"])
def test_positions_need_agencies_that_exist_in_the_city_and_take_part(
    api, liaison, incident, transport, oslo_police, field
):
    def body(agency_id):
        if field == "agreed_by":
            return decision_body(agreed_by=[agency_id])
        return decision_body(dissents=[{"agency": agency_id, "statement": "Too early."}])

    for agency_id in (999_999, oslo_police.pk, transport.pk, "police"):
        with nothing_written():
            response = api(liaison).post(url(incident, "decisions/"), body(agency_id))
        assert_refused(response, field)


def test_a_dissent_must_say_what_it_dissents_from(api, liaison, incident, police):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"),
            decision_body(dissents=[{"agency": police.pk, "statement": " "}]),
        )
    assert_refused(response, "dissents")


def test_an_agency_cannot_both_agree_and_dissent(api, liaison, incident, police):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"),
            decision_body(
                agreed_by=[police.pk], dissents=[{"agency": police.pk, "statement": "No."}]
            ),
        )
    assert_refused(response, "dissents")


def test_a_correction_must_supersede_a_decision_of_the_same_incident(
    api, commander, liaison, police, fire, incident
):
    other = incident_open(
        user=commander, title="Other", type="other", level=1, lead_agency=police,
        participating_agencies=[fire],
    )  # fmt: skip
    foreign = decision_record(incident_id=other.pk, author=liaison, **decision_fields())

    for supersedes in (foreign.pk, 999_999, "D-0001"):
        with nothing_written():
            response = api(liaison).post(
                url(incident, "decisions/"), decision_body(supersedes=supersedes)
            )
        assert_refused(response, "supersedes")


def test_a_correction_cannot_reach_a_decision_the_author_may_not_see(
    api, liaison, incident, oslo_police
):
    oslo_gold = UserFactory(agency=oslo_police, roles=[Role.STRATEGIC_COMMANDER])
    oslo_incident = incident_open(
        user=oslo_gold, title="Oslo", type="other", level=1, lead_agency=oslo_police
    )
    hidden = decision_record(incident_id=oslo_incident.pk, author=oslo_gold, **decision_fields())

    with nothing_written():
        response = api(liaison).post(
            url(incident, "decisions/"), decision_body(supersedes=hidden.pk)
        )
    assert_refused(response, "supersedes")
    assert "another incident" not in str(response.data)  # invisible looks like missing


# --- Incidents ---------------------------------------------------------------------------------


def incident_body(police, **overrides) -> dict:
    body = {
        "title": "Armed attack",
        "type": "marauding_terrorist_attack",
        "level": 3,
        "lead_agency": police.pk,
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not ...}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ...),
        ("title", "  "),
        ("title", "x" * 201),
        ("type", "alien_invasion"),
        ("type", ...),
        ("level", 5),
        ("level", 0),
        ("level", "high"),
        ("level", ...),
        ("latitude", "91"),
        ("latitude", "-90.000001"),
        ("latitude", "1000"),
        ("latitude", "north"),
        ("longitude", "180.5"),
        ("longitude", "-181"),
        ("is_exercise", "perhaps"),
        ("opened_at", "next tuesday"),
        ("location_description", "x" * 301),
    ],
)
def test_an_incident_with_a_bad_field_is_refused(api, commander, police, field, value):
    body = incident_body(police, **{field: value})
    if field in ("latitude", "longitude"):
        body.setdefault("latitude", "59.3")
        body.setdefault("longitude", "18.0")
    with nothing_written():
        response = api(commander).post("/api/v1/incidents/", body)
    assert_refused(response, field)


@pytest.mark.parametrize("given", ["latitude", "longitude"])
def test_coordinates_come_in_pairs(api, commander, police, given):
    missing = "longitude" if given == "latitude" else "latitude"
    with nothing_written():
        response = api(commander).post("/api/v1/incidents/", incident_body(police, **{given: "10"}))
    assert_refused(response, missing)


def test_an_incident_cannot_open_in_the_future(api, commander, police):
    with nothing_written():
        response = api(commander).post(
            "/api/v1/incidents/",
            incident_body(police, opened_at=iso(timezone.now() + timedelta(days=1))),
        )
    assert_refused(response, "opened_at")


def test_agencies_must_exist_and_belong_to_the_city(api, commander, police, oslo_police):
    for field, value in [
        ("lead_agency", 999_999),
        ("lead_agency", oslo_police.pk),
        ("lead_agency", None),
        ("participating_agencies", [999_999]),
        ("participating_agencies", [oslo_police.pk]),
        ("participating_agencies", police.pk),
    ]:
        with nothing_written():
            response = api(commander).post(
                "/api/v1/incidents/", incident_body(police, **{field: value})
            )
        assert_refused(response, field)


def test_an_inactive_agency_cannot_lead(api, commander, police, fire):
    Agency.objects.filter(pk=fire.pk).update(is_active=False)
    with nothing_written():
        response = api(commander).post(
            "/api/v1/incidents/", incident_body(police, lead_agency=fire.pk)
        )
    assert_refused(response, "lead_agency")


def test_the_neutral_commander_must_be_of_a_participating_agency(
    api, commander, police, transport, oslo_police
):
    outside_chair = UserFactory(agency=transport, roles=[Role.NEUTRAL_COMMANDER])
    oslo_chair = UserFactory(agency=oslo_police, roles=[Role.NEUTRAL_COMMANDER])
    for chair in (outside_chair.pk, oslo_chair.pk, 999_999):
        with nothing_written():
            response = api(commander).post(
                "/api/v1/incidents/", incident_body(police, neutral_commander=chair)
            )
        assert_refused(response, "neutral_commander")


def test_an_ancient_opening_time_is_refused_not_a_crash(api):
    """A city west of Greenwich cannot even express year 1 in its own zone."""
    new_york = CityFactory(name="New York", code="NYC", time_zone="America/New_York")
    nypd = AgencyFactory(city=new_york, name="NYPD", short_name="NYPD")
    gold = UserFactory(agency=nypd, roles=[Role.STRATEGIC_COMMANDER])

    for opened_at in ("0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"):
        with nothing_written():
            response = api(gold).post(
                "/api/v1/incidents/", incident_body(nypd, opened_at=opened_at)
            )
        assert_refused(response, "opened_at")


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59+00:00"])
def test_implausibly_old_times_are_refused(api, liaison, incident, fire, instant):
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    writes = [
        (
            "post",
            "decisions/",
            decision_body(decided_at=instant, late_entry_reason="Old"),
            "decided_at",
        ),
        ("post", "decisions/", decision_body(review_by=instant), "review_by"),
        (
            "post",
            "actions/",
            {"title": "Cordon", "owner_agency": fire.pk, "due_at": instant},
            "due_at",
        ),
        ("patch", f"actions/{action.pk}/", {"due_at": instant}, "due_at"),
        ("post", "timeline/", {"text": "Shots fired", "occurred_at": instant}, "occurred_at"),
    ]
    for method, path, body, field in writes:
        with nothing_written():
            response = getattr(api(liaison), method)(url(incident, path), body)
        assert_refused(response, field)


# --- M/ETHANE, actions, timeline ----------------------------------------------------------------

METHANE_TEXT = [
    "exact_location",
    "incident_type",
    "hazards",
    "access",
    "emergency_services_present",
    "emergency_services_required",
]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *[(name, "  ") for name in METHANE_TEXT],
        *[(name, ...) for name in METHANE_TEXT],
        ("major_incident_declared", ...),
        ("major_incident_declared", "perhaps"),
        ("casualties_p1", -1),
        ("casualties_fatal", "many"),
        ("casualties_p2", 2**31),
        ("latitude", "-95"),
    ],
)
def test_a_methane_report_with_a_bad_section_is_refused(api, liaison, incident, field, value):
    body = methane_body(**{field: value})
    if field == "latitude":
        body["longitude"] = "18.0"
    with nothing_written():
        response = api(liaison).post(url(incident, "methane/"), body)
    assert_refused(response, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "  "),
        ("title", ...),
        ("owner_agency", ...),
        ("owner_agency", 999_999),
        ("due_at", "soon"),
    ],
)
def test_an_action_with_a_bad_field_is_refused(api, liaison, incident, fire, field, value):
    body = {"title": "Cordon", "owner_agency": fire.pk, field: value}
    body = {name: v for name, v in body.items() if v is not ...}
    with nothing_written():
        response = api(liaison).post(url(incident, "actions/"), body)
    assert_refused(response, field)


def test_an_action_belongs_to_a_participating_agency_and_its_people(
    api, liaison, incident, fire, police, transport, oslo_police
):
    police_officer = UserFactory(agency=police)
    cases = [
        ("owner_agency", {"owner_agency": transport.pk}),
        ("owner_agency", {"owner_agency": oslo_police.pk}),
        ("owner", {"owner_agency": fire.pk, "owner": police_officer.pk}),
        ("owner", {"owner_agency": fire.pk, "owner": 999_999}),
    ]
    for field, extra in cases:
        with nothing_written():
            response = api(liaison).post(url(incident, "actions/"), {"title": "Cordon", **extra})
        assert_refused(response, field)


def test_an_action_cannot_stem_from_another_incidents_decision(
    api, commander, liaison, incident, police, fire
):
    other = incident_open(
        user=commander, title="Other", type="other", level=1, lead_agency=police,
        participating_agencies=[fire],
    )  # fmt: skip
    foreign = decision_record(incident_id=other.pk, author=liaison, **decision_fields())
    with nothing_written():
        response = api(liaison).post(
            url(incident, "actions/"),
            {"title": "Cordon", "owner_agency": fire.pk, "decision": foreign.pk},
        )
    assert_refused(response, "decision")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "finished"),
        ("status", None),
        ("status", ""),
        ("title", "  "),
        ("owner_agency", 999_999),
        ("due_at", "tomorrow-ish"),
    ],
)
def test_patching_an_action_with_a_bad_value_is_refused(api, liaison, incident, fire, field, value):
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    with nothing_written():
        response = api(liaison).patch(url(incident, f"actions/{action.pk}/"), {field: value})
    assert_refused(response, field)
    action.refresh_from_db()
    assert (action.status, action.title, action.updated_at) == (
        "open",
        "Cordon",
        action.created_at,
    )


def test_moving_an_action_to_an_agency_outside_the_incident_is_refused(
    api, liaison, incident, fire, transport
):
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    with nothing_written():
        response = api(liaison).patch(
            url(incident, f"actions/{action.pk}/"), {"owner_agency": transport.pk}
        )
    assert_refused(response, "owner_agency")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", "  "),
        ("text", ...),
        ("category", "gossip"),
        ("occurred_at", "later"),
    ],
)
def test_a_timeline_entry_with_a_bad_field_is_refused(api, liaison, incident, field, value):
    body = {"text": "Shots fired", field: value}
    body = {name: v for name, v in body.items() if v is not ...}
    with nothing_written():
        response = api(liaison).post(url(incident, "timeline/"), body)
    assert_refused(response, field)


def test_a_timeline_entry_cannot_happen_in_the_future(api, liaison, incident):
    with nothing_written():
        response = api(liaison).post(
            url(incident, "timeline/"),
            {"text": "Shots fired", "occurred_at": iso(timezone.now() + timedelta(hours=1))},
        )
    assert_refused(response, "occurred_at")


# --- Malformed bodies --------------------------------------------------------------------------


@pytest.fixture
def write_urls(incident, liaison, fire):
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    return [
        ("post", "/api/v1/incidents/"),
        ("post", url(incident, "transition/")),
        ("post", url(incident, "decisions/")),
        ("post", url(incident, "methane/")),
        ("post", url(incident, "actions/")),
        ("patch", url(incident, f"actions/{action.pk}/")),
        ("post", url(incident, "timeline/")),
        ("post", "/api/v1/agencies/"),
        ("post", "/api/v1/users/"),
        ("post", "/api/v1/auth/token/"),
    ]


@pytest.mark.parametrize(
    "body", ['{"title": ', "not json at all", "[1, 2, 3]", "null", '"a string"', "\ufeff{}"]
)
def test_a_malformed_json_body_is_a_bad_request(api, incident, write_urls, body):
    superuser = UserFactory(agency=None, is_superuser=True, is_staff=True)
    client = api(superuser)
    for method, target in write_urls:
        with nothing_written():
            response = getattr(client, method)(target, body, content_type="application/json")
        assert response.status_code == 400, (target, body, response.status_code)
        assert response.data


def test_an_unsupported_media_type_is_refused_not_a_crash(api, commander, incident):
    response = api(commander).post(
        url(incident, "transition/"), b"<to>activated</to>", content_type="application/xml"
    )

    assert response.status_code == 415
    assert Incident.objects.get(pk=incident.pk).status == "reported"


def test_nul_characters_are_refused(api, liaison, incident):
    with nothing_written():
        response = api(liaison).post(url(incident, "timeline/"), {"text": "Shots\x00 fired"})
    assert_refused(response, "text")


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/incidents/?level=99999999999999999999",
        "/api/v1/incidents/?is_exercise=perhaps",
        "/api/v1/incidents/?is_exercise=yes",
        "/api/v1/agencies/?is_active=perhaps",
        "/api/v1/users/?is_active=2",
        "/api/v1/agencies/?city=abc",
        "/api/v1/users/?agency=abc",
    ],
)
def test_bad_filters_are_bad_requests(api, commander, incident, query):
    response = api(commander).get(query)

    assert response.status_code == 400
    assert query.split("?")[1].split("=")[0] in response.data


@pytest.mark.parametrize("bad_id", ["9" * 30, "abc", "0"])
def test_ids_that_cannot_exist_are_simply_not_found(api, commander, liaison, incident, bad_id):
    for method, target in [
        ("get", f"/api/v1/incidents/{bad_id}/"),
        ("post", f"/api/v1/incidents/{bad_id}/transition/"),
        ("get", url(incident, f"decisions/{bad_id}/")),
        ("get", url(incident, f"actions/{bad_id}/")),
        ("patch", url(incident, f"actions/{bad_id}/")),
        ("get", url(incident, f"methane/{bad_id}/")),
        ("get", url(incident, f"timeline/{bad_id}/")),
        ("get", f"/api/v1/agencies/{bad_id}/"),
        ("get", f"/api/v1/users/{bad_id}/"),
    ]:
        with nothing_written():
            response = getattr(api(commander), method)(target, {"to": "activated"})
        assert response.status_code == 404, (target, response.status_code)
    if bad_id.isdigit():
        huge_incident = f"/api/v1/incidents/{bad_id}/decisions/"
        assert api(liaison).get(huge_incident).status_code == 404


# --- Never a 500 -------------------------------------------------------------------------------

ODD_VALUES = [
    None,
    "",
    [],
    {},
    [[]],
    [{"a": 1}],
    {"a": 1},
    10**30,
    -(10**30),
    -1,
    1.5,
    True,
    "x" * 5000,
    "NaN",
    "Infinity",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-12:00",
]


@pytest.fixture
def every_write(incident, liaison, commander, fire, police):
    """(method, url, a valid body, who may send it) for every write of the API."""
    action = action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    administrator = UserFactory(agency=police, roles=[Role.ADMINISTRATOR])
    return [
        ("post", "/api/v1/incidents/", incident_body(police), commander),
        ("post", url(incident, "transition/"), {"to": "activated"}, commander),
        (
            "post",
            url(incident, "decisions/"),
            decision_body(
                agreed_by=[fire.pk],
                dissents=[{"agency": police.pk, "statement": "No."}],
                supersedes=entry.pk,
                review_by=iso(timezone.now() + timedelta(hours=1)),
                late_entry_reason="",
                marking="AMBER",
            ),
            liaison,
        ),
        (
            "post",
            url(incident, "methane/"),
            methane_body(latitude="59.3", longitude="18.0", casualties_p1=1, casualties_notes=""),
            liaison,
        ),
        (
            "post",
            url(incident, "actions/"),
            {
                "title": "Cordon",
                "description": "Inner",
                "owner_agency": fire.pk,
                "owner": liaison.pk,
                "due_at": iso(timezone.now()),
                "decision": entry.pk,
                "marking": "AMBER",
            },
            liaison,
        ),
        (
            "patch",
            url(incident, f"actions/{action.pk}/"),
            {"status": "done", "title": "Cordon", "owner_agency": fire.pk, "due_at": None},
            liaison,
        ),
        (
            "post",
            url(incident, "timeline/"),
            {"text": "Shots", "occurred_at": None, "category": "information", "marking": "GREEN"},
            liaison,
        ),
        (
            "post",
            "/api/v1/agencies/",
            {"name": "New", "short_name": "NEW", "type": "police", "city": police.city_id},
            administrator,
        ),
        (
            "post",
            "/api/v1/users/",
            {
                "username": "newbie",
                "agency": fire.pk,
                "roles": ["observer"],
                "email": "a@example.org",
                "password": "a long and unusual passphrase 42",
            },
            administrator,
        ),
        ("post", "/api/v1/auth/token/", {"username": "gold", "password": "x"}, None),
    ]


def test_odd_values_in_any_field_never_cause_a_server_error(api, every_write):
    failures = []
    for method, target, body, user in every_write:
        client = api(user)
        for field in body:
            for value in ODD_VALUES:
                try:
                    response = getattr(client, method)(target, {**body, field: value})
                except Exception as exc:  # the test client re-raises what would be a 500
                    failures.append((target, field, repr(value)[:40], repr(exc)[:120]))
                    continue
                if response.status_code >= 500:
                    failures.append((target, field, repr(value)[:40], response.status_code))
    assert failures == []


def test_odd_query_parameters_never_cause_a_server_error(api, commander, incident):
    lists = [
        "/api/v1/incidents/",
        url(incident, "decisions/"),
        url(incident, "methane/"),
        url(incident, "actions/"),
        url(incident, "timeline/"),
        url(incident, "events/"),
        "/api/v1/agencies/",
        "/api/v1/users/",
    ]
    names = ["page", "page_size", "ordering", "status", "type", "level", "is_exercise", "after"]
    names += ["limit", "agency", "owner_agency", "city", "is_active"]
    values = ["abc", "-1", "99999999999999999999999", "%00", "1.5"]
    failures = []
    client = api(commander)
    for target in lists:
        for name in names:
            for value in values:
                response = client.get(f"{target}?{name}={value}")
                if response.status_code not in (200, 400, 404):
                    failures.append((target, name, value, response.status_code))
    assert failures == []
