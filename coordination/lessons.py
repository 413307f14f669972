"""Joint debriefs, lessons identified and their lifecycle, reminders, and city-to-city sharing.

A debrief of an incident (or exercise) gathers observations from the partners; any observation
can become a lesson identified. A lesson is owned by an agency, which plans and implements the
action; the city's oversight committee verifies it (then it is "learned") or does not accept it.

Debriefs and lessons outlive the incident: they are written while the incident is closed too, so
these services lock the incident row themselves instead of using the incident log's write lock
(which refuses a closed incident). Locks are always taken incident first, then the lesson.
"""

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident
from incidents.services import audience_for, recipients_store

from .audit import audit_record
from .markings import (
    DEFAULT_MARKING,
    OPEN_TO_PARTICIPANTS,
    RESTRICTED,
    Audience,
    Marking,
    marking_validate,
)
from .models import (
    LESSON_OPEN_STATUSES,
    Agency,
    City,
    Debrief,
    DebriefStatus,
    Lesson,
    LessonSource,
    LessonStatus,
    LessonTransition,
    Observation,
    ObservationCategory,
    User,
)
from .roles import ROLE_CAPABILITIES, Capability, user_can
from .validation import errors_raise, instant_check, require, text_required

logger = logging.getLogger(__name__)

# Only these markings may leave the city (TLP:GREEN is the whole network, TLP:CLEAR public).
SHAREABLE_MARKINGS = (Marking.CLEAR, Marking.GREEN)

EXCHANGE_FORMAT = "ctpn-lesson-exchange"
EXCHANGE_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "lesson-exchange.schema.json"

# Who takes which step. The owner agency plans and implements; oversight verifies, refuses, or
# sends an implemented lesson back when the implementation does not convince.
OWNER_STEPS: dict[str, tuple[str, ...]] = {
    LessonStatus.IDENTIFIED: (LessonStatus.ACTION_PLANNED,),
    LessonStatus.ACTION_PLANNED: (LessonStatus.IMPLEMENTED,),
}
OVERSIGHT_STEPS: dict[str, tuple[str, ...]] = {
    LessonStatus.IDENTIFIED: (LessonStatus.NOT_ACCEPTED,),
    LessonStatus.ACTION_PLANNED: (LessonStatus.NOT_ACCEPTED,),
    LessonStatus.IMPLEMENTED: (
        LessonStatus.VERIFIED,
        LessonStatus.ACTION_PLANNED,
        LessonStatus.NOT_ACCEPTED,
    ),
}
# Steps that need a written reason in the history.
REASON_REQUIRED = {
    (LessonStatus.IMPLEMENTED, LessonStatus.ACTION_PLANNED),
    *((status, LessonStatus.NOT_ACCEPTED) for status in LESSON_OPEN_STATUSES),
}


def lesson_transitions(status: str) -> tuple[str, ...]:
    """Every status a lesson in ``status`` may move to, by anyone."""
    return OWNER_STEPS.get(status, ()) + OVERSIGHT_STEPS.get(status, ())


def city_today(city: City, now: datetime | None = None) -> date:
    """Today in the city's calendar: due dates are the city's days, not UTC's."""
    return (now or timezone.now()).astimezone(city.zone).date()


# --- debriefs ---------------------------------------------------------------------------------


def _incident_lock(*, incident_id: int, user: User, capability: str) -> Incident:
    """Lock an incident the user sees and takes part in (closed ones too: debriefs follow)."""
    incident = Incident.objects.visible_to(user).select_for_update().get(pk=incident_id)
    require(user, capability)
    if not user.is_superuser and (
        user.agency_id is None
        or not incident.participating_agencies.filter(pk=user.agency_id).exists()
    ):
        raise PermissionDenied(
            f"Your agency does not take part in {incident.reference}; it can read but not write."
        )
    return incident


def _debrief_payload(debrief: Debrief) -> dict[str, Any]:
    return {
        "id": debrief.pk,
        "title": debrief.title,
        "held_at": debrief.held_at.isoformat(),
        "status": debrief.status,
    }


