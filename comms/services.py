"""Writes of the comms app.

Rota part: rotas, shifts, cover (overrides), contact methods, responder groups and escalation
policies. Every write checks who may make it, validates the whole request (one ValidationError
naming every field at fault) and writes inside one transaction. Locks are taken in one order:
agency, then rota, then user.

Activation part: send an activation, deliver its notifications, escalate, take acknowledgements,
sweep up what a lost worker left. Reliability (invariant 3), in one place:

- The activation's transaction writes its notifications (the outbox); tasks are only scheduled
  on commit, with ids. A task that runs twice, late or for a row that moved on does nothing.
- Delivery claims a notification with a conditional UPDATE that sets a lease (``claimed_until``)
  before sending, because sending cannot be part of a database transaction. A worker that dies
  mid-send leaves the lease to expire; the sweep then sends again, under the same idempotency key.
- Escalation runs entirely inside a transaction holding the target's row lock, so that lock is
  its lease (a dead worker's connection releases it). A step carries the ``steps_taken`` count it
  expects; a task that wakes before the step is due schedules itself again for the due time.
- Lock order for activations: activation, then its targets, then notifications.
"""

import ipaddress
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from coordination.models import Agency, User
from coordination.roles import Capability, user_can
from coordination.validation import EARLIEST_INSTANT, Errors, errors_raise, require, text_required
from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident, IncidentStatus

from . import watchdog
from .delivery import DeliveryFailed, Outgoing, Receipt, channel_for
from .models import (
    LATEST_INSTANT,
    MAX_SHIFT_DURATION,
    Acknowledgement,
    Activation,
    ActivationStatus,
    ActivationTarget,
    AnsweredVia,
    Channel,
    ContactKind,
    ContactMethod,
    DeliveryAttempt,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationState,
    Quorum,
    Recurrence,
    ResponderGroup,
    Response,
    Rota,
    RotaOverride,
    Shift,
    StepTarget,
    TargetState,
    Tier,
    Urgency,
    new_calendar_key,
    new_signing_secret,
)
from .rotas import duty_officers, escalation_step_recipients

