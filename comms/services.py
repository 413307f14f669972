"""Writes of the comms app.

Rota part: rotas, shifts, cover (overrides), contact methods, responder groups and escalation
policies. Every write checks who may make it, validates the whole request (one ValidationError
naming every field at fault) and writes inside one transaction. Locks are taken in one order:
agency, then rota, then user.
"""

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from coordination.models import Agency, User
from coordination.roles import Capability, user_can
from coordination.validation import EARLIEST_INSTANT, Errors, errors_raise, require, text_required

from .models import (
    LATEST_INSTANT,
    MAX_SHIFT_DURATION,
    ContactKind,
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    Recurrence,
    ResponderGroup,
    Rota,
    RotaOverride,
    Shift,
    StepTarget,
    Tier,
    new_calendar_key,
    new_signing_secret,
)

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