def debrief_create(
    *,
    incident_id: int,
    user: User,
    title: str,
    held_at: datetime,
    facilitator: User | None = None,
    agencies: list[Agency] | tuple[Agency, ...] = (),
    participants: list[User] | tuple[User, ...] = (),
) -> Debrief:
    """Record that a joint debrief of the incident was (or is being) held."""
    errors: dict[str, list[str]] = {}
    text_required(errors, title=title)
    instant_check(errors, "held_at", held_at, future=True)
    errors_raise(errors)
    with transaction.atomic():
        incident = _incident_lock(
            incident_id=incident_id, user=user, capability=Capability.LESSON_WRITE
        )
        city_people = [p for p in [facilitator, *participants] if p is not None]
        if any(p.city_id != incident.city_id for p in city_people):
            raise ValidationError({"participants": ["Only people of the incident's city."]})
        if any(a.city_id != incident.city_id for a in agencies):
            raise ValidationError({"agencies": ["Only agencies of the incident's city."]})
        debrief = Debrief.objects.create(
            incident=incident,
            title=title.strip(),
            held_at=held_at,
            facilitator=facilitator,
            created_by=user,
            created_at=timezone.now(),
        )
        represented = {a.pk for a in agencies} | {p.agency_id for p in city_people if p.agency_id}
        debrief.agencies.set(represented)
        debrief.participants.set([p.pk for p in city_people])
        event_append(
            incident=incident,
            kind="debrief.created",
            payload=_debrief_payload(debrief),
            actor=user,
            subject=debrief,
        )
    return debrief


def _debrief_lock(*, debrief_id: int, user: User) -> tuple[Incident, Debrief]:
    incident_id = (
        Debrief.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=debrief_id)
    )
    incident = _incident_lock(
        incident_id=incident_id, user=user, capability=Capability.LESSON_WRITE
    )
    return incident, Debrief.objects.select_for_update().get(pk=debrief_id)


def debrief_close(*, debrief_id: int, user: User) -> Debrief:
    """Close the debrief: no further observations (lessons may still be identified)."""
    with transaction.atomic():
        incident, debrief = _debrief_lock(debrief_id=debrief_id, user=user)
        if debrief.status == DebriefStatus.CLOSED:
            raise Conflict("This debrief is already closed.", allowed=[])
        debrief.status = DebriefStatus.CLOSED
        debrief.closed_at = timezone.now()
        debrief.closed_by = user
        debrief.save(update_fields=["status", "closed_at", "closed_by"])
        event_append(
            incident=incident,
            kind="debrief.closed",
            payload=_debrief_payload(debrief),
            actor=user,
            subject=debrief,
        )
    return debrief


def observation_add(*, debrief_id: int, user: User, category: str, text: str) -> Observation:
    """Record what the user's agency observed: what went well, what did not, or other."""
    errors: dict[str, list[str]] = {}
    text_required(errors, text=text)
    if category not in ObservationCategory.values:
        errors.setdefault("category", []).append(
            f"Unknown category {category!r}; use one of {', '.join(ObservationCategory.values)}."
        )
    agency_id = user.agency_id
    if agency_id is None:
        errors.setdefault("agency", []).append("You belong to no agency.")
    errors_raise(errors)
    assert agency_id is not None
    with transaction.atomic():
        incident, debrief = _debrief_lock(debrief_id=debrief_id, user=user)
        if debrief.status != DebriefStatus.OPEN:
            raise Conflict("This debrief is closed; it takes no further observations.")
        observation = Observation.objects.create(
            debrief=debrief,
            category=category,
            text=text.strip(),
            agency_id=agency_id,
            author=user,
            created_at=timezone.now(),
        )
        event_append(
            incident=incident,
            kind="debrief.observation_added",
            payload={
                "debrief": debrief.pk,
                "observation": observation.pk,
                "category": category,
                "agency": user.agency_id,
            },
            actor=user,
            subject=debrief,
        )
    return observation


# --- lessons ----------------------------------------------------------------------------------