MAX_INTERVAL = 52
MAX_OVERRIDE_DURATION = timedelta(days=366)
MAX_CONTACT_METHODS = 20
MAX_STEPS = 20
MAX_REPEATS = 10
MAX_WAIT_MINUTES = 24 * 60


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _text_max(errors: Errors, field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        _add(errors, field, f"At most {limit} characters.")


# --- Rotas, shifts and cover -------------------------------------------------------------------


def _agency_for_management(*, user: User, agency: Agency) -> Agency:
    """Lock the agency; only a rota manager of its city (or a superuser) may go on."""
    locked = Agency.objects.visible_to(user).select_for_update().get(pk=agency.pk)
    require(user, Capability.ROTA_MANAGE)
    return locked


def rota_lock_for_write(*, rota_id: int, user: User) -> Rota:
    """Lock and return a rota the user may see and manage.

    Raises ``Rota.DoesNotExist`` for a rota of another city (404, never revealing it exists) and
    ``PermissionDenied`` for a visible rota the user's roles do not allow them to change.
    """
    rota = (
        Rota.objects.visible_to(user)
        .select_related("agency__city")
        .select_for_update(of=("self",))
        .get(pk=rota_id)
    )
    require(user, Capability.ROTA_MANAGE)
    return rota


def rota_create(*, user: User, agency: Agency, name: str, description: str = "") -> Rota:
    """Give an agency of the manager's city a new on-call rota."""
    errors: Errors = {}
    text_required(errors, name=name)
    _text_max(errors, "name", name.strip(), 100)
    errors_raise(errors)
    with transaction.atomic():
        agency = _agency_for_management(user=user, agency=agency)
        if Rota.objects.filter(agency=agency, name__iexact=name.strip()).exists():
            raise ValidationError({"name": ["This agency already has a rota of that name."]})
        return Rota.objects.create(
            agency=agency, name=name.strip(), description=description.strip()
        )


def rota_calendar_revoke(*, user: User, rota_id: int) -> Rota:
    """Revoke every calendar feed URL of a rota handed out so far; a new one replaces them."""
    with transaction.atomic():
        rota = rota_lock_for_write(rota_id=rota_id, user=user)
        rota.calendar_key = new_calendar_key()
        rota.save(update_fields=["calendar_key"])
    return rota


def _officer_check(errors: Errors, rota: Rota, officer: User | None) -> None:
    if officer is None:
        _add(errors, "user", "Say who is on duty.")
    elif officer.agency_id != rota.agency_id:
        _add(errors, "user", "Must be a person of the rota's agency.")
    elif not officer.is_active:
        _add(errors, "user", "This person's account is deactivated.")


def _instant_range_check(errors: Errors, starts_at: Any, ends_at: Any) -> bool:
    ok = True
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if not isinstance(value, datetime) or timezone.is_naive(value):
            _add(errors, name, "Give a date and time with its UTC offset.")
            ok = False
        elif value < EARLIEST_INSTANT:
            _add(errors, name, "Must be in the year 2000 or later.")
            ok = False
        elif value >= LATEST_INSTANT:
            _add(errors, name, f"Must be before {LATEST_INSTANT:%Y}.")
            ok = False
    if ok and ends_at <= starts_at:
        _add(errors, "ends_at", "Must be after the start.")
        ok = False
    return ok


@dataclass(frozen=True)
class WallClock:
    """A shift's start and length on the city's wall clock."""

    start_date: date
    start_time: Any
    duration: timedelta


def wall_clock(rota: Rota, starts_at: datetime, ends_at: datetime) -> WallClock:
    """Read two instants as the city's local wall-clock start and wall-clock length."""
    zone = rota.agency.city.zone
    local_start = starts_at.astimezone(zone).replace(tzinfo=None)
    local_end = ends_at.astimezone(zone).replace(tzinfo=None)
    return WallClock(
        start_date=local_start.date(),
        start_time=local_start.time(),
        duration=local_end - local_start,
    )


def shift_create(
    *,
    user: User,
    rota_id: int,
    officer: User | None,
    starts_at: datetime,
    ends_at: datetime,
    tier: str = Tier.PRIMARY,
    recurrence: str = Recurrence.ONCE,
    interval: int = 1,
    repeat_until: date | None = None,
    note: str = "",
) -> Shift:
    """Put a person on a tier of a rota from ``starts_at`` to ``ends_at``, once or repeating.

    The instants are read on the city's wall clock: a weekly shift given as Monday 08:00 to the
    next Monday 08:00 repeats at 08:00 local whatever the daylight-saving offset.
    """
    errors: Errors = {}
    if tier not in Tier.values:
        _add(errors, "tier", f"Unknown tier {tier!r}; use primary or secondary.")
    if recurrence not in Recurrence.values:
        _add(errors, "recurrence", f"Unknown recurrence {recurrence!r}; use once, daily or weekly.")
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        _add(errors, "interval", "Must be a whole number of at least 1.")
    elif interval > MAX_INTERVAL:
        _add(errors, "interval", f"At most {MAX_INTERVAL}.")
    _text_max(errors, "note", note.strip(), 200)
    times_ok = _instant_range_check(errors, starts_at, ends_at)
    with transaction.atomic():
        rota = rota_lock_for_write(rota_id=rota_id, user=user)
        _officer_check(errors, rota, officer)
        clock = wall_clock(rota, starts_at, ends_at) if times_ok else None
        if clock is not None:
            if clock.duration <= timedelta(0):
                # Possible only across the autumn change: the end repeats an earlier local time.
                _add(errors, "ends_at", "Must be after the start on the local clock.")
            elif clock.duration > MAX_SHIFT_DURATION:
                _add(errors, "ends_at", "A shift lasts at most 28 days; repeat it instead.")
            step = (
                1 if recurrence == Recurrence.DAILY else 7 if recurrence == Recurrence.WEEKLY else 0
            )
            if step and isinstance(interval, int) and clock.duration > timedelta(step * interval):
                _add(
                    errors,
                    "ends_at",
                    "A repeating shift must end before its next occurrence starts.",
                )
            if repeat_until is not None:
                if recurrence == Recurrence.ONCE:
                    _add(errors, "repeat_until", "Only a repeating shift has a last date.")
                elif repeat_until < clock.start_date:
                    _add(errors, "repeat_until", "Must not be before the first occurrence.")
                elif repeat_until >= LATEST_INSTANT.date():
                    _add(errors, "repeat_until", f"Must be before {LATEST_INSTANT:%Y}.")
        errors_raise(errors)
        assert clock is not None and officer is not None
        return Shift.objects.create(
            rota=rota,
            tier=tier,
            user=officer,
            start_date=clock.start_date,
            start_time=clock.start_time,
            duration=clock.duration,
            recurrence=recurrence,
            interval=interval,
            repeat_until=repeat_until,
            note=note.strip(),
            created_by=user,
        )


def shift_delete(*, user: User, shift_id: int) -> None:
    """Remove a shift, every occurrence of it (past ones too: the rota is a plan, not a log)."""
    with transaction.atomic():
        rota_id = Shift.objects.visible_to(user).values_list("rota_id", flat=True).get(pk=shift_id)
        rota_lock_for_write(rota_id=rota_id, user=user)
        Shift.objects.filter(pk=shift_id).delete()


def override_create(
    *,
    user: User,
    rota_id: int,
    officer: User | None,
    starts_at: datetime,
    ends_at: datetime,
    tier: str = Tier.PRIMARY,
    reason: str = "",
) -> RotaOverride:
    """Cover: ``officer`` holds a tier of a rota from ``starts_at`` to ``ends_at`` whatever the
    shifts say."""
    errors: Errors = {}
    if tier not in Tier.values:
        _add(errors, "tier", f"Unknown tier {tier!r}; use primary or secondary.")
    _text_max(errors, "reason", reason.strip(), 200)
    if _instant_range_check(errors, starts_at, ends_at):
        if ends_at - starts_at > MAX_OVERRIDE_DURATION:
            _add(errors, "ends_at", "Cover lasts at most a year; change the shifts instead.")
        if ends_at <= timezone.now():
            _add(errors, "ends_at", "This cover would already be over.")
    with transaction.atomic():
        rota = rota_lock_for_write(rota_id=rota_id, user=user)
        _officer_check(errors, rota, officer)
        errors_raise(errors)
        assert officer is not None
        return RotaOverride.objects.create(
            rota=rota,
            tier=tier,
            user=officer,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason.strip(),
            created_by=user,
        )


def override_delete(*, user: User, override_id: int) -> None:
    """Withdraw cover; the shifts apply again."""
    with transaction.atomic():
        rota_id = (
            RotaOverride.objects.visible_to(user)
            .values_list("rota_id", flat=True)
            .get(pk=override_id)
        )
        rota_lock_for_write(rota_id=rota_id, user=user)
        RotaOverride.objects.filter(pk=override_id).delete()


# --- Contact methods ---------------------------------------------------------------------------

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def contact_address_clean(kind: str, address: str) -> str:
    """The address in its stored form, or a ValidationError on ``address`` saying what is wrong.

    SMS: E.164 (+ and country code, 8 to 15 digits); spaces, dashes, dots and brackets are
    dropped. Webhook: an https URL, or http to a loopback host where settings allow it (tests and
    local development); no credentials in the URL, since it is shown to its owner and admins.
    """
    value = (address or "").strip()
    if not value:
        raise ValidationError({"address": ["This field may not be blank."]})
    if kind == ContactKind.EMAIL:
        try:
            EmailValidator()(value)
        except ValidationError as exc:
            raise ValidationError({"address": ["Enter a valid e-mail address."]}) from exc
        if len(value) > 254:
            raise ValidationError({"address": ["An e-mail address has at most 254 characters."]})
        return value
    if kind == ContactKind.SMS:
        number = _PHONE_SEPARATORS.sub("", value)
        if number.startswith("00"):
            number = "+" + number[2:]
        if not E164.match(number):
            raise ValidationError(
                {"address": ["Give the number in international form, e.g. +46701234567."]}
            )
        return number
    if kind == ContactKind.WEBHOOK:
        return _webhook_url_clean(value)
    raise ValidationError({"kind": [f"Unknown kind {kind!r}; use email, sms or webhook."]})


def _webhook_url_clean(value: str) -> str:
    if len(value) > 2000:
        raise ValidationError({"address": ["A webhook URL has at most 2000 characters."]})
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValidationError({"address": ["A URL has no spaces or control characters."]})
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise ValidationError({"address": ["Enter a valid URL."]}) from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError({"address": ["Enter an https URL, e.g. https://pager.example.org/."]})
    if parts.username is not None or parts.password is not None:
        raise ValidationError({"address": ["Leave credentials out of the URL."]})
    if parts.scheme == "http" and not (
        settings.ALERTING_WEBHOOK_HTTP_LOOPBACK and _is_loopback(host)
    ):
        raise ValidationError(
            {"address": ["Webhooks must use https (plain http only to this machine in tests)."]}
        )
    return value


def _contact_owner_check(user: User, owner: User) -> None:
    if owner.pk == user.pk:
        return
    if user.is_superuser:
        return
    if user_can(user, Capability.DIRECTORY_MANAGE) and owner.city_id == user.city_id:
        return
    raise PermissionDenied("Only the person or an administrator of their city may do this.")


def contact_method_create(
    *, user: User, owner: User, kind: str, address: str, label: str = ""
) -> ContactMethod:
    """Add a way to reach ``owner`` with alerts. A webhook gets a fresh signing secret."""
    _contact_owner_check(user, owner)
    errors: Errors = {}
    if kind not in ContactKind.values:
        _add(errors, "kind", f"Unknown kind {kind!r}; use email, sms or webhook.")
    _text_max(errors, "label", (label or "").strip(), 60)
    errors_raise(errors)
    clean = contact_address_clean(kind, address)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=owner.pk).first()
        if ContactMethod.objects.filter(user=owner).count() >= MAX_CONTACT_METHODS:
            raise ValidationError(
                {"non_field_errors": [f"At most {MAX_CONTACT_METHODS} contact methods a person."]}
            )
        # E-mail addresses compare without case; a URL's path and query may depend on it.
        lookup = "address__iexact" if kind == ContactKind.EMAIL else "address"
        if ContactMethod.objects.filter(user=owner, kind=kind, **{lookup: clean}).exists():
            raise ValidationError({"address": ["This address is already one of the methods."]})
        try:
            with transaction.atomic():
                return ContactMethod.objects.create(
                    user=owner,
                    kind=kind,
                    address=clean,
                    label=(label or "").strip(),
                    signing_secret=new_signing_secret() if kind == ContactKind.WEBHOOK else "",
                )
        except IntegrityError as exc:
            raise ValidationError(
                {"address": ["This address is already one of the methods."]}
            ) from exc


