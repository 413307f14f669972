"""Writes of activation alerting: send an activation, deliver its notifications, escalate, take
acknowledgements, sweep up what a lost worker left.

Reliability (invariant 3), in one place:

- The activation's transaction writes its notifications (the outbox); tasks are only scheduled
  on commit, with ids. A task that runs twice, late or for a row that moved on does nothing.
- Delivery claims a notification with a conditional UPDATE that sets a lease (``claimed_until``)
  before sending, because sending cannot be part of a database transaction. A worker that dies
  mid-send leaves the lease to expire; the sweep then sends again, under the same idempotency key.
- Escalation runs entirely inside a transaction holding the target's row lock, so that lock is
  its lease (a dead worker's connection releases it). A step carries the ``steps_taken`` count it
  expects; a task that wakes before the step is due schedules itself again for the due time.
- Lock order, everywhere: activation, then its targets (by id), then notifications.
"""

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from coordination.models import Agency, User
from coordination.roles import Capability
from coordination.validation import errors_raise, require, text_required
from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident, IncidentStatus

from . import watchdog
from .delivery import DeliveryFailed, Outgoing, Receipt, channel_for
from .models import (
    Acknowledgement,
    Activation,
    ActivationStatus,
    ActivationTarget,
    AnsweredVia,
    Channel,
    ContactMethod,
    DeliveryAttempt,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationState,
    Quorum,
    Response,
    TargetState,
    Urgency,
)
from .rotas import duty_officers, escalation_step_recipients

logger = logging.getLogger(__name__)

ACK_SALT = "comms.acknowledgement-link"
MESSAGE_MAX_LENGTH = 1000
MAX_RESPONSE_WINDOW = timedelta(days=7)
DEFAULT_RESPONSE_WINDOW = timedelta(minutes=30)
MAX_ETA_MINUTES = 24 * 60
# Notifications still to answer: the ones an answer through any channel settles.
OUTSTANDING = (NotificationState.QUEUED, NotificationState.SENT, NotificationState.DELIVERED)


# --- Publishing (after commit) ---------------------------------------------------------------


def activation_topic(activation_id: int) -> str:
    return f"activation:{activation_id}"


def _publish(topic: str, message: dict[str, Any]) -> None:
    """Publish to a live topic; a lost message is tolerated (boards reload on reconnect)."""
    try:
        from ctpn.realtime import publish

        publish(topic, message)
    except Exception as exc:
        logger.warning("could not publish to %s: %r", topic, exc)


def _publish_on_commit(topic: str, build: Callable[[], dict[str, Any]]) -> None:
    # Built after commit, from committed rows, so a board never shows a rolled-back change.
    transaction.on_commit(lambda: _publish(topic, build()), robust=True)


def _board_changed(
    activation_id: int, *, notifications: Iterable[int] = (), rows_only: bool = False
) -> None:
    from .serializers import board_messages

    ids = list(notifications)
    _publish_on_commit(
        activation_topic(activation_id),
        lambda: board_messages(
            activation_id=activation_id, notification_ids=ids, rows_only=rows_only
        ),
    )


def _deliver_on_commit(notification_ids: Sequence[int]) -> None:
    from .tasks import notification_deliver_task

    def enqueue() -> None:
        for pk in notification_ids:
            notification_deliver_task.delay(pk)

    if notification_ids:
        transaction.on_commit(enqueue, robust=True)


def _escalate_on_commit(target: ActivationTarget) -> None:
    from .tasks import escalation_step_task

    if target.state != TargetState.ESCALATING or target.next_step_at is None:
        return
    args = (target.pk, target.steps_taken)
    due = target.next_step_at
    transaction.on_commit(lambda: escalation_step_task.apply_async(args, eta=due), robust=True)


# --- Acknowledgement links ---------------------------------------------------------------------


def ack_token(notification: Notification) -> str:
    """A signed, expiring token naming one notification: the one-tap link's secret."""
    signer = signing.TimestampSigner(salt=ACK_SALT)
    return signer.sign(f"{notification.pk}.{notification.idempotency_key.hex[:12]}")


class AckLinkExpired(Exception):
    pass


