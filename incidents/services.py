"""Writes to incidents, M/ETHANE reports and the timeline. Each appends its incident event.

Lock order, everywhere: the city row (only when numbering a new incident), then the incident row.
"""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from coordination.audit import audit_record
from coordination.markings import DEFAULT_MARKING, Audience, audience_build, marking_validate
from coordination.models import Agency, City, User
from coordination.roles import Capability
from coordination.validation import (
    coordinates_check,
    errors_raise,
    instant_check,
    recording_agency,
    require,
    text_required,
)
from ctpn.errors import Conflict

from .events import event_append, event_audience_update
from .models import (
    Incident,
    IncidentLevel,
    IncidentStatus,
    IncidentType,
    MethaneReport,
    TimelineCategory,
    TimelineEntry,
)
from .serializers import IncidentSerializer, MethaneReportSerializer, TimelineEntrySerializer


def incident_lock_for_write(*, incident_id: int, user: User, capability: str) -> Incident:
    """Lock and return an incident the user may see and change; refuse a closed one.

    Raises ``Incident.DoesNotExist`` when the user may not see it (so it answers 404, not 403).
    """
    incident = Incident.objects.visible_to(user).select_for_update().get(pk=incident_id)
    require(user, capability)
    participation_require(incident, user)
    if incident.status == IncidentStatus.CLOSED:
        raise Conflict(f"{incident.reference} is closed; it accepts no further entries.")
    return incident


def participation_require(incident: Incident, user: User) -> None:
    """Only a participating agency writes to an incident (a city administrator may see one that
    their agency is not part of, but does not record in it). Superusers act for the platform."""
    if user.is_superuser:
        return
    if (
        user.agency_id is None
        or not incident.participating_agencies.filter(pk=user.agency_id).exists()
    ):
        raise PermissionDenied(
            f"Your agency does not take part in {incident.reference}; it can read but not write."
        )


def incident_open(
    *,
    user: User,
    title: str,
    type: str,
    level: int,
    lead_agency: Agency,
    participating_agencies: Sequence[Agency] = (),
    neutral_commander: User | None = None,
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    location_description: str = "",
    is_exercise: bool = False,
    opened_at: datetime | None = None,
) -> Incident:
    """Open an incident led by ``lead_agency``; the lead and the opener's agency take part."""
    require(user, Capability.INCIDENT_OPEN)
    errors: dict[str, list[str]] = {}
    text_required(errors, title=title)
    if type not in IncidentType.values:
        errors.setdefault("type", []).append(f"Unknown incident type {type!r}.")
    if level not in IncidentLevel.values:
        errors.setdefault("level", []).append(f"Level must be one of {IncidentLevel.values}.")
    coordinates_check(errors, latitude, longitude)
    instant_check(errors, "opened_at", opened_at, future=False)
    if not lead_agency.is_active:
        errors.setdefault("lead_agency", []).append("This agency is inactive.")
    if not user.is_superuser and lead_agency.city_id != user.city_id:
        errors.setdefault("lead_agency", []).append("Must be an agency of your city.")
    agencies = {lead_agency.pk: lead_agency}
    if user.agency is not None:
        agencies[user.agency.pk] = user.agency
    for agency in participating_agencies:
        agencies[agency.pk] = agency
        if not agency.is_active:
            errors.setdefault("participating_agencies", []).append(f"{agency} is inactive.")
        if agency.city_id != lead_agency.city_id:
            errors.setdefault("participating_agencies", []).append(
                f"{agency} belongs to another city than the lead agency."
            )
    if neutral_commander is not None and neutral_commander.agency_id not in agencies:
        errors.setdefault("neutral_commander", []).append("Must belong to a participating agency.")
    errors_raise(errors)

    now = timezone.now()
    opened_at = opened_at or now
    with transaction.atomic():
        # The city row serialises numbering: two incidents opened at once get consecutive numbers.
        city = City.objects.select_for_update().get(pk=lead_agency.city_id)
        year = opened_at.astimezone(city.zone).year
        last = (
            Incident.objects.filter(city=city, year=year).order_by("-number").values("number")[:1]
        )
        number = (last[0]["number"] if last else 0) + 1
        incident = Incident.objects.create(
            city=city,
            year=year,
            number=number,
            reference=f"{city.code}-{year}-{number:04d}",
            title=title.strip(),
            type=type,
            level=level,
            latitude=latitude,
            longitude=longitude,
            location_description=location_description.strip(),
            lead_agency=lead_agency,
            neutral_commander=neutral_commander,
            is_exercise=is_exercise,
            opened_at=opened_at,
            created_by=user,
            updated_at=now,
        )
        incident.participating_agencies.set(agencies.values())
        event_append(
            incident=incident,
            kind="incident.opened",
            payload=_incident_payload(incident),
            actor=user,
            subject=incident,
        )
    return incident