def lesson_payload(lesson: Lesson) -> dict[str, Any]:
    """What an event about a lesson carries (the lesson's own marking decides who reads it)."""
    return {
        "id": lesson.pk,
        "label": lesson.label,
        "title": lesson.title,
        "status": lesson.status,
        "owner_agency": lesson.owner_agency_id,
        "due_date": lesson.due_date.isoformat() if lesson.due_date else None,
        "marking": lesson.marking,
        "is_exercise": lesson.is_exercise,
    }


def _history(lesson: Lesson, *, user: User | None, before: str, note: str = "") -> None:
    LessonTransition.objects.create(
        lesson=lesson,
        from_status=before,
        to_status=lesson.status,
        note=note,
        by=user,
        by_agency_id=user.agency_id if user is not None else None,
        at=lesson.updated_at,
    )


def _lesson_event(lesson: Lesson, *, kind: str, user: User, audience: Audience, **extra) -> None:
    incident = lesson.incident
    if incident is None:
        return  # an imported lesson has no incident stream
    event_append(
        incident=incident,
        kind=kind,
        payload={**lesson_payload(lesson), **extra},
        actor=user,
        subject=lesson,
        audience=audience,
    )


def _due_date_check(errors: dict[str, list[str]], due_date: date | None) -> None:
    if due_date is not None and not date(2000, 1, 1) <= due_date <= date(2200, 12, 31):
        errors.setdefault("due_date", []).append("Must be a date between 2000 and 2200.")


def _owner_check(
    errors: dict[str, list[str]], *, city_id: int, owner_agency: Agency | None, owner: User | None
) -> None:
    if owner_agency is not None and owner_agency.city_id != city_id:
        errors.setdefault("owner_agency", []).append("Must be an agency of the lesson's city.")
    if owner is not None and (owner_agency is None or owner.agency_id != owner_agency.pk):
        errors.setdefault("owner", []).append("Must belong to the owner agency.")


def _shareable_check(errors: dict[str, list[str]], *, shareable: bool, marking: str) -> None:
    if shareable and marking not in SHAREABLE_MARKINGS:
        errors.setdefault("shareable", []).append(
            f"Only GREEN or CLEAR lessons may be shared with other cities (this one is {marking})."
        )


