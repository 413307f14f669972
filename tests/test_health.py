"""The alerting watchdog: /health/ answers 200 when the database, Redis, the worker, beat and the
sweep are all alive, 503 naming what is silent otherwise; pages show the degraded banner."""

import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from comms.context_processors import alerting
from comms.watchdog import HEARTBEAT_KEY, heartbeat_write, heartbeats_clear

from .workers import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeats():
    heartbeats_clear()
    cache.clear()
    url = settings.REDIS_URL  # a test may point settings at a dead Redis
    yield
    redis.Redis.from_url(url).delete(HEARTBEAT_KEY)


def beat_all(age: float = 0.0) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for field in ("worker:w1@host", "beat:host", "sweep"):
        client.hset(HEARTBEAT_KEY, field, repr(time.time() - age))


def test_healthy_when_everything_has_a_fresh_heartbeat(client):
    beat_all()
    answer = client.get("/health/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["stale"] == []
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "redis",
        "worker",
        "beat",
        "sweep",
    }


def test_never_started_is_degraded_and_named(client):
    answer = client.get("/health/")
    assert answer.status_code == 503
    assert answer.json()["stale"] == ["worker", "beat", "sweep"]


def test_a_silent_worker_is_named_once_it_passes_the_threshold(client, settings):
    beat_all(age=settings.ALERT_HEARTBEAT_STALE_SECONDS - 5)
    assert client.get("/health/").status_code == 200
    beat_all()
    redis.Redis.from_url(settings.REDIS_URL).hset(
        HEARTBEAT_KEY,
        "worker:w1@host",
        repr(time.time() - settings.ALERT_HEARTBEAT_STALE_SECONDS - 1),
    )
    answer = client.get("/health/")
    assert answer.status_code == 503
    body = answer.json()
    assert body["stale"] == ["worker"]
    assert (
        body["checks"]["worker"]["last_heartbeat_seconds_ago"]
        > settings.ALERT_HEARTBEAT_STALE_SECONDS
    )


def test_any_live_worker_counts(client):
    beat_all()
    heartbeat_write("worker", "w2@host")
    redis.Redis.from_url(settings.REDIS_URL).hset(HEARTBEAT_KEY, "worker:w1@host", "0")
    assert client.get("/health/").status_code == 200


def test_redis_unreachable_is_degraded_not_an_error(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    answer = client.get("/health/")
    assert answer.status_code == 503
    assert "redis" in answer.json()["stale"]


def test_signed_in_pages_show_the_banner_while_alerting_is_degraded(rf, liaison):
    request = rf.get("/")
    request.user = liaison
    assert alerting(request) == {"alerting_stale": ["worker", "beat", "sweep"]}
    cache.clear()
    beat_all()
    assert alerting(request) == {"alerting_stale": []}


def test_the_banner_names_what_is_silent(liaison):
    client = Client()
    client.force_login(liaison)
    html = client.get("/alerts/").content.decode()
    assert "Alerting degraded: worker, beat, sweep silent" in html


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_and_beat_keep_health_green_until_the_worker_dies(alerting_processes, client):
    worker = alerting_processes.start_worker()
    alerting_processes.start_beat()
    wait_for(lambda: client.get("/health/").status_code == 200, 20, "health to turn green")

    alerting_processes.kill(worker)
    # Beat keeps sending sweeps, but nothing runs them: the worker and the sweep fall silent.
    answer = wait_for(
        lambda: len((reply := client.get("/health/")).json()["stale"]) >= 2 and reply,
        20,
        "the worker and the sweep to go stale",
    )
    assert answer.status_code == 503
    assert sorted(answer.json()["stale"]) == ["sweep", "worker"]
    assert answer.json()["checks"]["beat"]["ok"]
