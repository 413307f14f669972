"""The incident list: what the user may see, filtered; real incidents and exercises apart."""

import pytest

from incidents.models import IncidentLevel, IncidentStatus, IncidentType
from incidents.services import incident_open, incident_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def incidents(commander, police, fire, incident):
    bomb = incident_open(
        user=commander,
        title="Suspect device on the bridge",
        type=IncidentType.IED,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        location_description="Västerbron",
    )
    incident_transition(incident_id=bomb.pk, user=commander, to=IncidentStatus.ACTIVATED)
    drill = incident_open(
        user=commander,
        title="Stadium evacuation drill",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        is_exercise=True,
    )
    return {"attack": incident, "bomb": bomb, "drill": drill}


def listed(client, query: str = "") -> str:
    response = client.get(f"/incidents/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_real_incidents_by_default_and_exercises_only_on_request(client, commander, incidents):
    client.force_login(commander)

    page = listed(client)
    assert incidents["attack"].reference in page and incidents["bomb"].reference in page
    assert incidents["drill"].reference not in page
    assert "EXERCISE" not in page

    page = listed(client, "?show=exercises")
    assert incidents["drill"].reference in page
    assert incidents["attack"].reference not in page and incidents["bomb"].reference not in page
    assert 'class="exercise">EXERCISE' in page


def test_the_list_shows_status_level_lead_agency_and_last_change(client, commander, incidents):
    client.force_login(commander)
    page = listed(client)
    bomb_row = page[page.index(incidents["bomb"].reference) :].split("</tr>")[0]
    assert "Activated" in bomb_row and "<td>2</td>" in bomb_row and "POL" in bomb_row
    assert f'href="/incidents/{incidents["bomb"].pk}/"' in page
    # Most recently changed first: the bomb was transitioned after the attack was opened.
    assert page.index(incidents["bomb"].reference) < page.index(incidents["attack"].reference)
    assert " CET" in bomb_row or " CEST" in bomb_row


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("?status=activated", "bomb", "attack"),
        ("?status=reported", "attack", "bomb"),
        ("?level=3", "attack", "bomb"),
        ("?type=ied", "bomb", "attack"),
        ("?q=bridge", "bomb", "attack"),
        ("?q=V%C3%A4sterbron", "bomb", "attack"),
        ("?q=STO-", "attack", "drill"),
    ],
)
def test_filters(client, commander, incidents, query, shown, hidden):
    client.force_login(commander)
    page = listed(client, query)
    assert incidents[shown].reference in page
    assert incidents[hidden].reference not in page


def test_no_match_says_so_and_bad_filter_values_are_ignored_not_500(client, commander, incidents):
    client.force_login(commander)
    assert "No incidents match these filters." in listed(client, "?q=nothing-like-this")
    page = listed(client, "?level=banana&status=unknown&page=999")
    assert "Select a valid choice" in page


def test_outsiders_see_nothing_of_the_incident(client, outsider, incidents):
    client.force_login(outsider)
    page = listed(client)
    assert "No incidents involve your agency." in page
    for incident in incidents.values():
        assert incident.reference not in page


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/incidents/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_bad_filter_keeps_exercises_apart_from_real_incidents(client, commander, incidents):
    client.force_login(commander)
    page = listed(client, "?show=exercises&level=banana")
    assert incidents["drill"].reference in page
    assert incidents["attack"].reference not in page
    assert "Select a valid choice" in page
