"""Each channel, against a real receiver: e-mail to an SMTP server, SMS to an HTTP provider,
webhooks whose signature the receiver checks, in-app through Redis. Every message carries its
notification's idempotency key; EXERCISE comes first in every exercise message."""

import json
from datetime import timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.utils import timezone

from comms.delivery import SIGNATURE_HEADER, signature_valid
from comms.models import Channel, DeliveryAttempt, Notification, NotificationState
from comms.services import (
    activation_send,
    alerts_sweep,
    notification_deliver,
    notifications_deliver,
)
from coordination.roles import Role
from ctpn.realtime import topic_channel

from .factories import UserFactory
from .workers import contact, rota_on_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer(police, settings, http_sink):
    settings.SMS_PROVIDER_URL = f"{http_sink.url}/sms"
    settings.SMS_PROVIDER_TOKEN = "provider-token"
    settings.PUBLIC_BASE_URL = "https://ctpn.example"
    user = UserFactory(username="duty", agency=police, roles=[Role.DUTY_OFFICER])
    rota_on_call(police, primary=user)
    return user


def send(commander, police, **extra):
    return activation_send(
        user=commander, message="Strategic cell to City Hall", agencies=[police], **extra
    )


def notification(activation, channel) -> Notification:
    return Notification.objects.get(activation=activation, channel=channel)


def test_email_goes_through_smtp_with_its_idempotency_key_and_answer_link(
    commander, police, officer, smtp_sink
):
    contact(officer, "email", "duty@example.org")
    row = notification(send(commander, police), Channel.EMAIL)

    assert notification_deliver(notification_id=row.pk) == "sent"

    [email] = smtp_sink.received()
    assert email.recipients == ("duty@example.org",)
    assert email.idempotency_key == str(row.idempotency_key)
    assert email.message_id == f"<{row.idempotency_key}@ctpn.example>"
    assert "Strategic cell to City Hall" in email.body
    assert "https://ctpn.example/ack/" in email.body
    assert not email.subject.startswith("EXERCISE")
    row.refresh_from_db()
    assert (row.state, row.attempts, row.claimed_until) == (NotificationState.SENT, 1, None)
    assert row.sent_at is not None
    assert DeliveryAttempt.objects.get(notification=row).outcome == "sent"


def test_a_batch_sends_each_notification_once_with_its_own_key_and_attempt(
    commander, police, officer, smtp_sink, http_sink
):
    contact(officer, "email", "duty@example.org")
    contact(officer, "sms", "+46700000001")
    activation = send(commander, police)
    rows = list(Notification.objects.filter(activation=activation).order_by("pk"))
    assert {row.channel for row in rows} == {Channel.EMAIL, Channel.SMS, Channel.IN_APP}
    sms = next(row for row in rows if row.channel == Channel.SMS)
    assert notification_deliver(notification_id=sms.pk) == "sent"  # sent on its own first

    ids = [row.pk for row in rows]
    assert notifications_deliver(notification_ids=ids) == {"skipped": 1, "sent": 2}
    assert notifications_deliver(notification_ids=ids) == {"skipped": 3}

    [email] = smtp_sink.received()
    assert email.idempotency_key == str(notification(activation, Channel.EMAIL).idempotency_key)
    assert len(http_sink.received("/sms")) == 1
    for row in rows:
        row.refresh_from_db()
        assert (row.state, row.attempts, row.claimed_until) == (NotificationState.SENT, 1, None)
        assert [a.outcome for a in DeliveryAttempt.objects.filter(notification=row)] == ["sent"]


def test_an_exercise_says_exercise_first_in_every_message(
    commander, police, officer, smtp_sink, http_sink
):
    contact(officer, "email", "duty@example.org")
    contact(officer, "sms", "+46700000001")
    activation = send(commander, police, is_exercise=True)
    for channel in (Channel.EMAIL, Channel.SMS):
        notification_deliver(notification_id=notification(activation, channel).pk)

    [email] = smtp_sink.received()
    assert email.subject.startswith("EXERCISE")
    assert email.body.startswith("EXERCISE")
    [sms] = http_sink.received("/sms")
    assert sms.json()["text"].startswith("EXERCISE")


def test_a_task_run_twice_sends_once(commander, police, officer, smtp_sink):
    contact(officer, "email", "duty@example.org")
    row = notification(send(commander, police), Channel.EMAIL)
    assert notification_deliver(notification_id=row.pk) == "sent"
    assert notification_deliver(notification_id=row.pk) == "skipped"
    assert len(smtp_sink.received()) == 1


def test_a_refused_address_fails_with_the_reason(commander, police, officer, smtp_sink):
    contact(officer, "email", "gone@example.org")
    smtp_sink.refused.add("gone@example.org")
    row = notification(send(commander, police), Channel.EMAIL)

    assert notification_deliver(notification_id=row.pk) == "failed"
    row.refresh_from_db()
    assert row.state == NotificationState.FAILED
    assert "refused" in row.failure_reason


def test_sms_goes_to_the_provider_as_json_with_token_and_idempotency_key(
    commander, police, officer, http_sink
):
    contact(officer, "sms", "+46700000001")
    row = notification(send(commander, police), Channel.SMS)

    assert notification_deliver(notification_id=row.pk) == "sent"

    [request] = http_sink.received("/sms")
    body = request.json()
    assert body["to"] == "+46700000001"
    assert body["idempotency_key"] == str(row.idempotency_key)
    assert request.header("Idempotency-Key") == str(row.idempotency_key)
    assert request.header("Authorization") == "Bearer provider-token"
    assert "https://ctpn.example/ack/" in body["text"]


