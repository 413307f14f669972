"""In a real browser, on the platform as deployed (uvicorn): a strategic commander signs in with
the password, sets up an authenticator app from the enrolment page, keeps the backup codes, and
reaches the dashboard with its live feed; next time the code is asked for after the password.
Both steps pass an accessibility check."""

from base64 import b32decode
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django_otp.plugins.otp_totp.models import TOTPDevice

from .auth import totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


def sign_in(page, server, user, path: str) -> None:
    page.goto(f"{server.url}{path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")


def test_a_commander_enrols_and_then_signs_in_with_a_code(
    browser, asgi_server, incident, commander
):
    # The server is its own process, with the real password hashers (not the tests' fast one).
    commander.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsersalt", iterations=1000)
    commander.save(update_fields=["password"])
    # The page's own policy stays on for the pages; only axe's injected script needs the bypass.
    context = browser.new_context(base_url=asgi_server.url, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, asgi_server, commander, f"/incidents/{incident.pk}/")
        page.wait_for_url("**/accounts/mfa/enrol/**")
        assert page.locator("figure.mfa-qr svg").count() == 1
        assert axe_violations(page) == []
        secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
        app = TOTPDevice(key=b32decode(secret).hex())

        page.fill("#id_code", totp_now(app))
        page.click("main button[type=submit]")
        page.wait_for_url("**/accounts/mfa/backup-codes/**")
        assert page.locator("#backup-codes li").count() == 10
        page.click("text=I have saved them: continue")
        page.wait_for_url(f"**/incidents/{incident.pk}/")
        assert incident.reference in page.locator("main").inner_text()
        page.wait_for_selector("#live-status[data-state=live]")  # the WebSocket let it in

        page.click("text=Sign out")
        page.wait_for_url("**/accounts/login/")
        sign_in(page, asgi_server, commander, "/incidents/")
        page.wait_for_url("**/accounts/mfa/verify/**")
        assert axe_violations(page) == []
        page.fill("#id_code", totp_now(app, steps_ahead=1))
        page.click("main button[type=submit]")
        page.wait_for_url("**/incidents/")
    finally:
        context.close()