def _contact_method_for_write(*, user: User, method_id: int) -> ContactMethod:
    method = (
        ContactMethod.objects.visible_to(user)
        .select_related("user__agency")
        .select_for_update(of=("self",))
        .get(pk=method_id)
    )
    _contact_owner_check(user, method.user)
    return method


def contact_method_update(
    *, user: User, method_id: int, label: str | None = None, is_active: bool | None = None
) -> ContactMethod:
    """Rename a contact method or switch it off and on (its address never changes: add anew)."""
    errors: Errors = {}
    if label is not None:
        _text_max(errors, "label", label.strip(), 60)
    if is_active is not None and not isinstance(is_active, bool):
        _add(errors, "is_active", "Use true or false.")
    errors_raise(errors)
    with transaction.atomic():
        method = _contact_method_for_write(user=user, method_id=method_id)
        if label is not None:
            method.label = label.strip()
        if is_active is not None:
            method.is_active = is_active
        method.save(update_fields=["label", "is_active"])
    return method


def contact_method_rotate_secret(*, user: User, method_id: int) -> ContactMethod:
    """Replace a webhook's signing secret; bodies are signed with the new one from now on."""
    with transaction.atomic():
        method = _contact_method_for_write(user=user, method_id=method_id)
        if method.kind != ContactKind.WEBHOOK:
            raise ValidationError({"kind": ["Only a webhook has a signing secret."]})
        method.signing_secret = new_signing_secret()
        method.save(update_fields=["signing_secret"])
    return method


