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

from coordination.markings import DEFAULT_MARKING
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
) -> IncidentEvent:
    """Append the next event of ``incident``; must run inside the transaction of the change."""
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
        marking=marking,
        actor=actor,
        created_at=now,
    )
    transaction.on_commit(lambda: event_publish(event), robust=True)
    return event


def event_message(event: IncidentEvent) -> dict[str, Any]:
    """The event as clients receive it, live or by replay: the same shape both ways."""
    return dict(IncidentEventSerializer(event).data)


def event_placeholder(seq: int | None) -> dict[str, Any]:
    """What a reader gets in place of an event it may not read: the number only, no content.

    The same live and by replay, so a client's numbering has no false gap.
    """
    return {"seq": seq, "kind": "hidden"}


def event_publish(event: IncidentEvent) -> None:
    """Broadcast a committed event to the incident's live topic (``{"type": "event", ...}``).

    Every connection decides for itself whether it may read the content (``comms.consumers``);
    the message carries the marking so that it can.
    """
    realtime.publish(
        realtime.incident_topic(event.incident_id), {"type": "event", "event": event_message(event)}
    )
