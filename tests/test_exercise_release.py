"""Injects are released in order at their due instants, never early: a task that wakes early
schedules itself again for the due instant; pausing stops releases and resuming moves pending
injects later by the pause; ending skips what is left; a refused inject fails alone."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from comms.exercises import exercise_control, exercise_sweep, inject_release
from comms.models import ExerciseInject, ExerciseStatus, InjectKind, InjectState
from incidents.models import IncidentEvent, MethaneReport, TimelineEntry
from incidents.services import incident_transition

from .exercising import director_of, message, run_of, scheduled_releases, three_injects

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def director(police):
    return director_of(police)


def at(clock, seconds: float) -> datetime:
    clock.move_to(START + timedelta(seconds=seconds))
    return timezone.now()


def injects_of(run) -> list[ExerciseInject]:
    return list(ExerciseInject.objects.filter(run=run).order_by("position"))


def start(run, director, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return exercise_control(run_id=run.pk, user=director, control="start")


def test_starting_gives_each_inject_its_due_instant_and_schedules_its_task(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, three_injects(), [fire])
    assert run.incident.is_exercise
    start(run, director, django_capture_on_commit_callbacks)

    injects = injects_of(run)
    assert [i.due_at for i in injects] == [START + timedelta(seconds=s) for s in (60, 120, 180)]
    assert scheduled_releases() == [(i.pk, i.due_at) for i in injects]
    assert IncidentEvent.objects.filter(incident=run.incident, kind="exercise.started").exists()


def test_injects_are_released_in_order_at_their_times_through_the_services(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, three_injects(), [fire])
    start(run, director, django_capture_on_commit_callbacks)
    first, second, third = injects_of(run)

    at(clock, 59.999)
    assert exercise_sweep() == 0
    at(clock, 60)
    assert inject_release(inject_id=first.pk) == "released"
    # The task of the first inject, delivered twice, does nothing the second time.
    assert inject_release(inject_id=first.pk) == "dropped"
    at(clock, 185)
    # The second inject's task was lost: the sweep releases both due injects, in order.
    assert exercise_sweep() == 2
    assert inject_release(inject_id=third.pk) == "dropped"

    first, second, third = injects_of(run)
    assert [i.state for i in (first, second, third)] == [InjectState.RELEASED] * 3
    assert first.released_at == START + timedelta(seconds=60)
    assert second.released_at == third.released_at == START + timedelta(seconds=185)
    assert first.event_seq < second.event_seq < third.event_seq
    events = IncidentEvent.objects.filter(incident=run.incident, kind="exercise.inject")
    assert [e.payload["position"] for e in events.order_by("seq")] == [1, 2, 3]
    assert all(e.payload["is_exercise"] for e in events)
    assert events.get(seq=first.event_seq).payload["text"] == "Text of First reports"
    # Applied through the normal services, in the director's name.
    entry = TimelineEntry.objects.get(incident=run.incident)
    assert (entry.text, entry.author) == ("Transport closes the station.", director)
    report = MethaneReport.objects.get(incident=run.incident)
    assert (report.casualties_p1, report.major_incident_declared) == (4, True)
    assert IncidentEvent.objects.filter(incident=run.incident, kind="methane.submitted").exists()


def test_a_task_woken_early_releases_nothing_and_schedules_itself_for_the_due_instant(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, [message(60, "Only inject")], [fire])
    start(run, director, django_capture_on_commit_callbacks)
    [inject] = injects_of(run)
    due = START + timedelta(seconds=60)

    at(clock, 59)
    with django_capture_on_commit_callbacks(execute=True):
        assert inject_release(inject_id=inject.pk) == "early"
    inject.refresh_from_db()
    assert inject.state == InjectState.PENDING
    assert not IncidentEvent.objects.filter(kind="exercise.inject").exists()
    # The one from the start, and the one the early task scheduled for the same instant.
    assert scheduled_releases() == [(inject.pk, due), (inject.pk, due)]


def test_pause_stops_releases_and_resume_moves_pending_injects_by_the_pause(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, three_injects(), [fire])
    start(run, director, django_capture_on_commit_callbacks)
    first, *_ = injects_of(run)
    at(clock, 60)
    inject_release(inject_id=first.pk)

    at(clock, 90)
    exercise_control(run_id=run.pk, user=director, control="pause")
    at(clock, 300)  # the second and third were due meanwhile
    assert exercise_sweep() == 0
    assert inject_release(inject_id=injects_of(run)[1].pk) == "dropped"
    at(clock, 400)  # paused for 310 s
    with django_capture_on_commit_callbacks(execute=True):
        run = exercise_control(run_id=run.pk, user=director, control="resume")

    assert run.paused_total == timedelta(seconds=310)
    first, second, third = injects_of(run)
    assert first.due_at == START + timedelta(seconds=60)  # released: not moved
    assert second.due_at == START + timedelta(seconds=120 + 310)
    assert third.due_at == START + timedelta(seconds=180 + 310)
    assert scheduled_releases()[-2:] == [(second.pk, second.due_at), (third.pk, third.due_at)]
    at(clock, 429)
    assert inject_release(inject_id=second.pk) == "early"
    at(clock, 430)
    assert inject_release(inject_id=second.pk) == "released"
    assert injects_of(run)[2].state == InjectState.PENDING


def test_ending_skips_what_is_left(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, three_injects(), [fire])
    start(run, director, django_capture_on_commit_callbacks)
    at(clock, 100)
    exercise_sweep()
    exercise_control(run_id=run.pk, user=director, control="pause")
    at(clock, 130)
    run = exercise_control(run_id=run.pk, user=director, control="end")

    assert run.status == ExerciseStatus.ENDED
    assert (run.ended_at, run.paused_total) == (
        START + timedelta(seconds=130),
        timedelta(seconds=30),
    )
    assert [i.state for i in injects_of(run)] == [
        InjectState.RELEASED,
        InjectState.SKIPPED,
        InjectState.SKIPPED,
    ]
    at(clock, 1000)
    assert exercise_sweep() == 0
    assert inject_release(inject_id=injects_of(run)[2].pk) == "dropped"


def test_an_inject_the_services_refuse_fails_with_the_reason_and_the_others_go_on(
    clock, director, fire, transport, django_capture_on_commit_callbacks, alerting_broker
):
    activation = {
        "offset_seconds": 10,
        "kind": InjectKind.ACTIVATION,
        "title": "Call transport",
        "content": {"message": "Assemble", "agencies": [transport.short_name]},
    }
    run = run_of(director, [activation, message(20, "Still here")], [fire])
    start(run, director, django_capture_on_commit_callbacks)
    at(clock, 30)
    assert exercise_sweep() == 2

    failed, released = injects_of(run)
    assert failed.state == InjectState.FAILED
    assert "Not taking part in this exercise: TRN" in failed.failure_reason
    assert released.state == InjectState.RELEASED
    assert not run.incident.activations.exists()


def test_no_inject_is_released_into_a_closed_incident(
    clock, director, fire, django_capture_on_commit_callbacks, alerting_broker
):
    run = run_of(director, [message(10, "Too late")], [fire])
    start(run, director, django_capture_on_commit_callbacks)
    incident_transition(incident_id=run.incident_id, user=director, to="closed")
    at(clock, 10)
    assert exercise_sweep() == 1

    [inject] = injects_of(run)
    assert inject.state == InjectState.FAILED
    assert inject.failure_reason.endswith("is closed; it accepts no further entries.")
    assert not IncidentEvent.objects.filter(kind="exercise.inject").exists()
