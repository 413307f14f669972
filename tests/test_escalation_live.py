"""Escalation with real waits, a real worker and beat: a step fires after its deadline, never
before, whether the sweep takes it or a scheduled task that woke early and waited its turn.

Policy waits are whole minutes; these tests bring the pending step's deadline to a few seconds
from now in the database, as if the minutes had nearly passed.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from comms.models import ActivationTarget, Channel, Notification, StepTarget
from comms.services import activation_send
from comms.tasks import escalation_step_task
from coordination.roles import Role

from .factories import UserFactory
from .workers import contact, escalation_policy, rota_on_call, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def duty(police):
    primary = UserFactory(username="primary", agency=police, roles=[Role.DUTY_OFFICER])
    secondary = UserFactory(username="secondary", agency=police, roles=[Role.DUTY_OFFICER])
    contact(primary, "email", "primary@example.org")
    contact(secondary, "email", "secondary@example.org")
    rota_on_call(police, primary=primary, secondary=secondary)
    escalation_policy(police, (StepTarget.PRIMARY, 5), (StepTarget.SECONDARY, 5))
    return primary, secondary


def deadline_in(target: ActivationTarget, seconds: float):
    due = timezone.now() + timedelta(seconds=seconds)
    ActivationTarget.objects.filter(pk=target.pk).update(next_step_at=due)
    return due


def secondary_alert(activation, secondary):
    return Notification.objects.filter(
        activation=activation, recipient=secondary, channel=Channel.EMAIL
    ).first()


def test_the_sweep_takes_a_step_after_its_deadline_never_before(
    commander, police, duty, alerting_processes, smtp_sink
):
    _primary, secondary = duty
    alerting_processes.start_worker()
    alerting_processes.start_beat()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    wait_for(lambda: smtp_sink.to("primary@example.org"), 15, "the primary's e-mail")

    due = deadline_in(activation.targets.get(), 3)
    while timezone.now() < due - timedelta(milliseconds=200):
        assert secondary_alert(activation, secondary) is None, "escalated before the deadline"
        time.sleep(0.1)
    [email] = wait_for(lambda: smtp_sink.to("secondary@example.org"), 15, "the secondary's e-mail")

    alert = secondary_alert(activation, secondary)
    assert alert.created_at >= due
    assert email.accepted_at >= due.timestamp()
    print(f"\nsweep: secondary alerted {(alert.created_at - due).total_seconds():.2f} s after due")


def test_a_step_task_that_wakes_early_waits_for_the_deadline(
    commander, police, duty, alerting_processes, smtp_sink
):
    _primary, secondary = duty
    alerting_processes.start_worker()  # no beat: only the scheduled task can take the step
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    target = activation.targets.get()
    due = deadline_in(target, 3)

    escalation_step_task.apply_async(
        (target.pk, target.steps_taken), eta=due - timedelta(seconds=2)
    )
    [email] = wait_for(lambda: smtp_sink.to("secondary@example.org"), 15, "the secondary's e-mail")

    alert = secondary_alert(activation, secondary)
    assert alert.created_at >= due
    assert email.accepted_at >= due.timestamp()
    print(f"\ntask: secondary alerted {(alert.created_at - due).total_seconds():.2f} s after due")
