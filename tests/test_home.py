"""The landing page: sign in, then the incidents the user's agency takes part in."""

import pytest
from django.urls import reverse

from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_members_see_their_incidents_and_outsiders_do_not(client, incident, liaison, outsider):
    client.force_login(liaison)
    assert incident.reference.encode() in client.get("/").content

    client.force_login(outsider)
    page = client.get("/").content
    assert incident.reference.encode() not in page
    assert b"No incidents involve your agency." in page


def test_exercises_say_exercise_and_times_are_local(client, commander, police):
    exercise = incident_open(
        user=commander,
        title="Table-top",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        is_exercise=True,
    )
    client.force_login(commander)
    page = client.get("/?show=exercises").content.decode()  # never mixed with real incidents
    row = page[page.index(exercise.reference) :]
    assert 'class="exercise">EXERCISE' in row[:300]
    assert " CET" in page or " CEST" in page  # Stockholm time, not UTC
