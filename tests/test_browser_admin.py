"""In a real browser: an administrator signs in (password, then a code) and finds the exercise;
the API docs render."""

import pytest

from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open

from .auth import authenticator_for, totp_now
from .factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_administrator_signs_in_and_finds_the_exercise(live_server, page, commander, police):
    exercise = incident_open(
        user=commander,
        title="Table-top: vehicle attack on the bridge",
        type=IncidentType.VEHICLE_AS_WEAPON,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        is_exercise=True,
    )
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True, roles=[])
    device = authenticator_for(root)

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    # The admin is for sessions verified by a second factor.
    page.fill("#id_code", totp_now(device))
    page.click("main button[type=submit]")
    page.click("a[href='/admin/incidents/incident/']")

    row = page.locator("#result_list tbody tr").filter(has_text=exercise.reference)
    assert "Table-top: vehicle attack on the bridge" in row.inner_text()
    page.click(f"text={exercise.reference}")
    assert "EXERCISE" in page.locator("#content").inner_text()


def test_api_docs_render_from_local_assets(live_server, page):
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "CTPN coordination API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-tag").count() > 0
