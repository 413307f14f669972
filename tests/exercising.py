"""Building blocks of the exercise tests: a director, a scenario of timed injects, a run, and a
look at the tasks scheduled on the tests' broker."""

import base64
import json
from datetime import datetime
from typing import Any

import redis

from comms.exercises import exercise_create, scenario_save
from comms.models import ExerciseRun, InjectKind, Scenario
from coordination.roles import Role

from .factories import UserFactory, methane_fields
from .workers import broker_url_for_tests

RELEASE_TASK = "comms.tasks.exercise_inject_release"


def director_of(agency, username: str = "director"):
    """A neutral commander: directing staff who may also send an activation inject."""
    return UserFactory(username=username, agency=agency, roles=[Role.NEUTRAL_COMMANDER])


def message(offset: int, title: str, text: str = "") -> dict[str, Any]:
    return {
        "offset_seconds": offset,
        "kind": InjectKind.MESSAGE,
        "title": title,
        "content": {"text": text or f"Text of {title}", "sender": "Control"},
    }


def three_injects() -> list[dict[str, Any]]:
    """A message at 60 s, a timeline entry at 120 s, an M/ETHANE report at 180 s."""
    return [
        message(60, "First reports"),
        {
            "offset_seconds": 120,
            "kind": InjectKind.TIMELINE,
            "title": "Station closed",
            "content": {"text": "Transport closes the station."},
        },
        {
            "offset_seconds": 180,
            "kind": InjectKind.METHANE,
            "title": "Major incident declared",
            "content": methane_fields(casualties_p1=4),
        },
    ]


def scenario_of(director, injects: list[dict[str, Any]], name: str = "Drill") -> Scenario:
    return scenario_save(
        user=director, name=name, incident_title=f"{name} incident", injects=injects
    )


def run_of(director, injects: list[dict[str, Any]], agencies=()) -> ExerciseRun:
    scenario = scenario_of(director, injects)
    return exercise_create(
        user=director, scenario_id=scenario.pk, participating_agencies=list(agencies)
    )


def scheduled_releases() -> list[tuple[int, datetime | None]]:
    """(inject id, eta) of every release task waiting on the tests' broker, oldest first."""
    client = redis.Redis.from_url(broker_url_for_tests())
    found = []
    for raw in reversed(client.lrange("celery", 0, -1)):
        message = json.loads(raw)
        headers = message.get("headers", {})
        if headers.get("task") != RELEASE_TASK:
            continue
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        eta = headers.get("eta")
        found.append((args[0], datetime.fromisoformat(eta) if eta else None))
    return found
