"""Writes to the meetings of an incident's strategic coordinating group.

A meeting is scheduled, then started, then closed (never back). Its agenda, attendees and minutes
change until it is closed; from then on the minutes are the record and every change is refused
(409). Each change appends an incident event (``meeting.scheduled``, ``meeting.started``,
``meeting.closed``, ``meeting.updated``, ``meeting.marking_changed``) so the dashboard's meetings
panel follows live.

Lock order, as everywhere: the incident row, then the meeting row.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident
from incidents.services import (
    audience_for,
    incident_lock_for_write,
    marking_change_record,
    marking_change_require,
    recipients_store,
)

from .markings import DEFAULT_MARKING, marking_validate
from .models import (
    Agency,
    AgendaItem,
    Attendance,
    Meeting,
    MeetingAttendee,
    MeetingStatus,
    User,
)
from .roles import Capability
from .serializers import MeetingSerializer
from .validation import Errors, errors_raise, instant_check, text_required

MEETING_EVENT_KINDS: dict[str, str] = {
    MeetingStatus.IN_PROGRESS: "meeting.started",
    MeetingStatus.CLOSED: "meeting.closed",
}
AGENDA_MAX_ITEMS = 50
ATTENDEES_MAX = 200


def meeting_link_check(*, incident: Incident, user: User, meeting: Meeting | None) -> None:
    """Refuse, naming ``meeting``, a meeting of another incident or one the user may not read.

    Runs under the incident's lock, in the transaction of the decision or action being linked.
    """
    if meeting is None:
        return
    if meeting.incident_id != incident.pk:
        raise ValidationError({"meeting": ["That meeting belongs to another incident."]})
    if not Meeting.objects.visible_to(user).filter(pk=meeting.pk).exists():
        # Looks exactly like a meeting that does not exist: nothing about it is revealed.
        raise ValidationError({"meeting": ["No such meeting of this incident."]})


def _agenda_clean(errors: Errors, agenda: Any) -> list[dict[str, str]]:
    if not isinstance(agenda, list | tuple):
        errors.setdefault("agenda", []).append("Give the agenda as a list of items.")
        return []
    if len(agenda) > AGENDA_MAX_ITEMS:
        errors.setdefault("agenda", []).append(f"At most {AGENDA_MAX_ITEMS} agenda items.")
        return []
    cleaned = []
    for number, item in enumerate(agenda, start=1):
        if not isinstance(item, dict):
            errors.setdefault("agenda", []).append(f"Item {number} must be an object.")
            continue
        title = str(item.get("title") or "").strip()
        if not title:
            errors.setdefault("agenda", []).append(f"Item {number} needs a title.")
        elif len(title) > 200:
            errors.setdefault("agenda", []).append(f"Item {number}: at most 200 characters.")
        cleaned.append(
            {
                "title": title,
                "notes": str(item.get("notes") or "").strip(),
                "minutes": str(item.get("minutes") or "").strip(),
            }
        )
    return cleaned


def _attendees_clean(errors: Errors, attendees: Any) -> list[tuple[User, str]]:
    if not isinstance(attendees, list | tuple):
        errors.setdefault("attendees", []).append("Give the attendees as a list.")
        return []
    if len(attendees) > ATTENDEES_MAX:
        errors.setdefault("attendees", []).append(f"At most {ATTENDEES_MAX} attendees.")
        return []
    cleaned: dict[int, tuple[User, str]] = {}
    for entry in attendees:
        person, attendance = entry if isinstance(entry, tuple) else (entry, Attendance.EXPECTED)
        if isinstance(entry, dict):
            person, attendance = entry.get("person"), entry.get("attendance", Attendance.EXPECTED)
        if not isinstance(person, User):
            errors.setdefault("attendees", []).append("Each attendee must be a person.")
            continue
        if attendance not in Attendance.values:
            errors.setdefault("attendees", []).append(
                f"Unknown attendance {attendance!r}; use one of {', '.join(Attendance.values)}."
            )
            continue
        if person.pk in cleaned:
            errors.setdefault("attendees", []).append(f"{person} is listed twice.")
        cleaned[person.pk] = (person, attendance)
    return list(cleaned.values())


def _link_check(errors: Errors, virtual_link: str) -> str:
    link = (virtual_link or "").strip()
    if link:
        try:
            URLValidator(schemes=["https", "http"])(link)
        except ValidationError:
            errors.setdefault("virtual_link", []).append("Give a web address (https://...).")
    return link


def _people_check(
    incident: Incident, chair: User | None, attendees: list[tuple[User, str]] | None
) -> None:
    """The chair and the attendees belong to agencies taking part in the incident."""
    participating = set(incident.participating_agencies.values_list("pk", flat=True))
    errors: Errors = {}
    if chair is not None and (chair.agency_id not in participating or not chair.is_active):
        errors.setdefault("chair", []).append(
            "The chair must be an active person of an agency taking part in the incident."
        )
    for person, _ in attendees or ():
        if person.agency_id not in participating or not person.is_active:
            errors.setdefault("attendees", []).append(
                f"{person} is not an active person of an agency taking part in the incident."
            )
    errors_raise(errors)


def _agenda_store(meeting: Meeting, agenda: list[dict[str, str]]) -> None:
    meeting.agenda_items.all().delete()
    AgendaItem.objects.bulk_create(
        AgendaItem(meeting=meeting, position=number, **item)
        for number, item in enumerate(agenda, start=1)
    )


def _attendees_store(meeting: Meeting, attendees: list[tuple[User, str]]) -> None:
    meeting.attendees.all().delete()
    MeetingAttendee.objects.bulk_create(
        MeetingAttendee(
            meeting=meeting,
            person=person,
            agency_id=cast(int, person.agency_id),  # checked: a participating agency
            attendance=attendance,
        )
        for person, attendance in attendees
    )


def _announce(incident: Incident, meeting: Meeting, kind: str, user: User, **extra: Any) -> None:
    fresh = Meeting.objects.prefetch_related(
        "agenda_items",
        "attendees__person",
        "attendees__agency",
        "recipient_agencies",
        "recipient_people",
    ).get(pk=meeting.pk)
    event_append(
        incident=incident,
        kind=kind,
        payload={**MeetingSerializer(fresh).data, **extra},
        actor=user,
        subject=fresh,
        audience=fresh.current_audience(),
    )


def meeting_schedule(
    *,
    incident_id: int,
    user: User,
    title: str,
    scheduled_at: datetime,
    location: str = "",
    virtual_link: str = "",
    chair: User | None = None,
    agenda: Sequence[dict[str, Any]] = (),
    attendees: Sequence[Any] = (),
    marking: str = DEFAULT_MARKING,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> Meeting:
    """Schedule a meeting of the incident's strategic cell, with its agenda and invitees.

    ``attendees``: people, or (person, attendance) pairs; each attends for their own agency.
    """
    errors: Errors = {}
    text_required(errors, title=title)
    if scheduled_at is None:
        errors.setdefault("scheduled_at", []).append("Say when the meeting sits.")
    instant_check(errors, "scheduled_at", scheduled_at, future=True)
    link = _link_check(errors, virtual_link)
    cleaned_agenda = _agenda_clean(errors, list(agenda))
    cleaned_attendees = _attendees_clean(errors, list(attendees))
    errors_raise(errors)
    marking_validate(marking)
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        _people_check(incident, chair, cleaned_attendees)
        audience = audience_for(
            incident,
            author=user,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        now = timezone.now()
        meeting = Meeting.objects.create(
            incident=incident,
            title=title.strip(),
            scheduled_at=scheduled_at,
            location=(location or "").strip(),
            virtual_link=link,
            chair=chair,
            marking=marking,
            created_by=user,
            created_at=now,
            updated_at=now,
        )
        recipients_store(meeting, audience)
        _agenda_store(meeting, cleaned_agenda)
        _attendees_store(meeting, cleaned_attendees)
        _announce(incident, meeting, "meeting.scheduled", user)
    return meeting


_MEETING_FIELDS = {
    "title",
    "scheduled_at",
    "location",
    "virtual_link",
    "chair",
    "agenda",
    "attendees",
    "minutes",
    "agenda_minutes",
}


def _locked(meeting_id: int, user: User) -> tuple[Incident, Meeting]:
    """The incident and the meeting, locked in that order; 404 for a meeting the user may not
    read, 409 for one that is closed."""
    incident_id = (
        Meeting.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=meeting_id)
    )
    incident = incident_lock_for_write(
        incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
    )
    meeting = Meeting.objects.select_for_update().get(pk=meeting_id)
    return incident, meeting


def meeting_update(*, meeting_id: int, user: User, **changes: Any) -> Meeting:
    """Change a meeting that is not closed: its details, agenda, attendees or minutes.

    ``agenda`` and ``attendees`` replace the lists; an agenda item given without ``minutes``
    keeps those of the item at its position. ``agenda_minutes`` maps agenda item ids to their
    minutes. A closed meeting refuses every change (409): its minutes are the record.
    """
    unknown = set(changes) - _MEETING_FIELDS
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    if not changes:
        raise ValidationError({"non_field_errors": ["Give at least one field to change."]})
    errors: Errors = {}
    if "title" in changes:
        text_required(errors, title=changes["title"])
    if "scheduled_at" in changes:
        if changes["scheduled_at"] is None:
            errors.setdefault("scheduled_at", []).append("Say when the meeting sits.")
        instant_check(errors, "scheduled_at", changes["scheduled_at"], future=True)
    if "virtual_link" in changes:
        changes["virtual_link"] = _link_check(errors, changes["virtual_link"])
    agenda = _agenda_clean(errors, changes["agenda"]) if "agenda" in changes else None
    attendees = _attendees_clean(errors, changes["attendees"]) if "attendees" in changes else None
    agenda_minutes = changes.get("agenda_minutes") or {}
    if not isinstance(agenda_minutes, dict):
        errors.setdefault("agenda_minutes", []).append("Map agenda item ids to minutes.")
    errors_raise(errors)
    with transaction.atomic():
        incident, meeting = _locked(meeting_id, user)
        if meeting.is_closed:
            raise Conflict(
                f"“{meeting}” is closed; its minutes are the record and can no longer change."
            )
        _people_check(incident, changes.get("chair"), attendees)
        for name in ("title", "scheduled_at", "location", "virtual_link", "chair", "minutes"):
            if name in changes:
                value = changes[name]
                setattr(meeting, name, value.strip() if isinstance(value, str) else value)
        if agenda is not None:
            kept = {item.position: item.minutes for item in meeting.agenda_items.all()}
            for number, item in enumerate(agenda, start=1):
                if not item["minutes"] and "minutes" not in (changes["agenda"][number - 1]):
                    item["minutes"] = kept.get(number, "")
            _agenda_store(meeting, agenda)
        if agenda_minutes:
            items = {item.pk: item for item in meeting.agenda_items.all()}
            strangers = [key for key in agenda_minutes if _as_int(key) not in items]
            if strangers:
                raise ValidationError(
                    {"agenda_minutes": [f"Not items of this meeting's agenda: {strangers}."]}
                )
            for key, text in agenda_minutes.items():
                agenda_item = items[cast(int, _as_int(key))]
                agenda_item.minutes = str(text or "").strip()
                agenda_item.save(update_fields=["minutes"])
        if attendees is not None:
            _attendees_store(meeting, attendees)
        meeting.updated_at = timezone.now()
        meeting.save()
        _announce(incident, meeting, "meeting.updated", user, changed=sorted(changes))
    return meeting


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def meeting_attendance_record(
    *, meeting_id: int, user: User, attendance: dict[int, str]
) -> Meeting:
    """Mark invitees present or as having sent apologies (``attendance``: attendee id →
    attendance). Refused once the meeting is closed."""
    errors: Errors = {}
    if not isinstance(attendance, dict) or not attendance:
        errors.setdefault("attendance", []).append("Give the attendance of at least one person.")
    else:
        bad = [value for value in attendance.values() if value not in Attendance.values]
        if bad:
            errors.setdefault("attendance", []).append(
                f"Unknown attendance {bad[0]!r}; use one of {', '.join(Attendance.values)}."
            )
    errors_raise(errors)
    with transaction.atomic():
        incident, meeting = _locked(meeting_id, user)
        if meeting.is_closed:
            raise Conflict(f"“{meeting}” is closed; its attendance can no longer change.")
        rows = {row.pk: row for row in meeting.attendees.all()}
        strangers = [key for key in attendance if _as_int(key) not in rows]
        if strangers:
            raise ValidationError({"attendance": [f"Not attendees of this meeting: {strangers}."]})
        for key, value in attendance.items():
            row = rows[_as_int(key)]  # type: ignore[index]
            row.attendance = value
            row.save(update_fields=["attendance"])
        meeting.updated_at = timezone.now()
        meeting.save(update_fields=["updated_at"])
        _announce(incident, meeting, "meeting.updated", user, changed=["attendees"])
    return meeting


def meeting_transition(*, meeting_id: int, user: User, to: str) -> Meeting:
    """Start a scheduled meeting, or close one in progress. Anything else is refused (409),
    saying which moves the meeting's status allows."""
    if to not in MeetingStatus.values:
        raise ValidationError(
            {"to": [f"Unknown status {to!r}; use one of {', '.join(MeetingStatus.values)}."]}
        )
    with transaction.atomic():
        incident, meeting = _locked(meeting_id, user)
        if to not in meeting.allowed_transitions:
            allowed = list(meeting.allowed_transitions)
            why = (
                f"it can move to {', '.join(allowed)} only"
                if allowed
                else "a closed meeting is final"
            )
            raise Conflict(
                f"“{meeting}” is {meeting.get_status_display().lower()}; "
                f"it cannot move to {to}: {why}.",
                allowed=allowed,
            )
        now = timezone.now()
        previous = meeting.status
        meeting.status = to
        if to == MeetingStatus.IN_PROGRESS:
            meeting.started_at = now
        if to == MeetingStatus.CLOSED:
            meeting.closed_at = now
        meeting.updated_at = now
        meeting.save()
        _announce(incident, meeting, MEETING_EVENT_KINDS[to], user, previous_status=previous)
    return meeting


