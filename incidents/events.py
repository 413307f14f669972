"""The incident event stream (invariant 2): append in the caller's transaction, publish on commit.

Every service that changes an incident calls ``event_append``. The sequence number comes from an
UPDATE of the incident row, which holds that row's lock until the transaction ends: concurrent
writers queue behind each other, and a rolled-back writer takes its number back with it, so numbers
are gap-free. Publishing happens only after commit, because a client must never see a change that
is later rolled back; if Redis is down or a message is lost, clients replay by number.
"""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from coordination.markings import DEFAULT_MARKING, OPEN_TO_PARTICIPANTS, Audience
from ctpn import realtime

from .models import Incident, IncidentEvent
from .serializers import IncidentEventSerializer


def event_append(
    *,
    incident: Incident,
    kind: str,
    payload: dict[str, Any],
    actor=None,
    subject=None,
    marking: str = DEFAULT_MARKING,
    audience: Audience | None = None,
) -> IncidentEvent:
    """Append the next event of ``incident``; must run inside the transaction of the change.

    ``audience`` (the marking and recipient lists of the item the event is about) decides who
    may read it; without one, ``marking`` alone does (an open marking, or nobody).
    """
    audience = audience or Audience(marking=marking)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_append must run inside the transaction of the change it records")
    now = timezone.now()
    Incident.objects.filter(pk=incident.pk).update(
        last_event_seq=F("last_event_seq") + 1, updated_at=now
    )
    seq = Incident.objects.filter(pk=incident.pk).values_list("last_event_seq", flat=True).get()
    incident.last_event_seq, incident.updated_at = seq, now
    event = IncidentEvent.objects.create(
        incident=incident,
        seq=seq,
        kind=kind,
        subject_type=subject._meta.model_name if subject is not None else "",
        subject_id=subject.pk if subject is not None else None,
        payload=payload,
        marking=audience.marking,
        actor=actor,
        created_at=now,
    )
    _audience_store(event, audience)
    transaction.on_commit(lambda: event_publish(event, audience), robust=True)
    return event


def _audience_store(event: IncidentEvent, audience: Audience) -> None:
    if audience.agencies:
        event.recipient_agencies.set(audience.agencies)
    if audience.people:
        event.recipient_people.set(audience.people)


def event_audience_update(*, subject, audience: Audience) -> None:
    """Give every earlier event about ``subject`` the audience the subject has now.

    After a marking is raised, the events that announced the item (and carry its content) must
    be hidden on replay from those who may no longer read it; after it is lowered, they may be
    read by the wider audience. Runs in the transaction of the marking change.
    """
    events = IncidentEvent.objects.filter(
        incident_id=subject.incident_id,
        subject_type=subject._meta.model_name,
        subject_id=subject.pk,
    )
    events.update(marking=audience.marking)
    agencies = IncidentEvent.recipient_agencies.through
    people = IncidentEvent.recipient_people.through
    ids = list(events.values_list("pk", flat=True))
    agencies.objects.filter(incidentevent_id__in=ids).delete()
    people.objects.filter(incidentevent_id__in=ids).delete()
    agencies.objects.bulk_create(
        agencies(incidentevent_id=pk, agency_id=agency)
        for pk in ids
        for agency in audience.agencies
    )
    people.objects.bulk_create(
        people(incidentevent_id=pk, user_id=person) for pk in ids for person in audience.people
    )


def event_message(event: IncidentEvent) -> dict[str, Any]:
    """The event as clients receive it, live or by replay: the same shape both ways."""
    return dict(IncidentEventSerializer(event).data)


def event_placeholder(seq: int | None) -> dict[str, Any]:
    """What a reader gets in place of an event it may not read: the number only, no content.

    The same live and by replay, so a client's numbering has no false gap.
    """
    return {"seq": seq, "kind": "hidden"}


def event_publish(event: IncidentEvent, audience: Audience | None = None) -> None:
    """Broadcast a committed event to the incident's live topic (``{"type": "event", ...}``).

    Every connection decides for itself whether it may read the content (``comms.consumers``):
    the event carries its marking and, when restricted, the message carries ``"audience"``
    (recipient agency and people ids) beside it, which the fan-out strips before any client
    sees the message.
    """
    message: dict[str, Any] = {"type": "event", "event": event_message(event)}
    if audience is not None and audience.marking not in OPEN_TO_PARTICIPANTS:
        message["audience"] = audience.as_message()
    realtime.publish(realtime.incident_topic(event.incident_id), message)