def lesson_create(
    *,
    incident_id: int,
    user: User,
    title: str,
    description: str,
    owner_agency: Agency,
    owner: User | None = None,
    recommended_action: str = "",
    due_date: date | None = None,
    marking: str = DEFAULT_MARKING,
    recipient_agencies: list[Agency] | tuple[Agency, ...] = (),
    recipient_people: list[User] | tuple[User, ...] = (),
    shareable: bool = False,
    debrief: Debrief | None = None,
    observation: Observation | None = None,
) -> Lesson:
    """Identify a lesson of an incident (from one of its debriefs, or one of their
    observations), owned by a participating agency."""
    errors: dict[str, list[str]] = {}
    text_required(errors, title=title, description=description)
    if len(title.strip()) > 200:
        errors.setdefault("title", []).append("At most 200 characters.")
    _due_date_check(errors, due_date)
    errors_raise(errors)
    marking_validate(marking)
    with transaction.atomic():
        incident = _incident_lock(
            incident_id=incident_id, user=user, capability=Capability.LESSON_WRITE
        )
        _owner_check(errors, city_id=incident.city_id, owner_agency=owner_agency, owner=owner)
        if not incident.participating_agencies.filter(pk=owner_agency.pk).exists():
            errors.setdefault("owner_agency", []).append("Must be a participating agency.")
        if debrief is not None and debrief.incident_id != incident.pk:
            errors.setdefault("debrief", []).append("That debrief is of another incident.")
        _shareable_check(errors, shareable=shareable, marking=marking)
        errors_raise(errors)
        if observation is not None:
            # The observation row is locked so that two clicks make one lesson, not two.
            observation = Observation.objects.select_for_update().get(pk=observation.pk)
            if Lesson.objects.filter(observation=observation).exists():
                raise Conflict("A lesson was already identified from this observation.")
        audience = audience_for(
            incident,
            author=user,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        now = timezone.now()
        source = (
            LessonSource.OBSERVATION
            if observation is not None
            else LessonSource.DEBRIEF
            if debrief is not None
            else LessonSource.INCIDENT
        )
        lesson = Lesson.objects.create(
            city_id=incident.city_id,
            incident=incident,
            debrief=debrief,
            observation=observation,
            source=source,
            title=title.strip(),
            description=description.strip(),
            recommended_action=recommended_action.strip(),
            owner_agency=owner_agency,
            owner=owner,
            due_date=due_date,
            marking=marking,
            shareable=shareable,
            is_exercise=incident.is_exercise,
            identified_on=city_today(incident.city, now),
            created_by=user,
            created_at=now,
            updated_at=now,
        )
        recipients_store(lesson, audience)
        _history(lesson, user=user, before="", note=f"Identified ({lesson.get_source_display()}).")
        _lesson_event(lesson, kind="lesson.identified", user=user, audience=audience)
    return lesson


def lesson_from_observation(
    *,
    observation_id: int,
    user: User,
    title: str = "",
    owner_agency: Agency | None = None,
    due_date: date | None = None,
) -> Lesson:
    """One click: the observation becomes a lesson identified, owned by the observing agency
    unless another is named, worded as observed unless a title is given. AMBER, like the
    debrief it comes from."""
    observation = (
        Observation.objects.select_related("debrief", "agency")
        .filter(debrief__in=Debrief.objects.visible_to(user))
        .get(pk=observation_id)
    )
    text = observation.text
    heading = (title or "").strip() or (text if len(text) <= 120 else text[:117].rstrip() + "...")
    return lesson_create(
        incident_id=observation.debrief.incident_id,
        user=user,
        title=heading.splitlines()[0][:200],
        description=text,
        owner_agency=owner_agency or observation.agency,
        due_date=due_date,
        debrief=observation.debrief,
        observation=observation,
    )


def _lesson_lock(*, lesson_id: int, user: User) -> Lesson:
    """Lock a lesson the user may read: its incident first (the event order), then the row."""
    incident_id = (
        Lesson.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=lesson_id)
    )
    if incident_id is not None:
        Incident.objects.select_for_update().get(pk=incident_id)
    return (
        Lesson.objects.select_for_update(of=("self",))
        .select_related("incident", "city")
        .get(pk=lesson_id)
    )


def _oversees(user: User, lesson: Lesson) -> bool:
    return user_can(user, Capability.LESSON_OVERSEE) and (
        user.is_superuser or user.city_id == lesson.city_id
    )


def _owns(user: User, lesson: Lesson) -> bool:
    return (
        user_can(user, Capability.LESSON_WRITE)
        and lesson.owner_agency_id is not None
        and user.agency_id == lesson.owner_agency_id
    )


def lesson_transition(*, lesson_id: int, user: User, to: str, note: str = "") -> Lesson:
    """Move a lesson one step along its lifecycle.

    ``identified -> action_planned -> implemented`` is the owner agency's; ``verified`` (the
    lesson is learned), ``not_accepted`` and sending an implemented lesson back to
    ``action_planned`` are the oversight committee's, with a reason for the last two. A step the
    status does not allow is a 409 naming the steps it does allow; a step that is somebody
    else's is a 403 saying whose it is.
    """
    if to not in LessonStatus.values:
        raise ValidationError({"to": [f"Unknown status {to!r}."]})
    note = (note or "").strip()
    with transaction.atomic():
        lesson = _lesson_lock(lesson_id=lesson_id, user=user)
        before = lesson.status
        allowed = lesson_transitions(before)
        if to not in allowed:
            label = LessonStatus(before).label
            raise Conflict(
                f"A lesson that is {label.lower()} cannot move to {to}"
                + ("; it is final." if not allowed else f"; it may move to {', '.join(allowed)}."),
                allowed=list(allowed),
            )
        if to in OWNER_STEPS.get(before, ()):
            if lesson.owner_agency_id is None:
                raise Conflict("The lesson has no owner agency yet: oversight assigns one first.")
            if not _owns(user, lesson):
                raise PermissionDenied(
                    f"Only the owner agency ({lesson.owner_agency}) moves its lesson to {to}."
                )
        elif not _oversees(user, lesson):
            raise PermissionDenied(f"Only the oversight committee moves a lesson to {to}.")
        if (before, to) in REASON_REQUIRED and not note:
            raise ValidationError({"note": ["Give the reason."]})
        lesson.status = to
        lesson.updated_at = timezone.now()
        fields = ["status", "updated_at"]
        if to == LessonStatus.NOT_ACCEPTED:
            lesson.not_accepted_reason = note
            fields.append("not_accepted_reason")
        lesson.save(update_fields=fields)
        _history(lesson, user=user, before=before, note=note)
        _lesson_event(
            lesson,
            kind="lesson.transitioned",
            user=user,
            audience=lesson.current_audience(),
            previous_status=before,
        )
    return lesson


