"""In a real browser: an administrator sees who is on call, adds cover in local time, and the
rota pages pass an accessibility check."""

from datetime import date, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from comms.models import RotaOverride
from coordination.roles import Role

from .auth import browser_sign_in
from .factories import RotaFactory, ShiftFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def sign_in(page, live_server, user) -> None:
    browser_sign_in(page, live_server.url, user, "correct horse battery staple")
    page.wait_for_url(f"{live_server.url}/")


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


def test_an_administrator_adds_cover_and_sees_it_on_call(live_server, page, police, administrator):
    anna = UserFactory(
        username="anna",
        first_name="Anna",
        last_name="Berg",
        agency=police,
        roles=[Role.DUTY_OFFICER],
    )
    bob = UserFactory(
        username="bob", first_name="Bob", last_name="Ek", agency=police, roles=[Role.DUTY_OFFICER]
    )
    rota = RotaFactory(agency=police, name="Strategic duty officer")
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 1, 5),
        start_time=time(8),
        duration=timedelta(days=7),
        recurrence="weekly",
    )
    sign_in(page, live_server, administrator)

    page.goto(f"{live_server.url}/rotas/")
    row = page.locator("tr").filter(has_text="Strategic duty officer")
    assert "Anna Berg" in row.inner_text()
    assert axe_violations(page) == []

    page.click("text=Strategic duty officer")
    assert axe_violations(page) == []
    zone = police.city.zone
    start = (timezone.now() - timedelta(minutes=5)).astimezone(zone)
    end = start + timedelta(hours=3)
    page.select_option("#id_cover-user", str(bob.pk))
    page.fill("#id_cover-starts_at", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_cover-ends_at", end.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_cover-reason", "Anna in court")
    with page.expect_navigation():
        page.click("button:text-is('Add cover')")

    assert "Cover added." in page.content()
    on_call = page.locator("table").first.inner_text()
    assert "Bob Ek" in on_call and "(cover)" in on_call
    cover = RotaOverride.objects.get()
    assert cover.starts_at == start.replace(second=0, microsecond=0)
