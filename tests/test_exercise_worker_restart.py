"""An inject survives its worker: with a real prefork worker holding the inject's ``eta`` task, the
worker is killed (SIGKILL) before the inject is due; nothing is released while no worker runs;
a new worker and beat are started and the beat sweep releases the inject, once."""

import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from comms.exercises import exercise_control
from comms.models import ExerciseInject, InjectState
from incidents.models import IncidentEvent

from .exercising import director_of, message, run_of
from .workers import broker_url_for_tests, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_pending_inject_is_released_after_its_worker_was_killed(police, fire, alerting_processes):
    worker = alerting_processes.start_worker()
    director = director_of(police)
    run = run_of(director, [message(4, "After the restart")], [fire])
    started = timezone.now()
    exercise_control(run_id=run.pk, user=director, control="start")
    [inject] = ExerciseInject.objects.filter(run=run)
    broker = redis.Redis.from_url(broker_url_for_tests())
    # The worker took the eta task and holds it unacknowledged until the due instant.
    wait_for(lambda: broker.hlen("unacked") > 0, 10, "the worker to take the release task")
    alerting_processes.kill(worker)

    time.sleep(max(0.0, (inject.due_at - timezone.now()).total_seconds()) + 1.5)
    inject.refresh_from_db()
    assert inject.state == InjectState.PENDING  # no worker, no release

    alerting_processes.start_worker()
    alerting_processes.start_beat()
    wait_for(
        lambda: ExerciseInject.objects.filter(pk=inject.pk, state=InjectState.RELEASED).exists(),
        30,
        f"the inject to be released\n{alerting_processes.log_tail()}",
    )
    inject.refresh_from_db()
    assert inject.released_at >= started + timedelta(seconds=4)  # never early
    time.sleep(2.5)  # another sweep: still released once
    events = IncidentEvent.objects.filter(incident=run.incident, kind="exercise.inject")
    assert events.count() == 1
