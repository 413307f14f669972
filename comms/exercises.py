"""Writes of table-top exercises: scenarios of timed injects, and exercise runs that release them.

An exercise is an incident with ``is_exercise=True`` (opened through ``incident_open``), so the
players train on the very pages, alerts and decision log they would use for real, each marked
EXERCISE. A run copies its scenario's injects; starting it gives each a due instant (start +
offset), pausing stops releases and resuming moves every pending inject later by the pause.

Release is never early and survives a lost worker:

- Each inject gets a Celery task with ``eta`` at its due instant, scheduled on commit.
- The task locks the run, then the inject, and drops itself unless the inject is still pending
  and the run is running; one that wakes before the due instant (a clock difference, or a due
  instant moved by a pause) schedules itself again for it.
- A beat sweep (``exercise_sweep``) releases whatever is due and still pending, for the task a
  killed worker held (Redis only hands an unacknowledged ``eta`` task to another worker after its
  visibility timeout, far too late for an exercise).
- Releasing applies the inject through the normal services (M/ETHANE, timeline, activation) and
  announces it with an ``exercise.inject`` incident event, in one transaction, as the director.
  Every inject of the run that is due by then is released with it, in order, so two injects never
  arrive out of order whichever task runs first.

Lock order: scenario; or run, then its injects, then the incident (the services lock it).
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from coordination.models import Agency, City, User
from coordination.roles import Capability, user_can
from coordination.validation import Errors, errors_raise, require, text_required
from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import (
    Incident,
    IncidentLevel,
    IncidentStatus,
    IncidentType,
    TimelineCategory,
)
from incidents.services import incident_open, methane_submit, timeline_add

from .models import (
    EXERCISE_TRANSITIONS,
    ExerciseInject,
    ExerciseRun,
    ExerciseStatus,
    InjectKind,
    InjectState,
    Scenario,
    ScenarioInject,
    Urgency,
)

logger = logging.getLogger(__name__)

MAX_INJECTS = 100
MAX_OFFSET_SECONDS = 7 * 24 * 3600
TEXT_MAX_LENGTH = 4000
ACTIVATION_MESSAGE_MAX_LENGTH = 1000
METHANE_TEXT_FIELDS = (
    "exact_location",
    "incident_type",
    "hazards",
    "access",
    "emergency_services_present",
    "emergency_services_required",
)
METHANE_COUNT_FIELDS = ("casualties_fatal", "casualties_p1", "casualties_p2", "casualties_p3")
MAX_CASUALTIES = 1_000_000


# --- Scenarios ---------------------------------------------------------------------------------


def inject_content_clean(kind: Any, content: Any, problems: list[str]) -> dict[str, Any]:
    """The content of an inject of ``kind``, checked and reduced to the fields it uses."""
    if not isinstance(content, dict):
        problems.append("content must be an object.")
        return {}

    def text(name: str, *, required: bool, limit: int = TEXT_MAX_LENGTH) -> str:
        value = content.get(name, "")
        if not isinstance(value, str):
            problems.append(f"{name} must be text.")
            return ""
        if required and not value.strip():
            problems.append(f"{name} may not be blank.")
        if len(value) > limit:
            problems.append(f"{name} is longer than {limit} characters.")
        return value.strip()

    if kind == InjectKind.METHANE:
        cleaned: dict[str, Any] = {name: text(name, required=True) for name in METHANE_TEXT_FIELDS}
        declared = content.get("major_incident_declared", False)
        if not isinstance(declared, bool):
            problems.append("major_incident_declared must be true or false.")
        cleaned["major_incident_declared"] = bool(declared)
        for name in METHANE_COUNT_FIELDS:
            value = content.get(name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_CASUALTIES
            ):
                problems.append(f"{name} must be a whole number from 0 to {MAX_CASUALTIES}.")
                value = None
            cleaned[name] = value
        cleaned["casualties_notes"] = text("casualties_notes", required=False)
        return cleaned
    if kind == InjectKind.TIMELINE:
        category = content.get("category", TimelineCategory.SIGNIFICANT_EVENT)
        if category not in TimelineCategory.values:
            problems.append(f"category must be one of {', '.join(TimelineCategory.values)}.")
        return {"text": text("text", required=True), "category": category}
    if kind == InjectKind.MESSAGE:
        return {"text": text("text", required=True), "sender": text("sender", required=False)}
    if kind == InjectKind.ACTIVATION:
        urgency = content.get("urgency", Urgency.IMMEDIATE)
        if urgency not in Urgency.values:
            problems.append(f"urgency must be one of {', '.join(Urgency.values)}.")
        agencies = content.get("agencies", [])
        if not isinstance(agencies, list) or not all(isinstance(a, str) for a in agencies):
            problems.append("agencies must be a list of agency short names.")
            agencies = []
        message = text("message", required=True, limit=ACTIVATION_MESSAGE_MAX_LENGTH)
        return {"message": message, "urgency": urgency, "agencies": agencies}
    return {}


def _injects_clean(errors: Errors, injects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(injects, (list, tuple)):
        errors.setdefault("injects", []).append("Must be a list of injects.")
        return []
    if len(injects) > MAX_INJECTS:
        errors.setdefault("injects", []).append(f"At most {MAX_INJECTS} injects.")
        return []
    cleaned = []
    for number, inject in enumerate(injects, start=1):
        problems: list[str] = []
        if not isinstance(inject, dict):
            errors.setdefault("injects", []).append(f"Inject {number}: must be an object.")
            continue
        offset = inject.get("offset_seconds")
        if isinstance(offset, bool) or not isinstance(offset, int):
            problems.append("offset_seconds must be a whole number of seconds.")
        elif not 0 <= offset <= MAX_OFFSET_SECONDS:
            problems.append(f"offset_seconds must be from 0 to {MAX_OFFSET_SECONDS}.")
        kind = inject.get("kind")
        if kind not in InjectKind.values:
            problems.append(f"kind must be one of {', '.join(InjectKind.values)}.")
        title = inject.get("title", "")
        if not isinstance(title, str) or not title.strip():
            problems.append("title may not be blank.")
        elif len(title) > 200:
            problems.append("title is longer than 200 characters.")
        content = inject_content_clean(kind, inject.get("content", {}), problems)
        for problem in problems:
            errors.setdefault("injects", []).append(f"Inject {number}: {problem}")
        if not problems:
            cleaned.append(
                {"offset_seconds": offset, "kind": kind, "title": title.strip(), "content": content}
            )
    return cleaned


def _scenario_city(user: User) -> City:
    if user.agency is None:
        raise PermissionDenied("Scenarios belong to a city: you need an agency of one.")
    return user.agency.city


def scenario_save(
    *,
    user: User,
    name: str,
    incident_title: str,
    injects: Sequence[dict[str, Any]],
    description: str = "",
    incident_type: str = IncidentType.MARAUDING_TERRORIST_ATTACK,
    incident_level: int = IncidentLevel.LEVEL_3,
    location_description: str = "",
    scenario_id: int | None = None,
    city: City | None = None,
) -> Scenario:
    """Create a scenario of the user's city, or replace one's content (its injects included).

    Runs already created keep the injects they copied.
    """
    require(user, Capability.EXERCISE_DIRECT)
    errors: Errors = {}
    text_required(errors, name=name, incident_title=incident_title)
    if len(name or "") > 200:
        errors.setdefault("name", []).append("At most 200 characters.")
    if len(incident_title or "") > 200:
        errors.setdefault("incident_title", []).append("At most 200 characters.")
    if len(location_description or "") > 300:
        errors.setdefault("location_description", []).append("At most 300 characters.")
    if incident_type not in IncidentType.values:
        errors.setdefault("incident_type", []).append(f"Unknown incident type {incident_type!r}.")
    if incident_level not in IncidentLevel.values:
        errors.setdefault("incident_level", []).append(
            f"Level must be one of {IncidentLevel.values}."
        )
    cleaned = _injects_clean(errors, injects)
    errors_raise(errors)
    with transaction.atomic():
        if scenario_id is None:
            owner = city if city is not None and user.is_superuser else _scenario_city(user)
            if Scenario.objects.filter(city=owner, name=name.strip()).exists():
                raise ValidationError({"name": ["Your city already has a scenario of this name."]})
            scenario = Scenario(city=owner, created_by=user)
        else:
            scenario = Scenario.objects.visible_to(user).select_for_update().get(pk=scenario_id)
            if (
                Scenario.objects.filter(city=scenario.city, name=name.strip())
                .exclude(pk=scenario.pk)
                .exists()
            ):
                raise ValidationError({"name": ["Your city already has a scenario of this name."]})
        scenario.name = name.strip()
        scenario.description = (description or "").strip()
        scenario.incident_title = incident_title.strip()
        scenario.incident_type = incident_type
        scenario.incident_level = incident_level
        scenario.location_description = (location_description or "").strip()
        scenario.save()
        scenario.injects.all().delete()
        ScenarioInject.objects.bulk_create(
            ScenarioInject(scenario=scenario, **inject) for inject in cleaned
        )
    return scenario


def scenario_delete(*, user: User, scenario_id: int) -> None:
    """Delete a scenario that no exercise was run from (a run's record needs its scenario)."""
    require(user, Capability.EXERCISE_DIRECT)
    with transaction.atomic():
        scenario = Scenario.objects.visible_to(user).select_for_update().get(pk=scenario_id)
        if scenario.runs.exists():
            raise Conflict(f"Exercises were run from {scenario.name!r}; it is kept for the record.")
        scenario.delete()


def scenario_builtin_load(*, city: City, data: dict[str, Any]) -> tuple[Scenario, bool]:
    """Load a scenario the platform ships into ``city`` unless it is there already (by key).

    Used by ``seed_demo``; the data is checked exactly as a scenario saved through the API.
    """
    key = data["key"]
    existing = Scenario.objects.filter(city=city, builtin_key=key).first()
    if existing is not None:
        return existing, False
    errors: Errors = {}
    cleaned = _injects_clean(errors, data["injects"])
    errors_raise(errors)
    with transaction.atomic():
        scenario = Scenario.objects.create(
            city=city,
            name=data["name"],
            description=data.get("description", ""),
            incident_title=data["incident_title"],
            incident_type=data.get("incident_type", IncidentType.MARAUDING_TERRORIST_ATTACK),
            incident_level=data.get("incident_level", IncidentLevel.LEVEL_3),
            location_description=data.get("location_description", ""),
            builtin_key=key,
        )
        ScenarioInject.objects.bulk_create(
            ScenarioInject(scenario=scenario, **inject) for inject in cleaned
        )
    return scenario, True


# --- Exercise runs -----------------------------------------------------------------------------


def _capabilities_needed(kinds: set[str]) -> list[str]:
    needed: list[str] = [Capability.EXERCISE_DIRECT, Capability.INCIDENT_OPEN]
    if kinds & {InjectKind.METHANE, InjectKind.TIMELINE}:
        needed.append(Capability.LOG_WRITE)
    if InjectKind.ACTIVATION in kinds:
        needed.append(Capability.ACTIVATION_SEND)
    return needed


def exercise_create(
    *,
    user: User,
    scenario_id: int,
    participating_agencies: Sequence[Agency] = (),
    lead_agency: Agency | None = None,
    title: str = "",
) -> ExerciseRun:
    """Open an exercise incident from a scenario, with its participating agencies, ready to start.

    The user becomes the exercise director: injects are released in their name, so they must
    hold what each kind of inject needs (log.write for M/ETHANE and timeline injects,
    activation.send for activation injects).
    """
    require(user, Capability.EXERCISE_DIRECT)
    scenario = Scenario.objects.visible_to(user).get(pk=scenario_id)
    injects = list(scenario.injects.order_by("offset_seconds", "id"))
    errors: Errors = {}
    if not injects:
        errors.setdefault("scenario", []).append("This scenario has no injects yet.")
    for capability in _capabilities_needed({inject.kind for inject in injects}):
        if not user_can(user, capability):
            errors.setdefault("scenario", []).append(
                f"Its injects are released in your name, and your roles do not allow {capability}."
            )
    lead = lead_agency or user.agency
    if lead is None:
        errors.setdefault("lead_agency", []).append("Choose the lead agency.")
    if len(title or "") > 200:
        errors.setdefault("title", []).append("At most 200 characters.")
    errors_raise(errors)
    assert lead is not None
    now = timezone.now()
    with transaction.atomic():
        incident = incident_open(
            user=user,
            title=(title or "").strip() or scenario.incident_title,
            type=scenario.incident_type,
            level=scenario.incident_level,
            lead_agency=lead,
            participating_agencies=participating_agencies,
            location_description=scenario.location_description,
            is_exercise=True,
        )
        run = ExerciseRun.objects.create(
            scenario=scenario, incident=incident, director=user, created_at=now
        )
        ExerciseInject.objects.bulk_create(
            ExerciseInject(
                run=run,
                position=position,
                offset_seconds=inject.offset_seconds,
                kind=inject.kind,
                title=inject.title,
                content=inject.content,
            )
            for position, inject in enumerate(injects, start=1)
        )
    return run


def _run_lock_for_control(*, run_id: int, user: User) -> ExerciseRun:
    """Lock a run the user may see and direct (404 if invisible, 403 if not directing staff)."""
    run = ExerciseRun.objects.visible_to(user).select_for_update().get(pk=run_id)
    require(user, Capability.EXERCISE_DIRECT)
    if not user.is_superuser and user.pk != run.director_id:
        agencies = run.incident.participating_agencies.values_list("pk", flat=True)
        if user.agency_id not in set(agencies):
            raise PermissionDenied("Only directing staff of an agency taking part control it.")
    return run


def _transition_check(run: ExerciseRun, control: str) -> str:
    allowed = EXERCISE_TRANSITIONS[run.status]
    if control not in allowed:
        reasons = {
            ExerciseStatus.READY: "it has not started yet",
            ExerciseStatus.RUNNING: "it is running",
            ExerciseStatus.PAUSED: "it is paused",
            ExerciseStatus.ENDED: "it has ended; an ended exercise is final",
        }
        raise Conflict(
            f"Cannot {control} this exercise: {reasons[ExerciseStatus(run.status)]}.",
            allowed=list(allowed),
        )
    return allowed[control]


def run_payload(run: ExerciseRun) -> dict[str, Any]:
    return {
        "exercise": run.pk,
        "is_exercise": True,
        "status": run.status,
        "scenario": run.scenario.name,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }


def _control_event(run: ExerciseRun, kind: str, user: User) -> None:
    incident = Incident.objects.select_for_update().get(pk=run.incident_id)
    event_append(incident=incident, kind=kind, payload=run_payload(run), actor=user, subject=run)


# The incident event each control appends (the dashboard's activity feed shows them).
CONTROL_EVENTS = {
    "start": "exercise.started",
    "pause": "exercise.paused",
    "resume": "exercise.resumed",
    "end": "exercise.ended",
}


def exercise_control(*, run_id: int, user: User, control: str) -> ExerciseRun:
    """Start, pause, resume or end an exercise; a control its state refuses answers 409 saying
    why and which controls it accepts."""
    actions = {
        "start": _start,
        "pause": _pause,
        "resume": _resume,
        "end": _end,
    }
    if control not in actions:
        raise ValidationError({"control": [f"Must be one of {', '.join(actions)}."]})
    with transaction.atomic():
        run = _run_lock_for_control(run_id=run_id, user=user)
        run.status = _transition_check(run, control)
        now = timezone.now()
        actions[control](run, now)
        run.save()
        _control_event(run, CONTROL_EVENTS[control], user)
    return run


def _pending(run: ExerciseRun):
    return ExerciseInject.objects.select_for_update().filter(run=run, state=InjectState.PENDING)


def _start(run: ExerciseRun, now: datetime) -> None:
    run.started_at = now
    injects = list(_pending(run).order_by("position"))
    for inject in injects:
        inject.due_at = now + timedelta(seconds=inject.offset_seconds)
    ExerciseInject.objects.bulk_update(injects, ["due_at"])
    _schedule_on_commit([(inject.pk, inject.due_at) for inject in injects])


def _pause(run: ExerciseRun, now: datetime) -> None:
    run.paused_at = now


def _resume(run: ExerciseRun, now: datetime) -> None:
    assert run.paused_at is not None
    pause = max(now - run.paused_at, timedelta(0))
    run.paused_total += pause
    run.paused_at = None
    pending = _pending(run)
    list(pending.order_by("position"))  # the locks, in order
    pending.update(due_at=F("due_at") + pause)
    _schedule_on_commit(list(_pending(run).order_by("position").values_list("pk", "due_at")))


def _end(run: ExerciseRun, now: datetime) -> None:
    if run.paused_at is not None:
        run.paused_total += max(now - run.paused_at, timedelta(0))
        run.paused_at = None
    run.ended_at = now
    pending = _pending(run)
    list(pending.order_by("position"))
    pending.update(state=InjectState.SKIPPED)


def _schedule_on_commit(due: Sequence[tuple[int, datetime | None]]) -> None:
    from .tasks import exercise_inject_release_task

    def schedule() -> None:
        for pk, at in due:
            exercise_inject_release_task.apply_async((pk,), eta=at)

    if due:
        transaction.on_commit(schedule, robust=True)


# --- Releasing injects -------------------------------------------------------------------------


def inject_release(*, inject_id: int, now: datetime | None = None) -> str:
    """The release task's work: release the inject if it is pending, due and its run running.

    Returns what happened: ``released``, ``early`` (scheduled again for the due instant) or
    ``dropped`` (released already, skipped, or the run is not running: a pause's resume
    schedules the inject afresh).
    """
    with transaction.atomic():
        run_id = ExerciseInject.objects.filter(pk=inject_id).values_list("run_id", flat=True)
        if not run_id:
            return "dropped"
        run = ExerciseRun.objects.select_for_update().get(pk=run_id[0])
        inject = ExerciseInject.objects.select_for_update().get(pk=inject_id)
        if inject.state != InjectState.PENDING or run.status != ExerciseStatus.RUNNING:
            return "dropped"
        now = now or timezone.now()
        if inject.due_at is None or now < inject.due_at:
            _schedule_on_commit([(inject.pk, inject.due_at)])
            return "early"
        _release_due(run, now)
    return "released"


def exercise_sweep(*, now: datetime | None = None, limit: int = 200) -> int:
    """Release every due, pending inject of a running exercise: the work of a task a lost worker
    held. Each exercise in its own transaction, so one failing exercise does not hold others."""
    now = now or timezone.now()
    runs = list(
        ExerciseInject.objects.filter(
            state=InjectState.PENDING,
            due_at__lte=now,
            run__status=ExerciseStatus.RUNNING,
        )
        .order_by("due_at")
        .values_list("run_id", flat=True)
        .distinct()[:limit]
    )
    released = 0
    for run_id in dict.fromkeys(runs):
        try:
            with transaction.atomic():
                run = ExerciseRun.objects.select_for_update().get(pk=run_id)
                if run.status == ExerciseStatus.RUNNING:
                    released += _release_due(run, now)
        except Exception:
            logger.exception("releasing the injects of exercise %s failed", run_id)
    return released


def _release_due(run: ExerciseRun, now: datetime) -> int:
    """Release, in order, every pending inject of the locked run that is due by ``now``."""
    injects = list(
        ExerciseInject.objects.select_for_update()
        .filter(run=run, state=InjectState.PENDING, due_at__lte=now)
        .order_by("due_at", "position")
    )
    for inject in injects:
        _apply(run, inject, now)
    return len(injects)


def _apply(run: ExerciseRun, inject: ExerciseInject, now: datetime) -> None:
    """Apply one inject through the normal services and announce it; a refusal (the director
    lost a role, the incident was closed...) marks the inject failed with the reason instead."""
    director = run.director
    try:
        with transaction.atomic():
            _apply_kind(run, inject, director)
            incident = Incident.objects.select_for_update().get(pk=run.incident_id)
            if incident.status == IncidentStatus.CLOSED:
                raise Conflict(f"{incident.reference} is closed; it accepts no further entries.")
            event = event_append(
                incident=incident,
                kind="exercise.inject",
                payload=_inject_payload(inject, now),
                actor=director,
                subject=inject,
            )
    except (ValidationError, PermissionDenied, Conflict, ObjectDoesNotExist) as exc:
        inject.state = InjectState.FAILED
        inject.failure_reason = _reason(exc)
        inject.save(update_fields=["state", "failure_reason"])
        logger.warning("exercise inject %s could not be released: %s", inject.pk, exc)
        return
    inject.state = InjectState.RELEASED
    inject.released_at = now
    inject.event_seq = event.seq
    inject.save(update_fields=["state", "released_at", "event_seq"])


def _inject_payload(inject: ExerciseInject, now: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "is_exercise": True,
        "exercise": inject.run_id,
        "inject": inject.pk,
        "position": inject.position,
        "kind": inject.kind,
        "title": inject.title,
        "released_at": now.isoformat(),
    }
    if inject.kind == InjectKind.MESSAGE:
        payload["text"] = inject.content.get("text", "")
        payload["sender"] = inject.content.get("sender", "")
    return payload


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())
    if isinstance(exc, Conflict):
        return exc.message
    return str(exc) or type(exc).__name__