def incident_transition(*, incident_id: int, user: User, to: str) -> Incident:
    """Move an incident along its lifecycle; refuse anything else, saying what is allowed."""
    with transaction.atomic():
        incident = Incident.objects.visible_to(user).select_for_update().get(pk=incident_id)
        require(user, Capability.INCIDENT_TRANSITION)
        participation_require(incident, user)
        if to not in IncidentStatus.values:
            raise ValidationError({"to": [f"Unknown status {to!r}."]})
        allowed = list(incident.allowed_transitions)
        if to not in allowed:
            reason = (
                f"{incident.reference} is closed; closed is final."
                if not allowed
                else f"{incident.reference} cannot move from {incident.status} to {to}."
            )
            raise Conflict(reason, allowed=allowed)
        previous = incident.status
        incident.status = to
        if to == IncidentStatus.CLOSED:
            incident.closed_at = timezone.now()
        incident.save(update_fields=["status", "closed_at"])
        event_append(
            incident=incident,
            kind="incident.transitioned",
            payload={**_incident_payload(incident), "from": previous},
            actor=user,
            subject=incident,
        )
    return incident


def _incident_payload(incident: Incident) -> dict[str, Any]:
    return dict(IncidentSerializer(incident).data)


def methane_submit(
    *,
    incident_id: int,
    user: User,
    major_incident_declared: bool,
    exact_location: str,
    incident_type: str,
    hazards: str,
    access: str,
    emergency_services_present: str,
    emergency_services_required: str,
    casualties_fatal: int | None = None,
    casualties_p1: int | None = None,
    casualties_p2: int | None = None,
    casualties_p3: int | None = None,
    casualties_notes: str = "",
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    marking: str = DEFAULT_MARKING,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> MethaneReport:
    """Submit a new M/ETHANE report; it supersedes the incident's latest one."""
    errors: dict[str, list[str]] = {}
    text_required(
        errors,
        exact_location=exact_location,
        incident_type=incident_type,
        hazards=hazards,
        access=access,
        emergency_services_present=emergency_services_present,
        emergency_services_required=emergency_services_required,
    )
    coordinates_check(errors, latitude, longitude)
    errors_raise(errors)
    marking_validate(marking)
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        audience = audience_for(
            incident,
            author=user,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        latest = incident.methane_reports.order_by("-version").first()
        report = MethaneReport.objects.create(
            incident=incident,
            version=latest.version + 1 if latest else 1,
            supersedes=latest,
            major_incident_declared=major_incident_declared,
            exact_location=exact_location.strip(),
            latitude=latitude,
            longitude=longitude,
            incident_type=incident_type.strip(),
            hazards=hazards.strip(),
            access=access.strip(),
            casualties_fatal=casualties_fatal,
            casualties_p1=casualties_p1,
            casualties_p2=casualties_p2,
            casualties_p3=casualties_p3,
            casualties_notes=casualties_notes.strip(),
            emergency_services_present=emergency_services_present.strip(),
            emergency_services_required=emergency_services_required.strip(),
            submitted_by=user,
            submitted_agency=recording_agency(user),
            submitted_at=timezone.now(),
            marking=marking,
        )
        recipients_store(report, audience)
        event_append(
            incident=incident,
            kind="methane.submitted",
            payload=dict(MethaneReportSerializer(report).data),
            actor=user,
            subject=report,
            audience=audience,
        )
    return report


def timeline_add(
    *,
    incident_id: int,
    user: User,
    text: str,
    occurred_at: datetime | None = None,
    category: str = TimelineCategory.SIGNIFICANT_EVENT,
    marking: str = DEFAULT_MARKING,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> TimelineEntry:
    """Record a significant event on the incident's timeline."""
    errors: dict[str, list[str]] = {}
    text_required(errors, text=text)
    if category not in TimelineCategory.values:
        errors.setdefault("category", []).append(f"Unknown category {category!r}.")
    instant_check(errors, "occurred_at", occurred_at, future=False)
    errors_raise(errors)
    marking_validate(marking)
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        audience = audience_for(
            incident,
            author=user,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        now = timezone.now()
        entry = TimelineEntry.objects.create(
            incident=incident,
            occurred_at=occurred_at or now,
            recorded_at=now,
            category=category,
            text=text.strip(),
            author=user,
            author_agency=recording_agency(user),
            marking=marking,
        )
        recipients_store(entry, audience)
        event_append(
            incident=incident,
            kind="timeline.added",
            payload=dict(TimelineEntrySerializer(entry).data),
            actor=user,
            subject=entry,
            audience=audience,
        )
    return entry


# --- handling markings ----------------------------------------------------------------------------


def audience_for(
    incident: Incident,
    *,
    author: User,
    marking: str,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
    author_agency_id: int | None = None,
    also: Sequence[User] = (),
) -> Audience:
    """The audience of a new or re-marked item of ``incident`` (see ``audience_build``).

    ``also``: people always kept on a RED list besides the author (whoever re-marks an item).
    """
    participating = set(incident.participating_agencies.values_list("pk", flat=True))
    audience = audience_build(
        marking=marking,
        author=author,
        author_agency_id=author_agency_id if author_agency_id is not None else author.agency_id,
        recipient_agencies=recipient_agencies,
        recipient_people=recipient_people,
        participating_agency_ids=participating,
    )
    if audience.people and also:
        people = set(audience.people) | {person.pk for person in also}
        audience = Audience(marking=audience.marking, people=tuple(sorted(people)))
    return audience


def recipients_store(item: Any, audience: Audience) -> None:
    """Set the recipient lists of a new or re-marked item (inside the caller's transaction)."""
    item.recipient_agencies.set(audience.agencies)
    item.recipient_people.set(audience.people)


def marking_change_require(user: User, author_agency_id: int | None) -> None:
    """Only the author's agency raises or lowers an item's marking."""
    if user.agency_id is None or user.agency_id != author_agency_id:
        raise PermissionDenied("Only the agency that recorded this item can change its marking.")


def marking_change_record(
    *,
    incident: Incident,
    user: User,
    item: Any,
    kind: str,
    payload: dict[str, Any],
    before: Audience,
    after: Audience,
) -> None:
    """What every marking change does besides the change itself: the earlier events about the
    item take its new audience, an event announces the change, and the audit log records it."""
    event_audience_update(subject=item, audience=after)
    event_append(
        incident=incident,
        kind=kind,
        payload={**payload, "previous_marking": before.marking},
        actor=user,
        subject=item,
        audience=after,
    )
    audit_record(
        action="marking.changed",
        user=user,
        target=item,
        detail={
            "incident": incident.pk,
            "from": before.marking,
            "to": after.marking,
            "recipient_agencies": list(after.agencies),
            "recipient_people": list(after.people),
        },
    )


def item_marking_change(
    *,
    model: type[MethaneReport] | type[TimelineEntry],
    item_id: int,
    user: User,
    marking: str,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> Any:
    """Raise or lower the marking of an M/ETHANE report or a timeline entry (its author's agency).

    The item is looked up through the access rule: only someone who may read it may re-mark it.
    """
    marking_validate(marking)
    with transaction.atomic():
        incident_id = (
            model.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=item_id)
        )
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        item = model.objects.select_for_update().get(pk=item_id)
        if isinstance(item, MethaneReport):
            author, author_agency_id = item.submitted_by, item.submitted_agency_id
            serializer: Any = MethaneReportSerializer
            kind = "methane.marking_changed"
        else:
            author, author_agency_id = item.author, item.author_agency_id
            serializer = TimelineEntrySerializer
            kind = "timeline.marking_changed"
        marking_change_require(user, author_agency_id)
        before = item.current_audience()
        after = audience_for(
            incident,
            author=author,
            author_agency_id=author_agency_id,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
            also=[user],
        )
        item.marking = marking
        item.save(update_fields=["marking"])
        recipients_store(item, after)
        marking_change_record(
            incident=incident,
            user=user,
            item=item,
            kind=kind,
            payload=dict(serializer(item).data),
            before=before,
            after=after,
        )
    return item
