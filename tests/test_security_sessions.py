"""Sessions end after 30 minutes without a request and 12 hours after sign-in (configurable)."""

from datetime import timedelta
from importlib import import_module

import pytest
import time_machine
from django.conf import settings
from django.db.models import Max
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from coordination.models import AuditEntry

pytestmark = pytest.mark.django_db

LIST = "/incidents/"


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.fixture
def browser_as(clock):
    def signed_in(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return signed_in


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def test_the_list_path_is_a_signed_in_page(browser_as, liaison):
    assert reverse("pages:incident-list") == LIST
    assert browser_as(liaison).get(LIST).status_code == 200
    assert Client().get(LIST).status_code == 302


def test_activity_keeps_a_session_and_idleness_ends_it(browser_as, liaison, clock):
    client = browser_as(liaison)
    clock.shift(timedelta(minutes=29))
    assert client.get(LIST).status_code == 200
    clock.shift(timedelta(minutes=29))
    assert client.get(LIST).status_code == 200

    clock.shift(timedelta(minutes=30, seconds=30))
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={LIST}"
    assert signed_in_user_id(client) is None
    page = client.get(response["Location"]).content.decode()
    assert "signed out after 30 minutes without activity" in page


def test_coming_back_long_after_is_told_the_session_ended(browser_as, liaison, clock):
    client = browser_as(liaison)
    clock.shift(timedelta(hours=3))

    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={LIST}"
    page = client.get(response["Location"]).content.decode()
    assert "Your session has ended (sessions end after 30 minutes without activity" in page
    # Said once: the ended session's cookie is gone.
    assert "Your session has ended" not in client.get(response["Location"]).content.decode()


def test_a_session_ends_twelve_hours_after_sign_in_however_active(browser_as, liaison, clock):
    client = browser_as(liaison)
    for _ in range(35):  # 11 h 40 min of steady work
        clock.shift(timedelta(minutes=20))
        assert client.get(LIST).status_code == 200
    clock.shift(timedelta(minutes=21))

    response = client.get(LIST)

    assert response.status_code == 302
    assert signed_in_user_id(client) is None
    page = client.get(response["Location"]).content.decode()
    assert "12 hours after signing in" in page


def test_the_api_answers_401_to_an_ended_session(browser_as, liaison, clock):
    client = browser_as(liaison)
    assert client.get("/api/v1/me/").status_code == 200
    clock.shift(timedelta(minutes=31))

    response = client.get("/api/v1/me/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "Sign in again" in response.json()["detail"]
    assert client.get("/api/v1/me/").status_code in {401, 403}


def test_a_token_still_works_alongside_an_ended_session(browser_as, liaison, clock):
    client = browser_as(liaison)
    token = Token.objects.create(user=liaison)
    clock.shift(timedelta(minutes=31))

    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert signed_in_user_id(client) is None


def test_a_panel_refresh_is_sent_to_the_sign_in_page_whole(browser_as, liaison, clock):
    client = browser_as(liaison)
    clock.shift(timedelta(minutes=31))
    response = client.get(LIST, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_the_limits_are_settings(browser_as, liaison, clock, settings):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 300
    settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS = 900
    client = browser_as(liaison)
    clock.shift(timedelta(minutes=4))
    assert client.get(LIST).status_code == 200
    clock.shift(timedelta(minutes=5, seconds=30))
    response = client.get(LIST)
    assert response.status_code == 302
    assert "after 5 minutes without activity" in client.get(response["Location"]).content.decode()


def test_the_session_store_expires_an_idle_session_for_websocket_re_checks(
    browser_as, liaison, clock
):
    client = browser_as(liaison)
    key = client.session.session_key
    store = import_module(settings.SESSION_ENGINE).SessionStore
    clock.shift(timedelta(minutes=29))
    assert store(key).get("_auth_user_id") == str(liaison.pk)

    clock.shift(timedelta(minutes=32))

    # What the live consumers load when they re-check a connection: nothing, so they close it.
    assert store(key).get("_auth_user_id") is None


def test_signing_in_again_restarts_the_clocks(liaison, clock):
    client = Client()
    client.force_login(liaison)
    clock.shift(timedelta(hours=11, minutes=50))
    client.force_login(liaison)
    clock.shift(timedelta(minutes=20))
    assert client.get(LIST).status_code == 200


def test_an_ended_session_is_audited(browser_as, liaison, clock):
    before = AuditEntry.objects.aggregate(Max("sequence"))["sequence__max"] or 0
    client = browser_as(liaison)
    clock.shift(timedelta(minutes=30, seconds=30))
    client.get(LIST)
    entry = AuditEntry.objects.get(action="auth.session_expired", sequence__gt=before)
    assert entry.user_id == liaison.pk
    assert entry.detail == {"reason": "idle"}