def contact_method_delete(*, user: User, method_id: int) -> None:
    with transaction.atomic():
        method = _contact_method_for_write(user=user, method_id=method_id)
        method.delete()


# --- Responder groups and escalation policies --------------------------------------------------


def responder_group_save(
    *,
    user: User,
    agency: Agency,
    name: str,
    members: Sequence[User] = (),
    description: str = "",
    group: ResponderGroup | None = None,
) -> ResponderGroup:
    """Create a named group of an agency's people (or replace an existing group's name and
    members)."""
    errors: Errors = {}
    text_required(errors, name=name)
    _text_max(errors, "name", name.strip(), 100)
    outsiders = [str(m) for m in members if m.agency_id != agency.pk]
    if outsiders:
        _add(errors, "members", f"Not of {agency}: {', '.join(outsiders)}.")
    if group is not None and group.agency_id != agency.pk:
        _add(errors, "agency", "A group stays with its agency.")
    errors_raise(errors)
    with transaction.atomic():
        agency = _agency_for_management(user=user, agency=agency)
        clash = ResponderGroup.objects.filter(agency=agency, name__iexact=name.strip())
        if group is not None:
            clash = clash.exclude(pk=group.pk)
        if clash.exists():
            raise ValidationError({"name": ["This agency already has a group of that name."]})
        if group is None:
            group = ResponderGroup.objects.create(
                agency=agency, name=name.strip(), description=description.strip()
            )
        else:
            group.name, group.description = name.strip(), description.strip()
            group.save(update_fields=["name", "description"])
        group.members.set(members)
    return group


