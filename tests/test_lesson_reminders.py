"""Reminders: the owner of a lesson due soon, or overdue, gets an e-mail at most once per lesson,
kind and day, however many times beat runs the task, through a real SMTP server."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from coordination.lessons import lesson_create, lesson_transition
from coordination.markings import Marking
from coordination.roles import Role
from coordination.tasks import lesson_reminders

from .factories import UserFactory, lesson_fields

# 2030-06-10, 08:00 in Stockholm.
MORNING = datetime(2030, 6, 10, 6, 0, tzinfo=UTC)


def identify(incident, user, owner_agency, **overrides):
    return lesson_create(
        incident_id=incident.pk, user=user, owner_agency=owner_agency, **lesson_fields(**overrides)
    )


def beat(capture):
    """One run of the beat task, its e-mail sent on commit as in a worker."""
    with capture(execute=True):
        return lesson_reminders.apply().get()


@pytest.mark.django_db
def test_due_soon_then_overdue_reach_the_owner_once_a_day(
    smtp_sink, django_capture_on_commit_callbacks, settings, incident, commander, fire, liaison
):
    settings.LESSON_REMINDER_DUE_SOON_DAYS = 7
    with time_machine.travel(MORNING, tick=False) as traveller:
        lesson = identify(incident, commander, fire, owner=liaison, due_date=date(2030, 6, 15))
        identify(incident, commander, fire, title="Far off", due_date=date(2030, 8, 1))

        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 1, "overdue": 0}
        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 0, "overdue": 0}
        traveller.shift(timedelta(hours=10))
        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 0, "overdue": 0}

        first = smtp_sink.to(liaison.email)
        assert len(first) == 1
        assert "due on 2030-06-15 (in 5 days)" in first[0].subject
        assert "TLP:AMBER" in first[0].subject and lesson.title in first[0].subject
        assert f"/lessons/{lesson.pk}/" in first[0].body

        traveller.move_to(datetime(2030, 6, 16, 6, 0, tzinfo=UTC))
        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 0, "overdue": 1}
        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 0, "overdue": 0}
        traveller.move_to(datetime(2030, 6, 17, 6, 0, tzinfo=UTC))
        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 0, "overdue": 1}

    received = smtp_sink.to(liaison.email)
    assert [("overdue" in m.subject) for m in received] == [False, True, True]
    assert "overdue since 2030-06-15" in received[-1].subject
    assert len(smtp_sink.received()) == 3  # nobody else, and not the lesson due in August


@pytest.mark.django_db
def test_without_an_owner_person_the_agencys_lesson_writers_are_reminded(
    smtp_sink, django_capture_on_commit_callbacks, incident, commander, fire, liaison, police
):
    loggist = UserFactory(agency=fire, roles=[Role.LOGGIST])
    UserFactory(agency=fire, roles=[Role.OBSERVER])  # may not progress lessons
    UserFactory(agency=fire, roles=[Role.LOGGIST], is_active=False)
    UserFactory(agency=fire, roles=[Role.LOGGIST], email="")
    UserFactory(agency=police, roles=[Role.LIAISON_OFFICER])  # another agency
    with time_machine.travel(MORNING, tick=False):
        identify(incident, commander, fire, due_date=date(2030, 6, 1))

        beat(django_capture_on_commit_callbacks)

    recipients = sorted(r for m in smtp_sink.received() for r in m.recipients)
    assert recipients == sorted([liaison.email, loggist.email])
    assert all(len(m.recipients) == 1 for m in smtp_sink.received())  # nobody sees the others


@pytest.mark.django_db
def test_lessons_past_the_owners_steps_are_not_reminded_and_restricted_ones_name_nothing(
    smtp_sink,
    django_capture_on_commit_callbacks,
    incident,
    commander,
    fire,
    liaison,
    oversight,
):
    with time_machine.travel(MORNING, tick=False):
        implemented = identify(incident, commander, fire, due_date=date(2030, 6, 1))
        for step in ("action_planned", "implemented"):
            lesson_transition(lesson_id=implemented.pk, user=liaison, to=step)
        refused = identify(incident, commander, fire, due_date=date(2030, 6, 1))
        lesson_transition(lesson_id=refused.pk, user=oversight, to="not_accepted", note="No.")
        red = identify(
            incident,
            commander,
            fire,
            title="RED-TITLE",
            marking=Marking.RED,
            recipient_people=[liaison],
            due_date=date(2030, 6, 11),
            owner=liaison,
        )

        assert beat(django_capture_on_commit_callbacks) == {"due_soon": 1, "overdue": 0}

    (message,) = smtp_sink.received()
    assert red.label in message.subject
    assert "RED-TITLE" not in message.subject + message.body
    assert "TLP:RED" in message.subject


@pytest.mark.django_db(transaction=True)
def test_two_beats_at_once_send_one_reminder(smtp_sink, incident, commander, fire, liaison):
    today = timezone.now().astimezone(incident.city.zone).date()
    identify(incident, commander, fire, owner=liaison, due_date=today - timedelta(days=1))
    start = threading.Barrier(2)
    results: list[dict] = []

    def run() -> None:
        try:
            start.wait()
            results.append(lesson_reminders.apply().get())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(r["overdue"] for r in results) == [0, 1]
    assert len(smtp_sink.to(liaison.email)) == 1
