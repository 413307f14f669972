"""Every alert reaches someone (invariant 3), shown with real parts: a prefork Celery worker and
beat against the test database and Redis, an SMTP server receiving the e-mails and an HTTP server
receiving SMS-provider and webhook calls (checking the webhook signature).

A 200-recipient activation is sent; the worker is killed with SIGKILL while it is sending, a new
one is started, and every recipient still gets the e-mail. A message is only ever repeated when
the worker died between the SMTP server accepting it and the database recording that, and the
repeat carries the same idempotency key.
"""

import time
from collections import defaultdict

import pytest

from comms.models import (
    Channel,
    ContactMethod,
    DeliveryAttempt,
    Notification,
    NotificationState,
    ResponderGroup,
    StepTarget,
)
from comms.services import activation_send
from coordination.models import User
from coordination.roles import Role

from .factories import UserFactory
from .workers import contact, escalation_policy, rota_on_call, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RECIPIENTS = 200


@pytest.fixture
def crowd(police):
    """200 people of the police in one responder group, each with an e-mail address; the
    agency's policy alerts the whole group at once."""
    users = User.objects.bulk_create(
        User(username=f"officer{n:03d}", agency=police, password="!") for n in range(RECIPIENTS)
    )
    ContactMethod.objects.bulk_create(
        ContactMethod(user=user, kind="email", address=f"{user.username}@example.org")
        for user in users
    )
    group = ResponderGroup.objects.create(agency=police, name="Everyone")
    group.members.set(users)
    escalation_policy(police, (StepTarget.GROUP, 30), group=group)
    return users


def first_acceptance_by_address(sink) -> dict[str, float]:
    seen: dict[str, float] = {}
    for message in sink.received():
        for address in message.recipients:
            seen.setdefault(address, message.accepted_at)
    return seen


def test_200_recipients_each_get_the_email_and_the_timing_is_printed(
    commander, police, crowd, alerting_processes, smtp_sink
):
    alerting_processes.start_worker()
    activation = activation_send(user=commander, message="Stand up the SCG", agencies=[police])
    started = activation.created_at.timestamp()

    wait_for(
        lambda: len(first_acceptance_by_address(smtp_sink)) >= RECIPIENTS,
        60,
        "every recipient's e-mail",
    )

    accepted = sorted(first_acceptance_by_address(smtp_sink).values())
    print(
        f"\n200 recipients, prefork -c 2: first e-mail accepted {accepted[0] - started:.2f} s "
        f"after the activation, last {accepted[-1] - started:.2f} s"
    )
    wait_for(
        lambda: (
            not Notification.objects.filter(
                activation=activation, channel=Channel.EMAIL, state=NotificationState.QUEUED
            ).exists()
        ),
        10,
        "every e-mail recorded as sent",
    )
    assert len(smtp_sink.received()) == RECIPIENTS  # nothing killed, nothing repeated


def test_a_worker_killed_mid_activation_delays_alerts_but_loses_none(
    commander, police, crowd, alerting_processes, smtp_sink
):
    worker = alerting_processes.start_worker()
    alerting_processes.start_beat()
    activation = activation_send(user=commander, message="Stand up the SCG", agencies=[police])
    started = activation.created_at.timestamp()

    wait_for(lambda: len(smtp_sink.received()) >= 30, 30, "the first e-mails", every=0.005)
    alerting_processes.kill(worker)
    killed_at = time.time()
    accepted_before_kill = len(smtp_sink.received())
    assert accepted_before_kill < RECIPIENTS, "the worker finished before it could be killed"
    alerting_processes.start_worker()

    wait_for(
        lambda: len(first_acceptance_by_address(smtp_sink)) >= RECIPIENTS,
        60,
        f"every recipient's e-mail\n{alerting_processes.log_tail()}",
    )
    addresses = {f"{user.username}@example.org" for user in crowd}
    assert set(first_acceptance_by_address(smtp_sink)) == addresses

    by_key: dict[str, list[float]] = defaultdict(list)
    for message in smtp_sink.received():
        by_key[message.idempotency_key].append(message.accepted_at)
    repeated = {key for key, times in by_key.items() if len(times) > 1}
    # A repeat only where the first sending never got recorded: an attempt the kill interrupted.
    for key in repeated:
        row = Notification.objects.get(idempotency_key=key)
        assert DeliveryAttempt.objects.filter(notification=row, outcome="").exists(), key
    assert len(repeated) <= 2  # at most one message in flight per pool process
    assert all(len(times) <= 2 for times in by_key.values())

    accepted = sorted(first_acceptance_by_address(smtp_sink).values())
    print(
        f"\nSIGKILL after {accepted_before_kill} of 200 e-mails "
        f"({killed_at - started:.2f} s in); first e-mail {accepted[0] - started:.2f} s, "
        f"last {accepted[-1] - started:.2f} s after the activation; "
        f"{len(repeated)} repeated under the same idempotency key"
    )
    wait_for(
        lambda: (
            not Notification.objects.filter(
                activation=activation, state=NotificationState.QUEUED
            ).exists()
        ),
        30,
        "every notification recorded as sent",
    )


def test_the_worker_sends_through_every_channel_to_real_receivers(
    commander, police, alerting_processes, smtp_sink, http_sink
):
    officer = UserFactory(username="duty", agency=police, roles=[Role.DUTY_OFFICER])
    contact(officer, "email", "duty@example.org")
    contact(officer, "sms", "+46700000001")
    hook = contact(officer, "webhook", f"{http_sink.url}/hook", secret="hook-secret")
    http_sink.secrets["/hook"] = hook.signing_secret
    rota_on_call(police, primary=officer)
    alerting_processes.start_worker()

    activation = activation_send(
        user=commander, message="Drill at HQ", agencies=[police], is_exercise=True
    )

    [email] = wait_for(lambda: smtp_sink.to("duty@example.org"), 20, "the e-mail")
    [sms] = wait_for(lambda: http_sink.received("/sms"), 20, "the SMS")
    [webhook] = wait_for(lambda: http_sink.received("/hook"), 20, "the webhook")
    assert webhook.signature_ok is True
    assert email.subject.startswith("EXERCISE") and sms.json()["text"].startswith("EXERCISE")
    assert sms.header("Authorization") == "Bearer sms-test-token"
    keys = {email.idempotency_key, sms.json()["idempotency_key"], webhook.json()["idempotency_key"]}
    expected = {
        str(key)
        for key in Notification.objects.filter(activation=activation)
        .exclude(channel=Channel.IN_APP)
        .values_list("idempotency_key", flat=True)
    }
    assert keys == expected
    states = wait_for(
        lambda: (
            (
                found := dict(
                    Notification.objects.filter(activation=activation).values_list(
                        "channel", "state"
                    )
                )
            )
            and NotificationState.QUEUED not in found.values()
            and found
        ),
        20,
        "every notification recorded",
    )
    assert states == {
        Channel.EMAIL: NotificationState.SENT,
        Channel.SMS: NotificationState.SENT,
        Channel.WEBHOOK: NotificationState.DELIVERED,
        Channel.IN_APP: NotificationState.SENT,
    }