@dataclass(frozen=True)
class StepSpec:
    """One step as a caller describes it, before it is validated and stored."""

    target: str
    wait_minutes: int = 5
    group: ResponderGroup | None = None


def escalation_steps_check(errors: Errors, agency: Agency, steps: Sequence[StepSpec]) -> None:
    if not steps:
        _add(errors, "steps", "Give at least one step.")
        return
    if len(steps) > MAX_STEPS:
        _add(errors, "steps", f"At most {MAX_STEPS} steps.")
    for number, step in enumerate(steps, start=1):
        if step.target not in StepTarget.values:
            _add(errors, "steps", f"Step {number}: unknown target {step.target!r}.")
        if step.target == StepTarget.GROUP:
            if step.group is None:
                _add(errors, "steps", f"Step {number}: name the group to notify.")
            elif step.group.agency_id != agency.pk:
                _add(errors, "steps", f"Step {number}: the group belongs to another agency.")
        elif step.group is not None:
            _add(errors, "steps", f"Step {number}: only a group step names a group.")
        wait = step.wait_minutes
        if not isinstance(wait, int) or isinstance(wait, bool) or wait < 0:
            _add(errors, "steps", f"Step {number}: the wait is a whole number of minutes, >= 0.")
        elif wait > MAX_WAIT_MINUTES:
            _add(errors, "steps", f"Step {number}: wait at most {MAX_WAIT_MINUTES} minutes.")


def escalation_policy_save(
    *,
    user: User,
    agency: Agency,
    name: str,
    steps: Sequence[StepSpec],
    repeat_count: int = 0,
    rota: Rota | None = None,
    is_default: bool = False,
    policy: EscalationPolicy | None = None,
) -> EscalationPolicy:
    """Create an agency's escalation policy, or replace an existing one's settings and steps.

    Making a policy the default takes the default from the agency's other policy.
    """
    errors: Errors = {}
    text_required(errors, name=name)
    _text_max(errors, "name", (name or "").strip(), 100)
    escalation_steps_check(errors, agency, steps)
    if not isinstance(repeat_count, int) or isinstance(repeat_count, bool) or repeat_count < 0:
        _add(errors, "repeat_count", "Must be a whole number, 0 or more.")
    elif repeat_count > MAX_REPEATS:
        _add(errors, "repeat_count", f"At most {MAX_REPEATS}.")
    elif repeat_count and not any(
        isinstance(s.wait_minutes, int) and s.wait_minutes > 0 for s in steps
    ):
        # Repeating with no wait anywhere would notify everyone K times in the same instant.
        _add(errors, "repeat_count", "A repeating policy needs a wait in at least one step.")
    if rota is not None and rota.agency_id != agency.pk:
        _add(errors, "rota", "Must be a rota of the same agency.")
    elif rota is not None and not rota.is_active:
        _add(errors, "rota", "This rota is inactive: nobody on it would be alerted.")
    if policy is not None and policy.agency_id != agency.pk:
        _add(errors, "agency", "A policy stays with its agency.")
    errors_raise(errors)
    with transaction.atomic():
        agency = _agency_for_management(user=user, agency=agency)
        clash = EscalationPolicy.objects.filter(agency=agency, name__iexact=name.strip())
        if policy is not None:
            clash = clash.exclude(pk=policy.pk)
        if clash.exists():
            raise ValidationError({"name": ["This agency already has a policy of that name."]})
        if is_default:
            others = EscalationPolicy.objects.filter(agency=agency, is_default=True)
            if policy is not None:
                others = others.exclude(pk=policy.pk)
            others.update(is_default=False)
        if policy is None:
            policy = EscalationPolicy(agency=agency)
        policy.name = name.strip()
        policy.repeat_count = repeat_count
        policy.rota = rota
        policy.is_default = is_default
        policy.save()
        policy.steps.all().delete()
        EscalationStep.objects.bulk_create(
            EscalationStep(
                policy=policy,
                position=position,
                target=step.target,
                group=step.group,
                wait_minutes=step.wait_minutes,
            )
            for position, step in enumerate(steps, start=1)
        )
    return policy


