"""Shared fixtures: a city with agencies and people, an incident, and authenticated API clients.

The suite runs against real PostgreSQL and Redis (``make test`` provisions both when
``DATABASE_URL`` / ``REDIS_URL`` are not given).
"""

import pytest
from django.db import connections
from rest_framework.test import APIClient

from coordination.models import AgencyType
from coordination.roles import Role
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open

from .factories import AgencyFactory, CityFactory, UserFactory

# Consumers and threads in the tests open their own connections; persistent ones would outlive the
# test and keep the test database busy at teardown.
for database in connections.settings.values():
    database["CONN_MAX_AGE"] = 0


@pytest.fixture
def city():
    return CityFactory(name="Stockholm", code="STO", time_zone="Europe/Stockholm")


@pytest.fixture
def police(city):
    return AgencyFactory(city=city, name="Police", short_name="POL", type=AgencyType.POLICE)


@pytest.fixture
def fire(city):
    return AgencyFactory(city=city, name="Fire", short_name="FRS", type=AgencyType.FIRE_RESCUE)


@pytest.fixture
def transport(city):
    """An agency of the same city that does not take part in the incident."""
    return AgencyFactory(city=city, name="Transport", short_name="TRN", type=AgencyType.TRANSPORT)


@pytest.fixture
def commander(police):
    return UserFactory(username="gold", agency=police, roles=[Role.STRATEGIC_COMMANDER])


@pytest.fixture
def liaison(fire):
    return UserFactory(username="fire-liaison", agency=fire, roles=[Role.LIAISON_OFFICER])


@pytest.fixture
def outsider(transport):
    """A liaison officer whose agency does not participate in the incident."""
    return UserFactory(username="transport-liaison", agency=transport, roles=[Role.LIAISON_OFFICER])


@pytest.fixture
def observer(police):
    return UserFactory(username="observer", agency=police, roles=[Role.OBSERVER])


@pytest.fixture
def administrator(transport):
    return UserFactory(username="admin", agency=transport, roles=[Role.ADMINISTRATOR])


@pytest.fixture
def incident(commander, police, fire):
    return incident_open(
        user=commander,
        title="Armed attack at central station",
        type=IncidentType.MARAUDING_TERRORIST_ATTACK,
        level=IncidentLevel.LEVEL_3,
        lead_agency=police,
        participating_agencies=[fire],
    )


@pytest.fixture
def api():
    """Return an API client signed in as the given user: ``api(user)``."""

    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        return client

    return client_for
