"""In a real browser: a liaison officer signs in, sees the exercise marked EXERCISE, signs out."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_liaison_signs_in_sees_the_exercise_and_signs_out(live_server, page, incident, liaison):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url

    page.fill("#id_username", liaison.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")

    row = page.locator("tbody tr").filter(has_text=incident.reference)
    assert "Armed attack at central station" in row.inner_text()
    assert page.locator("header").inner_text().count("FRS") == 1

    page.click("text=Sign out")
    page.wait_for_url("**/accounts/login/")
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
