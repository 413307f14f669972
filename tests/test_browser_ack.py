"""On a phone: the duty officer opens the one-tap link from the alert e-mail (no session) and
answers "attending, ETA 20 min" with one tap on the ETA."""

from pathlib import Path

import pytest

from comms.models import Acknowledgement, Channel, Notification
from comms.services import ack_token, activation_send, notification_deliver
from coordination.roles import Role

from .conftest import BYPASS_CSP_FOR_TEST_TOOLS
from .factories import UserFactory
from .live import session_cookie
from .workers import contact, rota_on_call

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"

# Pixel 7 as Playwright describes it, without reaching into Playwright's device list.
PHONE = {
    "viewport": {"width": 412, "height": 915},
    "device_scale_factor": 2.625,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36"
    ),
}


@pytest.fixture
def phone(browser):
    context = browser.new_context(**PHONE, bypass_csp=BYPASS_CSP_FOR_TEST_TOOLS)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def test_attending_eta_20_in_one_tap_on_a_phone(asgi_server, phone, commander, police):
    officer = UserFactory(
        username="duty",
        first_name="Dana",
        last_name="Lind",
        agency=police,
        roles=[Role.DUTY_OFFICER],
    )
    contact(officer, "email", "duty@example.org")
    rota_on_call(police, primary=officer)
    activation = activation_send(
        user=commander,
        message="Strategic cell to City Hall at 14:00",
        agencies=[police],
        is_exercise=True,
    )
    email = Notification.objects.get(activation=activation, channel=Channel.EMAIL)

    phone.goto(f"{asgi_server.url}/ack/{ack_token(email)}/")

    assert phone.locator(".exercise-banner").inner_text() == "EXERCISE EXERCISE EXERCISE"
    assert "Strategic cell to City Hall at 14:00" in phone.locator(".message").inner_text()
    assert not Acknowledgement.objects.exists()  # opening the link answers nothing
    eta = phone.get_by_role("button", name="Attending, ETA 20 min")
    box = eta.bounding_box()
    assert box is not None and box["height"] >= 48  # a comfortable touch target
    phone.add_script_tag(path=str(AXE))
    serious = phone.evaluate(
        "async () => (await axe.run(document)).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id)"
    )
    assert serious == []

    eta.tap()

    assert phone.locator("#answer").inner_text() == "Recorded: Attending, ETA 20 min"
    answer = Acknowledgement.objects.get()
    assert (answer.user, answer.response, answer.eta_minutes, answer.via) == (
        officer,
        "attending",
        20,
        "link",
    )
    phone.reload()
    assert phone.locator("#answer").inner_text() == "Already answered: Attending, ETA 20 min"
    assert phone.get_by_role("button").count() == 0


def test_an_in_app_alert_pops_up_and_is_answered_from_the_toast(
    asgi_server, browser, commander, police
):
    officer = UserFactory(username="duty", agency=police, roles=[Role.DUTY_OFFICER])
    rota_on_call(police, primary=officer)
    context = browser.new_context(bypass_csp=BYPASS_CSP_FOR_TEST_TOOLS)
    context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": session_cookie(officer).split("=", 1)[1],
                "url": asgi_server.url,
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{asgi_server.url}/alerts/")
        page.wait_for_function("window.ctpnAlerts && window.ctpnAlerts.listening")

        activation = activation_send(
            user=commander, message="Gold group at 15:00", agencies=[police]
        )
        in_app = Notification.objects.get(activation=activation, channel=Channel.IN_APP)
        assert notification_deliver(notification_id=in_app.pk) == "sent"

        toast = page.locator(".ctpn-alert-toast")
        toast.wait_for()
        assert "Gold group at 15:00" in toast.inner_text()
        toast.get_by_role("button", name="Attending, ETA 20 min").click()
        page.get_by_text("Recorded: Attending, ETA 20 min").wait_for()
    finally:
        context.close()

    answer = Acknowledgement.objects.get()
    assert (answer.user, answer.eta_minutes, answer.via) == (officer, 20, "in_app")
    in_app.refresh_from_db()
    assert in_app.delivered_at is not None  # the page reported the alert as shown
