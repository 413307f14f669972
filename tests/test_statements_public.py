"""The public page and Atom feed of a city's statements: no sign-in, only what was published
(CLEAR), newest first, superseded ones marked, never an exercise, and no internal field."""

import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from comms.statements import (
    statement_approve,
    statement_draft,
    statement_publish,
    statement_request_changes,
    statement_revise,
)
from coordination.roles import Role
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open, timeline_add

from .factories import UserFactory

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def police_comms(police):
    return UserFactory(
        username="secret-username-pc",
        first_name="SecretFirstName",
        last_name="SecretLastName",
        agency=police,
        roles=[Role.COMMUNICATIONS_LEAD],
    )


@pytest.fixture
def fire_comms(fire):
    return UserFactory(username="secret-username-fc", agency=fire, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def world(incident, police_comms, fire_comms, fire, commander, police):
    """Two published statements (the first superseded), a draft, an exercise statement, and a
    secret planted in every internal field."""
    incident.title = "SECRET-INCIDENT-TITLE"
    incident.location_description = "SECRET-LOCATION"
    incident.save()
    timeline_add(incident_id=incident.pk, user=commander, text="SECRET-TIMELINE")

    first = statement_draft(
        incident_id=incident.pk,
        user=police_comms,
        headline="First public line",
        body="SECRET-FIRST-DRAFT-WORDING",
        approver_agencies=[fire],
    )
    statement_request_changes(
        statement_id=first.pk, user=fire_comms, comment="SECRET-REVIEW-COMMENT"
    )
    statement_revise(
        statement_id=first.pk, user=police_comms, headline="First public line", body="Stay away."
    )
    statement_approve(statement_id=first.pk, user=fire_comms, comment="SECRET-APPROVAL-COMMENT")
    statement_publish(statement_id=first.pk, user=police_comms)

    second = statement_draft(
        incident_id=incident.pk, user=police_comms, headline="Second public line", body="Reopened."
    )
    statement_publish(statement_id=second.pk, user=police_comms)
    statement_draft(
        incident_id=incident.pk, user=police_comms, headline="SECRET-DRAFT", body="SECRET-DRAFT"
    )

    exercise = incident_open(
        user=commander,
        title="Exercise",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        is_exercise=True,
    )
    drill = statement_draft(
        incident_id=exercise.pk, user=police_comms, headline="SECRET-EXERCISE", body="Drill."
    )
    statement_publish(statement_id=drill.pk, user=police_comms)
    return {"first": first, "second": second}


SECRETS = [
    "SECRET",  # every planted string starts so
    "secret-username",
    "SecretFirstName",
    "SecretLastName",
    "STO-20",  # the incident reference
]


def test_the_public_page_needs_no_sign_in_and_shows_only_published_lines(world, city):
    response = Client().get("/public/sto/statements/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index("Second public line") < page.index("First public line")  # newest first
    assert f'id="statement-{world["first"].pk}" class="public-statement superseded"' in page
    assert "Superseded:" in page and "; current." in page
    assert "Stay away." in page and "Reopened." in page
    for secret in SECRETS:
        assert secret not in page, secret
    assert "Sign out" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_the_atom_feed_holds_the_same_statements_and_nothing_internal(world):
    response = Client().get("/public/STO/statements.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    body = response.content.decode()
    for secret in SECRETS:
        assert secret not in body, secret
    feed = ET.fromstring(response.content)  # noqa: S314 (our own response)
    titles = [entry.find(f"{ATOM}title").text for entry in feed.findall(f"{ATOM}entry")]
    assert titles == ["Second public line", "[Superseded] First public line"]
    ids = [entry.find(f"{ATOM}id").text for entry in feed.findall(f"{ATOM}entry")]
    assert len(set(ids)) == 2


def test_a_signed_in_partner_sees_the_same_public_page(world, client, police_comms):
    client.force_login(police_comms)
    page = client.get("/public/sto/statements/").content.decode()
    assert "SECRET-DRAFT" not in page and "SECRET-EXERCISE" not in page


def test_an_unknown_city_is_404_and_a_city_without_statements_says_so(world, oslo):
    assert Client().get("/public/zzz/statements/").status_code == 404
    assert Client().get("/public/zzz/statements.atom").status_code == 404
    empty = Client().get("/public/osl/statements/")
    assert empty.status_code == 200 and "No statements published." in empty.content.decode()
    assert "Stay away." not in empty.content.decode()


def test_the_public_page_answers_get_and_head_only(world):
    assert Client().head("/public/sto/statements/").status_code == 200
    assert Client().post("/public/sto/statements/").status_code == 405
