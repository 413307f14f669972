"""The production shape in docker-compose.yml: which services run, what they run, and how.

Plain tests: they read the file, touch no database and need no Docker engine.
"""

import shlex
from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "escalation", "beat")
SETTINGS_FROM_ENVIRONMENT = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL")


@pytest.fixture(scope="module")
def services():
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)["services"]


def command_words(service):
    """The service's command as a list of words, whether written as a string or a list."""
    command = service.get("command", "")
    if isinstance(command, str):
        return shlex.split(command)
    # ["sh", "-c", "a && b"]: split the script as well, so its words can be looked for.
    words = []
    for part in command:
        words.extend(shlex.split(part) if " " in part else [part])
    return words


def contains_in_order(words, expected):
    """True when ``expected`` appears in ``words`` as consecutive words."""
    n = len(expected)
    return any(words[i : i + n] == list(expected) for i in range(len(words) - n + 1))


def environment(service):
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def test_production_shape_has_database_cache_web_worker_and_beat(services):
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)


def test_postgres_and_redis_are_health_checked_and_postgres_keeps_its_data_in_a_volume(services):
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    assert any("/var/lib/postgresql/data" in volume for volume in services["postgres"]["volumes"])


def test_web_migrates_then_serves_the_asgi_application(services):
    words = command_words(services["web"])
    assert "ctpn.asgi:application" in words
    assert {"uvicorn", "daphne", "hypercorn", "gunicorn"} & set(words)
    assert contains_in_order(words, ["manage.py", "migrate"])
    assert words.index("migrate") < words.index("ctpn.asgi:application")


def test_worker_runs_a_celery_worker_of_the_ctpn_app(services):
    assert contains_in_order(command_words(services["worker"]), ["celery", "-A", "ctpn", "worker"])


def test_escalation_has_its_own_worker_and_the_delivery_worker_does_not_take_it(services):
    from django.conf import settings

    routes = settings.CELERY_TASK_ROUTES
    assert routes["comms.tasks.escalation_step"]["queue"] == "escalation"
    assert routes["comms.tasks.alerts_sweep"]["queue"] == "escalation"
    assert routes["comms.tasks.notification_deliver"]["queue"] == "delivery"
    escalation = command_words(services["escalation"])
    assert contains_in_order(escalation, ["celery", "-A", "ctpn", "worker"])
    assert contains_in_order(escalation, ["-Q", "escalation"])
    worker = command_words(services["worker"])
    queues = worker[worker.index("-Q") + 1].split(",")
    assert "delivery" in queues and "escalation" not in queues


def test_beat_runs_celery_beat_of_the_ctpn_app(services):
    assert contains_in_order(command_words(services["beat"]), ["celery", "-A", "ctpn", "beat"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_services_run_in_production_mode(services, name):
    assert environment(services[name]).get("CTPN_ENV") == "production"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_services_get_secret_hosts_database_and_redis(services, name):
    env = environment(services[name])
    for variable in SETTINGS_FROM_ENVIRONMENT:
        assert env.get(variable), f"{name} does not set {variable}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_secret_key_and_allowed_hosts_come_from_the_environment_and_are_required(services, name):
    env = environment(services[name])
    for variable in ("SECRET_KEY", "ALLOWED_HOSTS"):
        assert str(env[variable]).startswith("${" + variable + ":?"), (
            f"{name}: {variable} must be taken from the environment and refuse to start without it"
        )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_services_wait_for_healthy_postgres_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    for dependency in ("postgres", "redis"):
        assert depends_on[dependency]["condition"] == "service_healthy"


def test_application_services_are_built_from_the_repository_dockerfile(services):
    for name in APP_SERVICES:
        build = services[name].get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context == ".", f"{name} is not built from the repository"
