"""API throttling: anonymous callers per address, people per account, the token endpoint apart."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    """Small rates, so that a test reaches them in a few requests."""

    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **rates,
            },
        }

    return set_rates


def test_a_signed_in_person_past_the_rate_gets_429_with_retry_after(rates, api, liaison):
    rates(user="3/minute")
    client = api(liaison)
    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200

    refused = client.get("/api/v1/me/")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()


def test_the_rate_is_per_person(rates, api, liaison, commander):
    rates(user="2/minute")
    for _ in range(2):
        api(liaison).get("/api/v1/me/")
    assert api(liaison).get("/api/v1/me/").status_code == 429
    assert api(commander).get("/api/v1/me/").status_code == 200


def test_anonymous_callers_are_counted_per_address(rates):
    # DRF refuses a protected endpoint (401) before it counts; what anonymous callers can reach
    # is counted: here the token endpoint, whose own rate is set out of the way.
    rates(**{"anon": "2/minute", "auth-token": "100/minute"})
    body = {"username": "nobody", "password": "x"}
    first = APIClient(REMOTE_ADDR="10.0.0.7")
    assert first.post("/api/v1/auth/token/", body).status_code == 400
    assert first.post("/api/v1/auth/token/", body).status_code == 400
    assert first.post("/api/v1/auth/token/", body).status_code == 429
    assert APIClient(REMOTE_ADDR="10.0.0.8").post("/api/v1/auth/token/", body).status_code == 400


def test_the_token_endpoint_has_its_own_strict_rate(rates, liaison):
    rates(**{"auth-token": "2/minute", "anon": "100/minute"})
    client = APIClient(REMOTE_ADDR="10.0.0.9")
    body = {"username": "fire-liaison", "password": "correct horse battery staple"}
    assert client.post("/api/v1/auth/token/", body).status_code == 200
    assert client.post("/api/v1/auth/token/", body).status_code == 200

    refused = client.post("/api/v1/auth/token/", body)

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # Other endpoints are not held to the token endpoint's rate.
    assert client.get("/api/v1/me/").status_code in {401, 403}


def test_the_default_rates_come_from_the_environment():
    import os
    import subprocess
    import sys

    from .servers import ROOT

    env = {**os.environ, "API_THROTTLE_USER": "7/hour", "PYTHONPATH": str(ROOT)}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['user'])"
    )
    env["DJANGO_SETTINGS_MODULE"] = "ctpn.settings"
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "7/hour"

    env["API_THROTTLE_USER"] = "lots"
    bad = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0
    assert "API rate must be like 60/minute" in bad.stderr
