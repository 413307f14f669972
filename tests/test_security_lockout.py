"""Brute force: repeated failed sign-ins lock a username out from that address, on every way in."""

from datetime import timedelta

import pytest
import time_machine
from django.db.models import Max
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from coordination.models import AuditEntry

from .factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def person(police):
    return UserFactory(username="duty-officer", agency=police)


def page_sign_in(client, password, path="/accounts/login/"):
    return client.post(path, {"username": "duty-officer", "password": password})


def test_the_fifth_failure_locks_the_sign_in_page_and_says_for_how_long(person):
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(4):
        assert page_sign_in(client, "wrong").status_code == 200

    locked = page_sign_in(client, "wrong")

    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    body = locked.content.decode()
    assert "Sign-in locked" in body
    assert "15 minutes" in body
    # While locked, even the right password is refused, and the lock is not extended by it.
    assert page_sign_in(client, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lock_ends_after_the_cool_off(person):
    client = Client(REMOTE_ADDR="10.0.0.5")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            page_sign_in(client, "wrong")
        clock.shift(timedelta(minutes=14))
        still = page_sign_in(client, PASSWORD)
        assert still.status_code == 429
        assert "1 minute" in still.content.decode()
        clock.shift(timedelta(minutes=1, seconds=1))
        assert page_sign_in(client, PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(person.pk)


def test_the_lock_is_per_username_and_address(person, police):
    UserFactory(username="someone-else", agency=police)
    attacker = Client(REMOTE_ADDR="10.0.0.66")
    for _ in range(5):
        page_sign_in(attacker, "wrong")
    assert page_sign_in(attacker, PASSWORD).status_code == 429

    # The person at their own desk still signs in, and the attacker's address can still be
    # used with another name.
    assert page_sign_in(Client(REMOTE_ADDR="10.0.0.5"), PASSWORD).status_code == 302
    other = attacker.post("/accounts/login/", {"username": "someone-else", "password": PASSWORD})
    assert other.status_code == 302


def test_a_success_before_the_limit_clears_the_count(person):
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(4):
        page_sign_in(client, "wrong")
    assert page_sign_in(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert page_sign_in(client, "wrong").status_code == 200


def test_the_limit_is_a_setting(person, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client(REMOTE_ADDR="10.0.0.5")
    assert page_sign_in(client, "wrong").status_code == 200
    assert page_sign_in(client, "wrong").status_code == 429


def test_the_admin_sign_in_is_the_locking_sign_in_page(police):
    # The admin has no password form of its own: it sends people to the platform's sign-in, so
    # the same lock (and second factor) guards it.
    UserFactory(username="duty-officer", agency=police, is_staff=True)
    client = Client(REMOTE_ADDR="10.0.0.5")
    response = page_sign_in(client, "wrong", "/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    for _ in range(4):
        assert page_sign_in(client, "wrong", "/accounts/login/?next=/admin/").status_code == 200
    assert page_sign_in(client, "wrong", "/accounts/login/?next=/admin/").status_code == 429
    assert page_sign_in(client, PASSWORD, "/accounts/login/?next=/admin/").status_code == 429


def test_the_token_endpoint_answers_429_json_when_locked(person):
    client = APIClient(REMOTE_ADDR="10.0.0.5")
    for _ in range(4):
        response = client.post(
            "/api/v1/auth/token/", {"username": "duty-officer", "password": "wrong"}
        )
        assert response.status_code == 400

    locked = client.post("/api/v1/auth/token/", {"username": "duty-officer", "password": "wrong"})
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/json"
    assert "locked for 15 minutes" in locked.json()["detail"]
    assert locked.json()["retry_after"] == 15 * 60
    assert int(locked["Retry-After"]) == 15 * 60

    right = client.post("/api/v1/auth/token/", {"username": "duty-officer", "password": PASSWORD})
    assert right.status_code == 429
    assert "token" not in right.json()


def test_a_lockout_is_audited(person):
    # Audit entries outlive a test's rollback: count only this test's.
    before = AuditEntry.objects.aggregate(Max("sequence"))["sequence__max"] or 0
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(5):
        page_sign_in(client, "wrong")
    page_sign_in(client, PASSWORD)

    entries = AuditEntry.objects.filter(action="auth.locked_out", sequence__gt=before).order_by(
        "sequence"
    )
    # The locking failure and the refused attempt after it.
    assert entries.count() == 2
    assert {entry.username for entry in entries} == {"duty-officer"}
    assert entries[0].ip_address == "10.0.0.5"
    assert entries[0].detail["path"] == "/accounts/login/"


def test_an_absurdly_long_username_is_a_clear_refusal_not_an_error(person):
    client = APIClient(REMOTE_ADDR="10.0.0.5")
    for _ in range(6):
        response = client.post("/api/v1/auth/token/", {"username": "x" * 5000, "password": "no"})
        assert response.status_code in {400, 429}
    assert response.status_code == 429


def test_a_sign_in_without_a_request_is_not_counted_or_refused(person):
    # The test client's login() passes no request: there is no client address to lock out.
    client = Client()
    for _ in range(6):
        assert client.login(username="duty-officer", password="wrong") is False
    assert client.login(username="duty-officer", password=PASSWORD) is True
