"""Shared fixtures: a city with agencies and people, an incident, and authenticated API clients.

The suite runs against real PostgreSQL and Redis (``make test`` provisions both when
``DATABASE_URL`` / ``REDIS_URL`` are not given).
"""

import os

import pytest
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient

from coordination.models import AgencyType
from coordination.roles import Role
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open

from .auth import SignedInAsyncClient, SignedInClient
from .factories import AgencyFactory, CityFactory, UserFactory
from .live import live_runtime  # noqa: F401  (a fixture)
from .servers import asgi_server  # noqa: F401  (a fixture)
from .workers import alerting_broker, alerting_env, alerting_processes, http_sink, smtp_sink  # noqa: F401

# Consumers and threads in the tests open their own connections; persistent ones would outlive the
# test and keep the test database busy at teardown.
for database in connections.settings.values():
    database["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Factories hash a password per user; the production hasher would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def board_updates_at_once(settings):
    # Deliveries in this process publish their board change at once, not from a timer thread
    # (which would query outside the test's transaction); workers coalesce as deployed.
    settings.ALERT_BOARD_COALESCE_MS = 0


@pytest.fixture(autouse=True)
def fresh_cache():
    # API throttling counts requests in the cache; each test starts with none counted.
    cache.clear()
    yield
    cache.clear()


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
def oslo():
    """Another city of the network."""
    return CityFactory(name="Oslo", code="OSL", time_zone="Europe/Oslo")


@pytest.fixture
def oslo_police(oslo):
    return AgencyFactory(city=oslo, name="Oslo Police", short_name="OPD")


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
def client():
    """A Django test client whose ``force_login`` signs in fully, second factor included."""
    return SignedInClient()


@pytest.fixture
def async_client():
    """The async test client, likewise signed in fully by ``aforce_login``."""
    return SignedInAsyncClient()


@pytest.fixture
def api():
    """Return an API client signed in as the given user: ``api(user)``."""

    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        return client

    return client_for


CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium; `make test` installs it


def pytest_collection_modifyitems(config, items):
    """Run browser tests last: while Chromium is open, Django's async-safety check is relaxed for
    the test thread, and no other test should run without that check."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium driven by Playwright, shared by the session's browser tests.

    Playwright runs an event loop in the test thread, so the test's own ORM calls (fixtures, the
    live server's data) need Django's async-safety check relaxed while it is open.
    """
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


# The tests' own tools run as page script that the Content Security Policy refuses: axe-core is
# injected as an inline script, and wait_for_function compiles its predicate with eval. So the
# tests' browsers ignore the policy, except where the policy is what is tested
# (tests/test_security_csp.py opens its tabs with ``bypass_csp=False``).
BYPASS_CSP_FOR_TEST_TOOLS = True


@pytest.fixture
def page(browser):
    """A fresh browser tab."""
    context = browser.new_context(bypass_csp=BYPASS_CSP_FOR_TEST_TOOLS)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def signed_in(browser, request):
    """Open a browser tab signed in as a user: ``signed_in(user)`` (on the session's ASGI server)
        or ``signed_in(user, server=...)``. Each call is its own browser context, as two people on
        two machines would be. The session is made server-side, its second factor verified where the
    user has or needs one; no password or code is typed."""
    contexts = []

    def open_as(
        user, server=None, javascript: bool = True, bypass_csp: bool = BYPASS_CSP_FOR_TEST_TOOLS
    ):
        server = server or request.getfixturevalue("asgi_server")
        client = SignedInClient()
        client.force_login(user)
        context = browser.new_context(
            base_url=server.url, java_script_enabled=javascript, bypass_csp=bypass_csp
        )
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}]
        )
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        return tab

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture
def oversight(transport):
    """A member of the city's oversight committee (lessons), from an agency outside the incident."""
    return UserFactory(username="oversight", agency=transport, roles=[Role.OVERSIGHT])