def ack_notification(token: str) -> Notification:
    """The notification a link names. Raises ``AckLinkExpired`` for a link past its age and
    ``signing.BadSignature`` for one that is not ours, or was altered."""
    signer = signing.TimestampSigner(salt=ACK_SALT)
    try:
        value = signer.unsign(token, max_age=settings.ALERT_ACK_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise AckLinkExpired(str(exc)) from exc
    pk, _, key_prefix = value.partition(".")
    notification = (
        Notification.objects.select_related(
            "activation__city", "activation__incident", "target__agency", "recipient"
        )
        .filter(pk=int(pk))
        .first()
    )
    if notification is None or notification.idempotency_key.hex[:12] != key_prefix:
        raise signing.BadSignature("no such notification")
    return notification


def ack_url(notification: Notification) -> str:
    path = reverse("comms:ack", kwargs={"token": ack_token(notification)})
    return f"{settings.PUBLIC_BASE_URL}{path}"


# --- Escalation plans --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanStep:
    """One step of an agency's escalation as the runtime sees it."""

    label: str
    wait_minutes: int
    recipients: Callable[[datetime], list[User]]


def _plan(target: ActivationTarget) -> tuple[list[PlanStep], int]:
    """The agency's steps and how many times they repeat after the first pass.

    An agency without a default policy has every duty officer on call notified at once.
    """
    if target.policy_id is None:
        agency = target.agency

        def everyone_on_call(at: datetime) -> list[User]:
            seen: dict[int, User] = {}
            for officer in duty_officers(agency=agency, at=at):
                seen.setdefault(officer.user.pk, officer.user)
            return list(seen.values())

        return [PlanStep("duty officers on call", 0, everyone_on_call)], 0
    steps = list(
        EscalationStep.objects.filter(policy_id=target.policy_id)
        .select_related("policy__rota", "policy__agency", "group")
        .order_by("position")
    )
    plan = []
    for step in steps:
        label = f"group {step.group.name}" if step.group else step.get_target_display().lower()

        def recipients(at: datetime, step: EscalationStep = step) -> list[User]:
            return escalation_step_recipients(step=step, at=at)

        plan.append(PlanStep(label, step.wait_minutes, recipients))
    policy = EscalationPolicy.objects.get(pk=target.policy_id)
    return plan, policy.repeat_count


def _escalation_run(activation: Activation, target: ActivationTarget, now: datetime) -> list[int]:
    """Take the target's due steps, up to the next wait; return the notifications created.

    The caller holds the target's row lock and saves nothing: this saves the target.
    """
    plan, repeats = _plan(target)
    answered = set(
        Acknowledgement.objects.filter(activation=activation).values_list("user_id", flat=True)
    )
    created: list[int] = []
    while target.state == TargetState.ESCALATING:
        if target.step_position >= len(plan):
            if target.round < repeats:
                target.round += 1
                target.step_position = 0
                continue
            target.state = TargetState.EXHAUSTED
            target.next_step_at = None
            break
        step = plan[target.step_position]
        people = [user for user in step.recipients(now) if user.pk not in answered]
        label = step.label if target.round == 0 else f"{step.label} (repeat {target.round})"
        created += _notifications_create(activation, target, people, label, now)
        target.step_position += 1
        target.steps_taken += 1
        target.next_step_at = now
        if people and step.wait_minutes > 0:
            # Somebody was alerted: give them the step's time to answer. A step that reached
            # nobody (a gap in the rota) does not hold the escalation up.
            target.next_step_at = now + timedelta(minutes=step.wait_minutes)
            break
    target.save(update_fields=["state", "step_position", "round", "steps_taken", "next_step_at"])
    _escalate_on_commit(target)
    return created


def _notifications_create(
    activation: Activation,
    target: ActivationTarget,
    people: Sequence[User],
    step: str,
    now: datetime,
) -> list[int]:
    """One notification per person per active contact method, plus one in-app each."""
    if not people:
        return []
    methods: dict[int, list[ContactMethod]] = {}
    for method in ContactMethod.objects.filter(
        user__in=[p.pk for p in people], is_active=True
    ).order_by("user_id", "kind", "id"):
        methods.setdefault(method.user_id, []).append(method)
    rows = []
    for person in people:
        common = {
            "activation": activation,
            "target": target,
            "recipient": person,
            "step": step[:120],
            "round": target.round,
            "next_attempt_at": now,
            "created_at": now,
        }
        for method in methods.get(person.pk, []):
            rows.append(
                Notification(
                    channel=method.kind, contact_method=method, address=method.address, **common
                )
            )
        rows.append(Notification(channel=Channel.IN_APP, address=str(person.pk), **common))
    created = Notification.objects.bulk_create(rows)
    return [n.pk for n in created]


# --- Sending an activation ---------------------------------------------------------------------


def activation_send(
    *,
    user: User,
    message: str,
    agencies: Sequence[Agency],
    urgency: str = Urgency.IMMEDIATE,
    quorum: str = Quorum.EACH_AGENCY,
    quorum_per_agency: int = 1,
    response_deadline: datetime | None = None,
    incident: Incident | None = None,
    is_exercise: bool | None = None,
) -> Activation:
    """Call the on-call duty officers of ``agencies`` (commanders and the duty desk only).

    Resolves who is on call now, and creates every first notification in this transaction.
    """
    require(user, Capability.ACTIVATION_SEND)
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    text_required(errors, message=message)
    if len(message or "") > MESSAGE_MAX_LENGTH:
        errors.setdefault("message", []).append(
            f"Keep it to {MESSAGE_MAX_LENGTH} characters: it goes out by SMS too."
        )
    if urgency not in Urgency.values:
        errors.setdefault("urgency", []).append(f"Must be one of {', '.join(Urgency.values)}.")
    if quorum not in Quorum.values:
        errors.setdefault("quorum", []).append(f"Must be one of {', '.join(Quorum.values)}.")
    if not isinstance(quorum_per_agency, int) or not 1 <= quorum_per_agency <= 50:
        errors.setdefault("quorum_per_agency", []).append("Must be a whole number from 1 to 50.")
    deadline = response_deadline or now + DEFAULT_RESPONSE_WINDOW
    if deadline <= now:
        errors.setdefault("response_deadline", []).append("Must be in the future.")
    elif deadline > now + MAX_RESPONSE_WINDOW:
        errors.setdefault("response_deadline", []).append("Must be within 7 days.")
    unique = list({agency.pk: agency for agency in agencies}.values())
    if not unique:
        errors.setdefault("agencies", []).append("Choose at least one agency to call.")
    if len(unique) != len(agencies):
        errors.setdefault("agencies", []).append("An agency is listed twice.")
    city_id = user.city_id if not user.is_superuser else (unique[0].city_id if unique else None)
    for agency in unique:
        if agency.city_id != city_id:
            errors.setdefault("agencies", []).append(f"{agency} is not an agency of your city.")
        elif not agency.is_active:
            errors.setdefault("agencies", []).append(f"{agency} is inactive.")
    exercise = bool(is_exercise)
    if incident is not None:
        if not Incident.objects.visible_to(user).filter(pk=incident.pk).exists():
            errors.setdefault("incident", []).append("No such incident.")
        elif incident.status == IncidentStatus.CLOSED:
            errors.setdefault("incident", []).append(f"{incident.reference} is closed.")
        elif incident.is_exercise and is_exercise is False:
            errors.setdefault("is_exercise", []).append(
                f"{incident.reference} is an exercise; so is any activation for it."
            )
        exercise = exercise or incident.is_exercise
    errors_raise(errors)
    assert city_id is not None

    with transaction.atomic():
        if incident is not None:
            # Locked as every incident write does, so its event numbers stay gap-free.
            incident = Incident.objects.select_for_update().get(pk=incident.pk)
        activation = Activation.objects.create(
            city_id=city_id,
            incident=incident,
            message=message.strip(),
            urgency=urgency,
            is_exercise=exercise,
            quorum=quorum,
            quorum_per_agency=quorum_per_agency,
            response_deadline=deadline,
            created_by=user,
            created_at=now,
        )
        defaults = {
            policy.agency_id: policy.pk
            for policy in EscalationPolicy.objects.filter(
                agency__in=[a.pk for a in unique], is_default=True
            )
        }
        created: list[int] = []
        for agency in sorted(unique, key=lambda a: a.pk):
            target = ActivationTarget.objects.create(
                activation=activation, agency=agency, policy_id=defaults.get(agency.pk)
            )
            created += _escalation_run(activation, target, now)
        if incident is not None:
            event_append(
                incident=incident,
                kind="activation.sent",
                payload=_activation_summary(activation, unique),
                actor=user,
                subject=activation,
            )
        _deliver_on_commit(created)
        _board_changed(activation.pk)
    return activation


def _activation_summary(activation: Activation, agencies: Iterable[Agency]) -> dict[str, Any]:
    return {
        "activation": activation.pk,
        "message": activation.message,
        "urgency": activation.urgency,
        "is_exercise": activation.is_exercise,
        "agencies": sorted(agency.short_name for agency in agencies),
        "status": activation.status,
    }


# --- Delivering notifications -----------------------------------------------------------------


def _message_for(notification: Notification) -> Outgoing:
    activation = notification.activation
    zone = activation.city.zone
    deadline = activation.response_deadline.astimezone(zone).strftime("%H:%M %Z")
    exercise = "EXERCISE EXERCISE EXERCISE. " if activation.is_exercise else ""
    urgency = activation.get_urgency_display().upper()
    link = ack_url(notification)
    incident = activation.incident
    about = f"{incident.reference} {incident.title}" if incident is not None else ""
    subject = f"{exercise}CTPN activation ({urgency}): {activation.message[:60]}"
    if notification.channel == Channel.SMS:
        text = (
            f"{exercise}CTPN ACTIVATION ({urgency}): {activation.message} "
            f"Respond by {deadline}. Answer: {link}"
        )
    else:
        lines = [
            f"{exercise}CTPN ACTIVATION, {urgency}",
            "",
            activation.message,
            "",
            *([f"Incident: {about}"] if about else []),
            f"Your agency: {notification.target.agency.name}",
            f"Respond by: {deadline}",
            "",
            f"Answer with one tap: {link}",
        ]
        if activation.is_exercise:
            lines.append("\nEXERCISE EXERCISE EXERCISE")
        text = "\n".join(lines)
    alert = {
        "activation": activation.pk,
        "notification": notification.pk,
        "title": f"{exercise}Activation ({urgency})",
        "message": activation.message,
        "urgency": activation.urgency,
        "is_exercise": activation.is_exercise,
        "incident": incident.reference if incident is not None else None,
        "agency": notification.target.agency.short_name,
        "response_deadline": activation.response_deadline.isoformat(),
        "ack_url": link,
    }
    secret = notification.contact_method.signing_secret if notification.contact_method else ""
    return Outgoing(
        idempotency_key=str(notification.idempotency_key),
        channel=notification.channel,
        address=notification.address,
        subject=subject,
        text=text,
        alert=alert,
        recipient_id=notification.recipient_id,
        secret=secret,
    )


def _retry_delay(attempts: int) -> timedelta:
    # 2, 4, 8... seconds, at most a minute, with jitter so retries of one outage spread out.
    base = min(60.0, 2.0**attempts)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def notification_claim(*, notification_id: int, now: datetime | None = None) -> bool:
    """Take the lease on a queued notification that is due. Only one caller at a time wins."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.ALERT_LEASE_SECONDS)
    claimed = (
        Notification.objects.filter(
            pk=notification_id, state=NotificationState.QUEUED, next_attempt_at__lte=now
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + lease, attempts=F("attempts") + 1)
    )
    return claimed == 1


def notification_deliver(*, notification_id: int) -> str:
    """Send one notification if it is queued, due and nobody else holds it; record the outcome.

    Returns what happened: ``skipped`` (not ours to send), ``sent``, ``delivered``, ``retry`` or
    ``failed``.
    """
    started = timezone.now()
    if not notification_claim(notification_id=notification_id, now=started):
        return "skipped"
    notification = Notification.objects.select_related(
        "activation__city", "activation__incident", "target__agency", "contact_method"
    ).get(pk=notification_id)
    # Written before sending, so an attempt that never finishes (a killed worker) is visible.
    attempt = DeliveryAttempt.objects.create(
        notification=notification, number=notification.attempts, started_at=started
    )
    try:
        receipt = channel_for(notification.channel).send(_message_for(notification))
    except DeliveryFailed as exc:
        return _record_failure(notification, attempt, exc)
    except Exception as exc:  # a bug in a channel must not leave the lease to run out silently
        logger.exception("channel %s crashed on notification %s", notification.channel, exc)
        return _record_failure(notification, attempt, DeliveryFailed(repr(exc), permanent=False))
    return _record_success(notification, attempt, receipt)


def _record_success(notification: Notification, attempt: DeliveryAttempt, receipt: Receipt) -> str:
    now = timezone.now()
    outcome = "delivered" if receipt.delivered else "sent"
    with transaction.atomic():
        row = Notification.objects.select_for_update().get(pk=notification.pk)
        row.sent_at = row.sent_at or now
        if receipt.delivered:
            row.delivered_at = row.delivered_at or now
        if row.state in (NotificationState.QUEUED, NotificationState.SENT):
            row.state = NotificationState.DELIVERED if receipt.delivered else NotificationState.SENT
        row.claimed_until = None
        row.failure_reason = ""
        row.save(
            update_fields=[
                "state",
                "sent_at",
                "delivered_at",
                "claimed_until",
                "failure_reason",
            ]
        )
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now, outcome=outcome, detail=receipt.detail[:1000]
        )
        _board_changed(row.activation_id, notifications=[row.pk], rows_only=True)
    return outcome


def _record_failure(
    notification: Notification, attempt: DeliveryAttempt, failure: DeliveryFailed
) -> str:
    from .tasks import notification_deliver_task

    now = timezone.now()
    with transaction.atomic():
        row = Notification.objects.select_for_update().get(pk=notification.pk)
        final = failure.permanent or row.attempts >= settings.ALERT_MAX_ATTEMPTS
        outcome = "failed" if final else "retry"
        row.failure_reason = failure.reason[:1000]
        row.claimed_until = None
        if row.state == NotificationState.QUEUED:
            if final:
                row.state = NotificationState.FAILED
                row.failed_at = now
            else:
                row.next_attempt_at = now + _retry_delay(row.attempts)
                due = row.next_attempt_at
                pk = row.pk
                transaction.on_commit(
                    lambda: notification_deliver_task.apply_async((pk,), eta=due), robust=True
                )
        row.save(
            update_fields=[
                "state",
                "failed_at",
                "failure_reason",
                "claimed_until",
                "next_attempt_at",
            ]
        )
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now, outcome=outcome, detail=failure.reason[:1000]
        )
        _board_changed(row.activation_id, notifications=[row.pk], rows_only=True)
    return outcome


def notification_seen(*, notification_id: int, user: User) -> Notification:
    """The recipient's page displayed an in-app alert: that is delivery."""
    with transaction.atomic():
        row = (
            Notification.objects.visible_to(user)
            .select_for_update()
            .get(pk=notification_id, recipient=user, channel=Channel.IN_APP)
        )
        if row.delivered_at is None:
            now = timezone.now()
            row.delivered_at = now
            row.sent_at = row.sent_at or now
            if row.state in (NotificationState.QUEUED, NotificationState.SENT):
                row.state = NotificationState.DELIVERED
            row.save(update_fields=["delivered_at", "sent_at", "state"])
            _board_changed(row.activation_id, notifications=[row.pk], rows_only=True)
    return row


# --- Escalation --------------------------------------------------------------------------------


def escalation_advance(
    *, target_id: int, expected_steps: int | None = None, now: datetime | None = None
) -> str:
    """Take the target's next escalation step if it is due.

    ``expected_steps`` is the ``steps_taken`` a scheduled task was created for: any other count
    means the task is stale or a duplicate (``stale``). A step not yet due is never taken
    (``early``: the task schedules itself again for the due time). The sweep passes None.
    """
    now = now or timezone.now()
    with transaction.atomic():
        activation_id = (
            ActivationTarget.objects.filter(pk=target_id).values_list("activation_id", flat=True)
        ).first()
        if activation_id is None:
            return "gone"
        activation = Activation.objects.select_for_update().get(pk=activation_id)
        target = (
            ActivationTarget.objects.select_for_update().select_related("agency").get(pk=target_id)
        )
        if expected_steps is not None and target.steps_taken != expected_steps:
            return "stale"
        if activation.status != ActivationStatus.OPEN or target.state != TargetState.ESCALATING:
            return "done"
        if target.next_step_at is not None and target.next_step_at > now:
            _escalate_on_commit(target)
            return "early"
        created = _escalation_run(activation, target, now)
        _deliver_on_commit(created)
        _board_changed(activation.pk, notifications=created)
    return "stepped"


# --- Acknowledgement ---------------------------------------------------------------------------


def _answer_validate(response: str, eta_minutes: int | None) -> None:
    errors: dict[str, list[str]] = {}
    if response not in Response.values:
        errors.setdefault("response", []).append(f"Must be one of {', '.join(Response.values)}.")
    elif response == Response.ATTENDING:
        if eta_minutes is None:
            errors.setdefault("eta_minutes", []).append("Say in how many minutes you arrive.")
        elif not isinstance(eta_minutes, int) or not 0 <= eta_minutes <= MAX_ETA_MINUTES:
            errors.setdefault("eta_minutes", []).append(
                f"Must be a whole number of minutes from 0 to {MAX_ETA_MINUTES}."
            )
    elif eta_minutes is not None:
        errors.setdefault("eta_minutes", []).append("Only an attending answer has an ETA.")
    errors_raise(errors)


def activation_acknowledge(
    *,
    activation_id: int,
    user: User,
    response: str,
    eta_minutes: int | None = None,
    via: str = AnsweredVia.API,
    notification: Notification | None = None,
) -> tuple[Acknowledgement, bool]:
    """Record a person's answer to an activation; ``(answer, True)`` when it is new.

    Only someone the activation alerted can answer. The first answer stands: answering again
    returns it unchanged (``False``). "Cannot attend" escalates the person's agency at once.
    """
    _answer_validate(response, eta_minutes)
    if via not in AnsweredVia.values:
        raise ValidationError({"via": ["Unknown channel."]})
    now = timezone.now()
    with transaction.atomic():
        activation = Activation.objects.select_for_update().get(pk=activation_id)
        existing = Acknowledgement.objects.filter(activation=activation, user=user).first()
        if existing is not None:
            return existing, False
        if activation.status == ActivationStatus.CANCELLED:
            raise Conflict("This activation was stood down; it needs no answer.", allowed=[])
        mine = list(
            Notification.objects.filter(activation=activation, recipient=user).order_by("id")
        )
        if not mine:
            raise PermissionDenied("This activation did not alert you, so you cannot answer it.")
        answered_through = notification if notification is not None else mine[0]
        target = ActivationTarget.objects.select_for_update().get(pk=answered_through.target_id)
        answer = Acknowledgement.objects.create(
            activation=activation,
            target=target,
            user=user,
            notification=answered_through,
            response=response,
            eta_minutes=eta_minutes if response == Response.ATTENDING else None,
            via=via,
            created_at=now,
        )
        settled = [n.pk for n in mine if n.state in OUTSTANDING]
        # Whatever already reached them is acknowledged; what has not gone out is not needed.
        Notification.objects.filter(pk__in=settled).exclude(state=NotificationState.QUEUED).update(
            state=NotificationState.ACKNOWLEDGED, acknowledged_at=now, claimed_until=None
        )
        Notification.objects.filter(pk__in=settled, state=NotificationState.QUEUED).update(
            state=NotificationState.CANCELLED,
            failure_reason="Answered through another channel first.",
            claimed_until=None,
        )
        created: list[int] = []
        if response == Response.CANNOT_ATTEND:
            if (
                activation.status == ActivationStatus.OPEN
                and target.state == TargetState.ESCALATING
            ):
                target.next_step_at = now  # skip the rest of the wait: escalate now
                created = _escalation_run(activation, target, now)
        else:
            _quorum_update(activation, target, now)
        _deliver_on_commit(created)
        _board_changed(activation.pk, notifications=[*settled, *created])
    return answer, True


def _quorum_update(activation: Activation, target: ActivationTarget, now: datetime) -> None:
    """Stop the agency's escalation when its part is met; complete the activation when all is."""
    counted = Acknowledgement.objects.filter(target=target).exclude(response=Response.CANNOT_ATTEND)
    if (
        target.state in (TargetState.ESCALATING, TargetState.EXHAUSTED)
        and counted.count() >= activation.quorum_per_agency
    ):
        target.state = TargetState.SATISFIED
        target.satisfied_at = now
        target.next_step_at = None
        target.save(update_fields=["state", "satisfied_at", "next_step_at"])
    if activation.status != ActivationStatus.OPEN:
        return
    targets = list(ActivationTarget.objects.select_for_update().filter(activation=activation))
    satisfied = [t for t in targets if t.state == TargetState.SATISFIED]
    met = (
        bool(satisfied)
        if activation.quorum == Quorum.ANY_AGENCY
        else len(satisfied) == len(targets)
    )
    if met:
        _activation_close(activation, ActivationStatus.COMPLETED, now)


def _activation_close(activation: Activation, status: str, now: datetime) -> None:
    activation.status = status
    if status == ActivationStatus.COMPLETED:
        activation.completed_at = now
    else:
        activation.cancelled_at = now
    activation.save(update_fields=["status", "completed_at", "cancelled_at"])
    ActivationTarget.objects.filter(
        activation=activation, state__in=[TargetState.ESCALATING, TargetState.EXHAUSTED]
    ).update(state=TargetState.STOPPED, next_step_at=None)
    if activation.incident_id is not None:
        incident = Incident.objects.select_for_update().get(pk=activation.incident_id)
        event_append(
            incident=incident,
            kind=f"activation.{status}",
            payload=_activation_summary(
                activation, Agency.objects.filter(pk__in=activation.targets.values("agency_id"))
            ),
            subject=activation,
        )


def activation_cancel(*, activation_id: int, user: User) -> Activation:
    """Stand an activation down: escalation stops and what has not gone out is not sent."""
    require(user, Capability.ACTIVATION_SEND)
    now = timezone.now()
    with transaction.atomic():
        activation = Activation.objects.visible_to(user).select_for_update().get(pk=activation_id)
        if activation.status != ActivationStatus.OPEN:
            raise Conflict(
                f"This activation is already {activation.get_status_display().lower()}.",
                allowed=[],
            )
        ActivationTarget.objects.select_for_update().filter(activation=activation).exists()
        _activation_close(activation, ActivationStatus.CANCELLED, now)
        Notification.objects.filter(activation=activation, state=NotificationState.QUEUED).update(
            state=NotificationState.CANCELLED, failure_reason="The activation was stood down."
        )
        _board_changed(activation.pk)
    return activation


# --- The sweep ---------------------------------------------------------------------------------


def alerts_sweep(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Re-drive what a lost task or a dead worker left behind, and take due escalation steps.

    A queued notification nobody took within the grace after it was due (its task lost, or its
    worker killed with the lease now expired) is sent again through a fresh task; its due time
    moves to now, so the next sweep gives the new task the same grace. Escalation steps are
    only taken when due (``escalation_advance`` refuses early ones).
    """
    from .tasks import notification_deliver_task

    now = now or timezone.now()
    grace = timedelta(seconds=settings.ALERT_SWEEP_GRACE_SECONDS)
    stuck = list(
        Notification.objects.filter(
            state=NotificationState.QUEUED, next_attempt_at__lte=now - grace
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", "next_attempt_at")[:limit]
    )
    redriven = []
    for pk, due in stuck:
        # Conditional: a notification claimed or moved on since it was read is left alone.
        if Notification.objects.filter(
            pk=pk, state=NotificationState.QUEUED, next_attempt_at=due
        ).update(next_attempt_at=now):
            redriven.append(pk)
    for pk in redriven:
        notification_deliver_task.delay(pk)
    due_targets = list(
        ActivationTarget.objects.filter(
            state=TargetState.ESCALATING,
            next_step_at__lte=now,
            activation__status=ActivationStatus.OPEN,
        )
        .order_by("next_step_at")
        .values_list("pk", flat=True)[:limit]
    )
    stepped = 0
    for pk in due_targets:
        if escalation_advance(target_id=pk, now=now) == "stepped":
            stepped += 1
    watchdog.heartbeat_write("sweep")
    return {"redriven": len(redriven), "escalated": stepped}