def _apply_kind(run: ExerciseRun, inject: ExerciseInject, director: User) -> None:
    content = inject.content
    if inject.kind == InjectKind.METHANE:
        methane_submit(
            incident_id=run.incident_id,
            user=director,
            major_incident_declared=bool(content.get("major_incident_declared")),
            **{name: content.get(name, "") for name in METHANE_TEXT_FIELDS},
            **{name: content.get(name) for name in METHANE_COUNT_FIELDS},
            casualties_notes=content.get("casualties_notes", ""),
        )
    elif inject.kind == InjectKind.TIMELINE:
        timeline_add(
            incident_id=run.incident_id,
            user=director,
            text=content.get("text", ""),
            category=content.get("category", TimelineCategory.SIGNIFICANT_EVENT),
        )
    elif inject.kind == InjectKind.ACTIVATION:
        from .services import activation_send

        incident = Incident.objects.get(pk=run.incident_id)
        participating = incident.participating_agencies.all()
        names = content.get("agencies") or []
        agencies = list(
            participating.filter(short_name__in=names) if names else participating.order_by("pk")
        )
        missing = set(names) - {agency.short_name for agency in agencies}
        if missing:
            raise ValidationError(
                {"agencies": [f"Not taking part in this exercise: {', '.join(sorted(missing))}."]}
            )
        activation_send(
            user=director,
            message=content.get("message", ""),
            agencies=agencies,
            urgency=content.get("urgency", Urgency.IMMEDIATE),
            incident=incident,
            is_exercise=True,
        )
    # A message to the cell is the exercise.inject event itself.