def lesson_assign(
    *,
    lesson_id: int,
    user: User,
    owner_agency: Agency,
    owner: User | None = None,
    due_date: date | None = None,
    note: str = "",
) -> Lesson:
    """The oversight committee gives a lesson (an imported one, or one that changes hands) an
    owner agency, optionally a person, and a due date. Only while the lesson is open."""
    errors: dict[str, list[str]] = {}
    _due_date_check(errors, due_date)
    errors_raise(errors)
    with transaction.atomic():
        lesson = _lesson_lock(lesson_id=lesson_id, user=user)
        if not _oversees(user, lesson):
            raise PermissionDenied("Only the oversight committee assigns lessons.")
        if not lesson.is_open:
            raise Conflict(f"A lesson that is {lesson.status} is not assigned any more.")
        _owner_check(errors, city_id=lesson.city_id, owner_agency=owner_agency, owner=owner)
        incident = lesson.incident
        if (
            incident is not None
            and not incident.participating_agencies.filter(pk=owner_agency.pk).exists()
        ):
            errors.setdefault("owner_agency", []).append("Must be a participating agency.")
        errors_raise(errors)
        lesson.owner_agency = owner_agency
        lesson.owner = owner
        if due_date is not None:
            lesson.due_date = due_date
        lesson.updated_at = timezone.now()
        lesson.save(update_fields=["owner_agency", "owner", "due_date", "updated_at"])
        who = f"{owner_agency}" + (f" ({owner})" if owner else "")
        _history(lesson, user=user, before=lesson.status, note=(note or f"Assigned to {who}."))
        _lesson_event(lesson, kind="lesson.assigned", user=user, audience=lesson.current_audience())
    return lesson


_UPDATABLE = {"title", "description", "recommended_action", "due_date", "shareable", "marking"}


def lesson_update(*, lesson_id: int, user: User, **changes: Any) -> Lesson:
    """Reword a lesson, move its due date, or mark it shareable (owner agency or oversight).

    A marking may be changed among CLEAR, GREEN and AMBER here (restricted markings name
    recipients, which only creation takes); a shareable lesson must stay GREEN or CLEAR.
    """
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    errors: dict[str, list[str]] = {}
    for name in ("title", "description"):
        if name in changes:
            text_required(errors, **{name: changes[name]})
    if "due_date" in changes:
        _due_date_check(errors, changes["due_date"])
    if "marking" in changes:
        marking_validate(changes["marking"])
        if changes["marking"] not in OPEN_TO_PARTICIPANTS:
            errors.setdefault("marking", []).append("Only CLEAR, GREEN or AMBER here.")
    errors_raise(errors)
    with transaction.atomic():
        lesson = _lesson_lock(lesson_id=lesson_id, user=user)
        if not (_owns(user, lesson) or _oversees(user, lesson)):
            raise PermissionDenied("Only the owner agency or the oversight committee edits it.")
        if not lesson.is_open:
            raise Conflict(f"A lesson that is {lesson.status} is no longer edited.")
        if lesson.marking in RESTRICTED and "marking" in changes:
            errors.setdefault("marking", []).append("A restricted lesson keeps its marking.")
        if lesson.incident_id is None and changes.get("marking") == Marking.AMBER:
            errors.setdefault("marking", []).append("An imported lesson stays GREEN or CLEAR.")
        _shareable_check(
            errors,
            shareable=changes.get("shareable", lesson.shareable),
            marking=changes.get("marking", lesson.marking),
        )
        errors_raise(errors)
        for name, value in changes.items():
            setattr(lesson, name, value.strip() if isinstance(value, str) else value)
        lesson.updated_at = timezone.now()
        lesson.save(update_fields=[*changes, "updated_at"])
        _lesson_event(lesson, kind="lesson.updated", user=user, audience=lesson.current_audience())
    return lesson