def test_a_provider_outage_is_retried_later_and_a_refusal_is_final(
    commander, police, officer, http_sink
):
    contact(officer, "sms", "+46700000001")
    row = notification(send(commander, police), Channel.SMS)
    http_sink.answers["/sms"] = [503, 400]

    assert notification_deliver(notification_id=row.pk) == "retry"
    row.refresh_from_db()
    assert row.state == NotificationState.QUEUED
    assert "503" in row.failure_reason
    assert row.next_attempt_at > timezone.now()
    # Not due yet: a task arriving early leaves it alone.
    assert notification_deliver(notification_id=row.pk) == "skipped"

    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        assert notification_deliver(notification_id=row.pk) == "failed"
    row.refresh_from_db()
    assert row.state == NotificationState.FAILED
    assert "400" in row.failure_reason
    assert list(row.delivery_attempts.values_list("outcome", flat=True)) == ["retry", "failed"]


def test_a_webhook_is_signed_so_the_receiver_can_verify_it(commander, police, officer, http_sink):
    method = contact(officer, "webhook", f"{http_sink.url}/hook", secret="s3cret-for-hmac")
    http_sink.secrets["/hook"] = method.signing_secret
    row = notification(send(commander, police), Channel.WEBHOOK)

    assert notification_deliver(notification_id=row.pk) == "delivered"

    [request] = http_sink.received("/hook")
    assert request.signature_ok is True
    assert signature_valid("s3cret-for-hmac", request.body, request.header(SIGNATURE_HEADER))
    assert not signature_valid("another-secret", request.body, request.header(SIGNATURE_HEADER))
    assert request.json()["idempotency_key"] == str(row.idempotency_key)
    assert request.header("X-CTPN-Idempotency-Key") == str(row.idempotency_key)
    row.refresh_from_db()
    assert row.state == NotificationState.DELIVERED


def test_a_webhook_that_rejects_the_signature_fails(commander, police, officer, http_sink):
    contact(officer, "webhook", f"{http_sink.url}/hook", secret="ours")
    http_sink.secrets["/hook"] = "theirs-differs"
    row = notification(send(commander, police), Channel.WEBHOOK)

    assert notification_deliver(notification_id=row.pk) == "failed"
    row.refresh_from_db()
    assert "401" in row.failure_reason


def test_in_app_alerts_are_published_to_the_recipients_topic(commander, police, officer):
    subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    subscriber.subscribe(topic_channel(f"user:{officer.pk}"))
    subscriber.get_message(timeout=2)  # the subscription confirmation
    row = notification(send(commander, police), Channel.IN_APP)

    assert notification_deliver(notification_id=row.pk) == "sent"

    message = subscriber.get_message(timeout=5)
    subscriber.close()
    assert message is not None
    pushed = json.loads(message["data"])
    assert pushed["type"] == "alert"
    assert pushed["alert"]["notification"] == row.pk
    assert pushed["alert"]["message"] == "Strategic cell to City Hall"
    assert pushed["alert"]["idempotency_key"] == str(row.idempotency_key)


def test_a_notification_held_by_a_dead_worker_is_sent_again_after_its_lease(
    commander, police, officer, smtp_sink, settings
):
    contact(officer, "email", "duty@example.org")
    row = notification(send(commander, police), Channel.EMAIL)
    # A worker took the lease and died before sending: nobody else may send until it runs out.
    now = timezone.now()
    Notification.objects.filter(pk=row.pk).update(
        claimed_until=now + timedelta(seconds=settings.ALERT_LEASE_SECONDS), attempts=1
    )
    assert notification_deliver(notification_id=row.pk) == "skipped"
    assert alerts_sweep()["redriven"] == 0

    later = now + timedelta(seconds=settings.ALERT_LEASE_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        # The e-mail, and the in-app alert whose task nothing ran in this test.
        assert alerts_sweep()["redriven"] == 2
        assert alerts_sweep()["redriven"] == 0  # re-driven once per grace, not every sweep
        assert notification_deliver(notification_id=row.pk) == "sent"
    assert len(smtp_sink.received()) == 1


def test_the_providers_receipt_marks_an_sms_delivered(
    client, commander, police, officer, http_sink, settings
):
    contact(officer, "sms", "+46700000001")
    row = notification(send(commander, police), Channel.SMS)
    notification_deliver(notification_id=row.pk)
    receipt = {"idempotency_key": str(row.idempotency_key), "status": "delivered"}
    url = "/api/v1/sms-receipts/"
    auth = {"HTTP_AUTHORIZATION": "Bearer provider-token"}

    wrong = client.post(
        url, receipt, content_type="application/json", HTTP_AUTHORIZATION="Bearer x"
    )
    assert wrong.status_code == 401
    answer = client.post(url, receipt, content_type="application/json", **auth)

    assert answer.status_code == 204
    row.refresh_from_db()
    assert row.state == NotificationState.DELIVERED and row.delivered_at is not None
    unknown = {**receipt, "idempotency_key": "6c5a0d0e-0000-4000-8000-000000000000"}
    assert client.post(url, unknown, content_type="application/json", **auth).status_code == 404
    bad = client.post(url, {"status": "read"}, content_type="application/json", **auth)
    assert bad.status_code == 400
    assert set(bad.json()) == {"idempotency_key", "status"}


def test_a_failure_receipt_fails_the_sms_with_the_providers_reason(
    client, commander, police, officer, http_sink
):
    contact(officer, "sms", "+46700000001")
    row = notification(send(commander, police), Channel.SMS)
    notification_deliver(notification_id=row.pk)
    answer = client.post(
        "/api/v1/sms-receipts/",
        {"idempotency_key": str(row.idempotency_key), "status": "failed", "reason": "absent"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer provider-token",
    )
    assert answer.status_code == 204
    row.refresh_from_db()
    assert row.state == NotificationState.FAILED
    assert "absent" in row.failure_reason
