"""Services are the authority on what may be written, whatever edge calls them (API, pages,
commands): implausible input is a ValidationError naming the field, never a crash."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from coordination.models import User
from coordination.roles import Role
from coordination.services import action_create, user_create
from incidents.models import Incident, IncidentLevel, IncidentType
from incidents.services import incident_open

from .factories import AgencyFactory, CityFactory, UserFactory

pytestmark = pytest.mark.django_db

YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC)


def test_an_incident_opened_in_year_one_is_refused_not_crashed():
    # West of Greenwich, year 1 cannot even be converted to the city's local time.
    city = CityFactory(code="NYC", time_zone="America/New_York")
    agency = AgencyFactory(city=city)
    opener = UserFactory(agency=agency, roles=[Role.DUTY_OFFICER])

    with pytest.raises(ValidationError) as refused:
        incident_open(
            user=opener,
            title="Typing slip",
            type=IncidentType.OTHER,
            level=IncidentLevel.LEVEL_1,
            lead_agency=agency,
            opened_at=YEAR_ONE,
        )
    assert "opened_at" in refused.value.message_dict
    assert not Incident.objects.exists()


def test_an_inactive_agency_cannot_be_made_a_participant(commander, police):
    closed_down = AgencyFactory(city=police.city, is_active=False)
    with pytest.raises(ValidationError) as refused:
        incident_open(
            user=commander,
            title="Attack",
            type=IncidentType.OTHER,
            level=IncidentLevel.LEVEL_1,
            lead_agency=police,
            participating_agencies=[closed_down],
        )
    assert "participating_agencies" in refused.value.message_dict


def test_an_action_due_in_year_one_is_refused(incident, liaison, fire):
    with pytest.raises(ValidationError) as refused:
        action_create(
            incident_id=incident.pk,
            user=liaison,
            title="Cordon",
            owner_agency=fire,
            due_at=YEAR_ONE,
        )
    assert "due_at" in refused.value.message_dict


def test_a_new_user_follows_the_models_rules(police):
    administrator = UserFactory(agency=police, roles=[Role.ADMINISTRATOR])
    with pytest.raises(ValidationError) as refused:
        user_create(
            user=administrator,
            username="has spaces!",
            agency=police,
            roles=[Role.LOGGIST],
            email="x" * 250 + "@example.org",
        )
    assert {"username", "email"} <= set(refused.value.message_dict)
    assert not User.objects.filter(username="has spaces!").exists()