# --- reminders --------------------------------------------------------------------------------


REMINDER_DUE_SOON = "due_soon"
REMINDER_OVERDUE = "overdue"
_REMINDER_FIELD = {
    REMINDER_DUE_SOON: "due_soon_reminded_on",
    REMINDER_OVERDUE: "overdue_reminded_on",
}
# Steps the owner agency takes; an implemented lesson waits on the oversight committee instead.
_OWNER_PENDING = (LessonStatus.IDENTIFIED, LessonStatus.ACTION_PLANNED)


def reminder_recipients(lesson: Lesson) -> list[str]:
    """The owner person, else the owner agency's active people whose roles let them progress
    lessons (``lesson.write``); people without an e-mail address are skipped."""
    if lesson.owner is not None and lesson.owner.is_active and lesson.owner.email:
        return [lesson.owner.email]
    if lesson.owner_agency_id is None:
        return []
    roles = ROLE_CAPABILITIES[Capability.LESSON_WRITE]
    people = (
        User.objects.filter(
            agency_id=lesson.owner_agency_id, is_active=True, role_assignments__role__in=roles
        )
        .exclude(email="")
        .distinct()
        .order_by("pk")
    )
    return [person.email for person in people]


def _reminder_text(lesson: Lesson, kind: str, today: date) -> tuple[str, str]:
    exercise = "EXERCISE " if lesson.is_exercise else ""
    assert lesson.due_date is not None
    days = (lesson.due_date - today).days
    when = (
        f"overdue since {lesson.due_date.isoformat()}"
        if kind == REMINDER_OVERDUE
        else f"due on {lesson.due_date.isoformat()} (in {days} day{'s' if days != 1 else ''})"
    )
    # Restricted lessons name nothing in e-mail, which leaves the platform's access rule behind.
    title = "" if lesson.marking in RESTRICTED else f": {lesson.title}"
    subject = f"[TLP:{lesson.marking}] {exercise}Lesson {lesson.label} {when}{title}"
    link = settings.PUBLIC_BASE_URL + reverse("lesson", kwargs={"lesson_id": lesson.pk})
    body = (
        f"TLP:{lesson.marking}\n\n"
        f"{exercise}Lesson {lesson.label}{title}\n"
        f"Status: {lesson.get_status_display()}. It is {when}.\n\n"
        f"Plan and implement the action, and record it on the lesson's page:\n{link}\n"
    )
    return subject, body


def _reminder_send(lesson_id: int, kind: str, today: date, recipients: list[str]) -> bool:
    lesson = Lesson.objects.select_related("city").get(pk=lesson_id)
    subject, body = _reminder_text(lesson, kind, today)
    try:
        for address in recipients:
            # One message per person: an agency's addresses are not shown to each other.
            send_mail(subject, body, None, [address])
    except Exception:
        # Give the claim back, so that the next beat tries again today.
        logger.exception("reminder %s of lesson %s not sent", kind, lesson_id)
        field = _REMINDER_FIELD[kind]
        Lesson.objects.filter(pk=lesson_id, **{field: today}).update(**{field: None})
        return False
    return True