# ================================================================================================
# Activation alerting
# ================================================================================================


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


class _BoardCoalescer:
    """Board updates after deliveries and escalation steps, coalesced per activation in this
    process: published from a timer thread at most every ``ALERT_BOARD_COALESCE_MS``, the first
    at once, instead of one message (and its queries) after each of hundreds of sends.
    A lost update is tolerated as any publish is: boards reload on reconnect."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, set[int]] = {}
        self.full: set[int] = set()  # activations whose next message carries the whole board
        self.last: dict[int, float] = {}
        self.timers: dict[int, threading.Timer] = {}

    def add(self, activation_id: int, notification_ids: Iterable[int], full: bool = False) -> None:
        interval = settings.ALERT_BOARD_COALESCE_MS / 1000
        if interval <= 0:
            _publish(
                activation_topic(activation_id),
                self._message(activation_id, notification_ids, full=full),
            )
            return
        with self.lock:
            self.pending.setdefault(activation_id, set()).update(notification_ids)
            if full:
                self.full.add(activation_id)
            if activation_id not in self.timers:
                # Built and published from a thread of its own, never on the task's path: a
                # whole board takes a while to build, and an escalation step must not wait.
                wait = self.last.get(activation_id, 0.0) + interval - time.monotonic()
                timer = threading.Timer(max(0.0, wait), self._flush_later, args=(activation_id,))
                timer.daemon = True
                self.timers[activation_id] = timer
                timer.start()

    @staticmethod
    def _message(
        activation_id: int, notification_ids: Iterable[int], full: bool = False
    ) -> dict[str, Any]:
        from .serializers import board_messages

        return board_messages(
            activation_id=activation_id,
            notification_ids=sorted(notification_ids),
            rows_only=not full,
        )

    def flush(self, activation_id: int) -> None:
        with self.lock:
            self.timers.pop(activation_id, None)
            ids = self.pending.pop(activation_id, None)
            full = activation_id in self.full
            self.full.discard(activation_id)
            self.last[activation_id] = time.monotonic()
            if len(self.last) > 1000:  # forget activations long done
                horizon = time.monotonic() - 60
                self.last = {k: v for k, v in self.last.items() if v > horizon}
        if ids is not None and (ids or full):
            try:
                _publish(
                    activation_topic(activation_id), self._message(activation_id, ids, full=full)
                )
            except Exception as exc:
                logger.warning("could not build the board of activation %s: %r", activation_id, exc)

    def _flush_later(self, activation_id: int) -> None:
        try:
            self.flush(activation_id)
        finally:
            connection.close()  # this thread's own connection


_board_coalescer = _BoardCoalescer()


def _board_delivery_changed(activation_id: int, notification_id: int) -> None:
    """A delivery changed one row of a board: published after commit, coalesced."""
    transaction.on_commit(
        lambda: _board_coalescer.add(activation_id, [notification_id]), robust=True
    )


def _deliver_on_commit(notification_ids: Sequence[int]) -> None:
    """Queue the sending of these notifications after commit: one task for a single one, else
    tasks of up to ``ALERT_DELIVERY_BATCH`` (an activation's hundreds of messages do not pay a
    task, a claim and a record each)."""
    from .tasks import notification_deliver_task, notifications_deliver_task

    ids = list(notification_ids)
    size = max(1, settings.ALERT_DELIVERY_BATCH)

    def enqueue() -> None:
        if len(ids) == 1:
            notification_deliver_task.delay(ids[0])
            return
        # A short first task, so that the first person's messages go out without waiting for
        # a whole batch to be claimed and read.
        starts = [0, *range(min(2, size), len(ids), size)]
        for start, end in zip(starts, [*starts[1:], len(ids)], strict=True):
            notifications_deliver_task.delay(ids[start:end])

    if ids:
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
    path = reverse("ack", kwargs={"token": ack_token(notification)})
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


def _notifications_claim(ids: Sequence[int], now: datetime) -> list[int]:
    """Take the leases of those of ``ids`` that are queued, due and free; return the ones taken.

    On PostgreSQL in one transaction (rows another worker holds are skipped, not waited for);
    elsewhere one conditional UPDATE each, as ``notification_claim`` does.
    """
    if not connection.features.has_select_for_update_skip_locked:
        return [pk for pk in ids if notification_claim(notification_id=pk, now=now)]
    lease = timedelta(seconds=settings.ALERT_LEASE_SECONDS)
    with transaction.atomic():
        free = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(ids), state=NotificationState.QUEUED, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if free:
            Notification.objects.filter(pk__in=free).update(
                claimed_until=now + lease, attempts=F("attempts") + 1
            )
    return free


def notifications_deliver(*, notification_ids: Sequence[int]) -> dict[str, int]:
    """Send several notifications as ``notification_deliver`` sends one, with one claim, one
    read and one insert of attempts for all of them. Returns how many had each outcome.

    Each keeps its own lease, attempt row and idempotency key. Sending stops at half the lease
    (a slow far end): the rest are given back, untouched, and queued in a new task.
    """
    started = timezone.now()
    clock = time.monotonic()  # the leases run from here
    outcomes: dict[str, int] = {}
    claimed = _notifications_claim(notification_ids, started)
    skipped = len(set(notification_ids)) - len(claimed)
    if skipped:
        outcomes["skipped"] = skipped
    if not claimed:
        return outcomes
    rows = list(
        Notification.objects.select_related(
            "activation__city", "activation__incident", "target__agency", "contact_method"
        )
        .filter(pk__in=claimed)
        .order_by("pk")
    )
    attempts = DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(notification=row, number=row.attempts, started_at=started) for row in rows
    )
    budget = settings.ALERT_LEASE_SECONDS / 2
    left: list[int] = []
    for index, (row, attempt) in enumerate(zip(rows, attempts, strict=True)):
        if time.monotonic() - clock > budget:
            left = [r.pk for r in rows[index:]]
            break
        try:
            receipt = channel_for(row.channel).send(_message_for(row))
        except DeliveryFailed as exc:
            outcome = _record_failure(row, attempt, exc)
        except Exception as exc:  # a bug in a channel must not leave the lease to run out
            logger.exception("channel %s crashed on notification %s", row.channel, exc)
            outcome = _record_failure(row, attempt, DeliveryFailed(repr(exc), permanent=False))
        else:
            # Recorded before the next is sent: a worker killed mid-batch leaves at most the one
            # message in flight to be sent again.
            outcome = _record_success(row, attempt, receipt)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if left:
        _notifications_give_back(left)
        outcomes["requeued"] = len(left)
    return outcomes


def _notifications_give_back(ids: list[int]) -> None:
    """Release leases taken but not used (their attempt rows go too) and queue them again."""
    with transaction.atomic():
        DeliveryAttempt.objects.filter(
            notification_id__in=ids, outcome="", finished_at=None
        ).filter(number=F("notification__attempts")).delete()
        Notification.objects.filter(pk__in=ids, state=NotificationState.QUEUED).update(
            claimed_until=None, attempts=F("attempts") - 1
        )
        _deliver_on_commit(ids)


def _success_changes(now: datetime, delivered: bool) -> dict[str, Any]:
    state = NotificationState.DELIVERED if delivered else NotificationState.SENT
    changes: dict[str, Any] = {
        "sent_at": Coalesce("sent_at", Value(now)),
        # An answer or a receipt that came in meanwhile is not undone.
        "state": Case(
            When(state__in=[NotificationState.QUEUED, NotificationState.SENT], then=Value(state)),
            default=F("state"),
        ),
        "claimed_until": None,
        "failure_reason": "",
    }
    if delivered:
        changes["delivered_at"] = Coalesce("delivered_at", Value(now))
    return changes


def _record_success(notification: Notification, attempt: DeliveryAttempt, receipt: Receipt) -> str:
    now = timezone.now()
    outcome = "delivered" if receipt.delivered else "sent"
    detail = receipt.detail[:1000]
    if connection.vendor == "postgresql":
        # Both rows in one statement (atomic on its own, one round trip): this runs once for
        # every message an activation sends.
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORD_SUCCESS_SQL,
                _record_success_params(
                    now, receipt.delivered, attempt.pk, outcome, detail, notification.pk
                ),
            )
        _board_delivery_changed(notification.activation_id, notification.pk)
        return outcome
    with transaction.atomic():
        Notification.objects.filter(pk=notification.pk).update(
            **_success_changes(now, receipt.delivered)
        )
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now, outcome=outcome, detail=detail
        )
        _board_delivery_changed(notification.activation_id, notification.pk)
    return outcome


_RECORD_SUCCESS_SQL = f"""
WITH attempt AS (
    UPDATE {DeliveryAttempt._meta.db_table}
    SET finished_at = %s, outcome = %s, detail = %s
    WHERE id = %s
)
UPDATE {Notification._meta.db_table}
SET sent_at = COALESCE(sent_at, %s),
    delivered_at = CASE WHEN %s THEN COALESCE(delivered_at, %s) ELSE delivered_at END,
    state = CASE WHEN state IN (%s, %s) THEN %s ELSE state END,
    claimed_until = NULL,
    failure_reason = ''