def meeting_marking_change(
    *,
    meeting_id: int,
    user: User,
    marking: str,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> Meeting:
    """Raise or lower a meeting's marking (the agency that scheduled it; audited).

    Allowed on a closed meeting too: what may be shared of a record changes after the event.
    The earlier events about the meeting take the new audience, as for every item.
    """
    marking_validate(marking)
    with transaction.atomic():
        incident_id = (
            Meeting.objects.visible_to(user)
            .values_list("incident_id", flat=True)
            .get(pk=meeting_id)
        )
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        meeting = (
            Meeting.objects.select_for_update().select_related("created_by").get(pk=meeting_id)
        )
        author_agency_id = meeting.created_by.agency_id
        marking_change_require(user, author_agency_id)
        before = meeting.current_audience()
        after = audience_for(
            incident,
            author=meeting.created_by,
            author_agency_id=author_agency_id,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
            also=[user],
        )
        meeting.marking = marking
        meeting.updated_at = timezone.now()
        meeting.save(update_fields=["marking", "updated_at"])
        recipients_store(meeting, after)
        marking_change_record(
            incident=incident,
            user=user,
            item=meeting,
            kind="meeting.marking_changed",
            payload=dict(MeetingSerializer(meeting).data),
            before=before,
            after=after,
        )
    return meeting