def lesson_reminder_claim(*, lesson: Lesson, kind: str, today: date) -> bool:
    """Claim today's reminder of ``kind`` for the lesson with one conditional UPDATE, and send
    it after commit. Two beats, or a task retried, find the claim taken and send nothing."""
    field = _REMINDER_FIELD[kind]
    with transaction.atomic():
        claimed = (
            Lesson.objects.filter(pk=lesson.pk, status__in=_OWNER_PENDING)
            .filter(Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": today}))
            .update(**{field: today})
        )
        if not claimed:
            return False
        recipients = reminder_recipients(lesson)
        if recipients:
            transaction.on_commit(lambda: _reminder_send(lesson.pk, kind, today, recipients))
    return bool(recipients)


def lesson_reminders_send(*, now: datetime | None = None) -> dict[str, int]:
    """Remind the owners of every lesson due within ``LESSON_REMINDER_DUE_SOON_DAYS`` days of
    its city's today, or overdue: at most one reminder of each kind per lesson per day."""
    now = now or timezone.now()
    window = timedelta(days=settings.LESSON_REMINDER_DUE_SOON_DAYS)
    sent = {REMINDER_DUE_SOON: 0, REMINDER_OVERDUE: 0}
    for city in City.objects.all():
        today = city_today(city, now)
        pending = Lesson.objects.filter(
            city=city,
            status__in=_OWNER_PENDING,
            due_date__isnull=False,
            due_date__lte=today + window,
        ).select_related("owner", "city")
        for lesson in pending.iterator():
            assert lesson.due_date is not None
            kind = REMINDER_OVERDUE if lesson.due_date < today else REMINDER_DUE_SOON
            if lesson_reminder_claim(lesson=lesson, kind=kind, today=today):
                sent[kind] += 1
    return sent


# --- city-to-city sharing ---------------------------------------------------------------------


@cache
def exchange_schema() -> dict[str, Any]:
    """The JSON Schema of the lesson exchange document (``docs/lesson-exchange.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _deployment() -> str:
    return settings.CTPN_DEPLOYMENT_NAME


def lesson_export_entry(lesson: Lesson) -> dict[str, Any]:
    """One lesson as it leaves the city: no people, no agency names, no internal ids."""
    incident = lesson.incident
    return {
        "uuid": str(lesson.uuid),
        "title": lesson.title,
        "description": lesson.description,
        "recommended_action": lesson.recommended_action,
        "marking": lesson.marking,
        "status": lesson.status,
        "exercise": lesson.is_exercise,
        "incident_type": incident.type if incident is not None else None,
        "owner_agency_type": lesson.owner_agency.type if lesson.owner_agency else None,
        "identified_on": lesson.identified_on.isoformat(),
        "due_date": lesson.due_date.isoformat() if lesson.due_date else None,
        "origin": {
            "city": lesson.origin_city or lesson.city.name,
            "deployment": lesson.origin_deployment or _deployment(),
        },
    }


def lessons_export(
    *, user: User, lesson_ids: list[int] | None = None, request: Any = None
) -> dict[str, Any]:
    """The exchange document of the given lessons (or of every shareable lesson the user may
    read in their city). A lesson that is not shareable (GREEN or CLEAR, and marked so) refuses
    the whole export: 409 naming it. The export is audited."""
    require(user, Capability.LESSON_OVERSEE)
    lessons = Lesson.objects.visible_to(user).select_related("incident", "owner_agency", "city")
    if user.city_id is not None:
        lessons = lessons.filter(city_id=user.city_id)
    if lesson_ids is None:
        chosen = list(lessons.filter(shareable=True, marking__in=SHAREABLE_MARKINGS))
    else:
        found = {lesson.pk: lesson for lesson in lessons.filter(pk__in=lesson_ids)}
        missing = sorted(set(lesson_ids) - set(found))
        if missing:
            raise ValidationError({"lessons": [f"No such lessons: {missing}."]})
        chosen = [found[pk] for pk in sorted(found)]
        refused = [
            lesson.label
            for lesson in chosen
            if not lesson.shareable or lesson.marking not in SHAREABLE_MARKINGS
        ]
        if refused:
            raise Conflict(
                f"Not shareable: {', '.join(refused)}. Only lessons marked GREEN or CLEAR and "
                "marked shareable may leave the city."
            )
    city = chosen[0].city if chosen else (user.agency.city if user.agency else None)
    document = {
        "format": EXCHANGE_FORMAT,
        "version": EXCHANGE_VERSION,
        "exported_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "source": {
            "deployment": _deployment(),
            "city": city.name if city else "",
            "city_code": city.code if city else "",
        },
        "lessons": [lesson_export_entry(lesson) for lesson in chosen],
    }
    audit_record(
        action="export",
        user=user,
        request=request,
        detail={
            "what": "lessons",
            "format": f"{EXCHANGE_FORMAT}/{EXCHANGE_VERSION}",
            "lessons": [str(lesson.uuid) for lesson in chosen],
        },
    )
    return document


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def exchange_validate(document: Any) -> None:
    """Check the whole document before anything is written; every fault is reported under its
    JSON path (``$.lessons[2].marking``), as a 400 naming the field would be."""
    from jsonschema import Draft202012Validator, FormatChecker

    validator = Draft202012Validator(exchange_schema(), format_checker=FormatChecker())
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        errors.setdefault(_json_path(error.absolute_path), []).append(error.message)
    if errors:
        raise ValidationError(errors)
    seen: dict[str, int] = {}
    for index, entry in enumerate(document["lessons"]):
        for name in ("identified_on", "due_date"):
            value = entry.get(name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    errors.setdefault(f"$.lessons[{index}].{name}", []).append(
                        f"{value!r} is not a date (YYYY-MM-DD)."
                    )
        key = str(UUID(entry["uuid"]))
        if key in seen:
            errors.setdefault(f"$.lessons[{index}].uuid", []).append(
                f"Duplicate of $.lessons[{seen[key]}].uuid: each lesson appears once."
            )
        seen.setdefault(key, index)
    errors_raise(errors)


@dataclass(frozen=True)
class ImportResult:
    created: list[Lesson]
    already_present: list[str]  # UUIDs the city holds already


def lessons_import(*, user: User, document: Any, request: Any = None) -> ImportResult:
    """Import another city's exchange document into the user's city, all or nothing.

    The whole document is validated first. Each lesson lands as ``identified``, with no owner
    agency until the oversight committee assigns one, marked as coming from its origin city.
    A lesson the city already holds (same UUID) is left as it is: importing twice is harmless.
    The import is audited.
    """
    require(user, Capability.LESSON_OVERSEE)
    agency = user.agency
    if agency is None:
        raise ValidationError({"city": ["You belong to no city to import into."]})
    exchange_validate(document)
    source = document["source"]
    with transaction.atomic():
        # Imports into one city take turns, so two at once cannot both create a lesson.
        city = City.objects.select_for_update().get(pk=agency.city_id)
        held = {
            str(value)
            for value in Lesson.objects.filter(
                city=city, uuid__in=[entry["uuid"] for entry in document["lessons"]]
            ).values_list("uuid", flat=True)
        }
        created: list[Lesson] = []
        already: list[str] = []
        now = timezone.now()
        for entry in document["lessons"]:
            key = str(UUID(entry["uuid"]))
            if key in held:
                already.append(key)
                continue
            origin = entry.get("origin") or {}
            lesson = Lesson.objects.create(
                uuid=UUID(key),
                city=city,
                source=LessonSource.IMPORTED,
                title=entry["title"].strip(),
                description=entry["description"].strip(),
                recommended_action=(entry.get("recommended_action") or "").strip(),
                marking=entry["marking"],
                is_exercise=bool(entry.get("exercise", False)),
                origin_city=(origin.get("city") or source["city"])[:100],
                origin_deployment=(origin.get("deployment") or source["deployment"])[:200],
                identified_on=date.fromisoformat(entry["identified_on"]),
                created_by=user,
                created_at=now,
                updated_at=now,
            )
            _history(
                lesson,
                user=user,
                before="",
                note=f"Imported from {lesson.origin_city} ({lesson.origin_deployment}).",
            )
            created.append(lesson)
    # Recorded once the lessons are committed, so the log never tells of an import that failed.
    audit_record(
        action="import",
        user=user,
        request=request,
        detail={
            "what": "lessons",
            "format": f"{EXCHANGE_FORMAT}/{document['version']}",
            "source": f"{source['city']} ({source['deployment']})",
            "created": [str(lesson.uuid) for lesson in created],
            "already_present": already,
        },
    )
    return ImportResult(created=created, already_present=already)