WHERE id = %s
"""  # noqa: S608  (table names from the models; every value is a parameter)


def _record_success_params(
    now: datetime, delivered: bool, attempt_id: int, outcome: str, detail: str, pk: int
) -> list[Any]:
    state = NotificationState.DELIVERED if delivered else NotificationState.SENT
    return [
        *(now, outcome, detail, attempt_id),
        *(now, delivered, now),
        *(NotificationState.QUEUED.value, NotificationState.SENT.value, state.value),
        pk,
    ]


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
        _board_delivery_changed(row.activation_id, row.pk)
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


def notification_receipt(*, idempotency_key: str, delivered: bool, reason: str = "") -> bool:
    """A provider's delivery receipt for a message we sent: delivered to the handset, or not.

    Returns False when no SMS of ours has that key. A receipt never undoes an answer: an
    acknowledged notification stays acknowledged.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            Notification.objects.select_for_update()
            .filter(idempotency_key=idempotency_key, channel=Channel.SMS)
            .first()
        )
        if row is None:
            return False
        if delivered:
            row.delivered_at = row.delivered_at or now
            if row.state in (NotificationState.QUEUED, NotificationState.SENT):
                row.state = NotificationState.DELIVERED
        elif row.state in (NotificationState.SENT, NotificationState.DELIVERED):
            row.state = NotificationState.FAILED
            row.failed_at = now
            row.failure_reason = f"The SMS provider could not deliver it: {reason}"[:1000]
        row.save(update_fields=["state", "delivered_at", "failed_at", "failure_reason"])
        _board_changed(row.activation_id, notifications=[row.pk], rows_only=True)
    return True


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
        # Coalesced: a hundred agencies' steps due together do not each rebuild the board.
        transaction.on_commit(
            lambda: _board_coalescer.add(activation.pk, created, full=True), robust=True
        )
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
        try:
            if escalation_advance(target_id=pk, now=now) == "stepped":
                stepped += 1
        except Exception:
            # One agency's broken configuration must not hold up every other agency's alerts.
            logger.exception("escalation step of activation target %s failed", pk)
    watchdog.heartbeat_write("sweep")
    return {"redriven": len(redriven), "escalated": stepped}
