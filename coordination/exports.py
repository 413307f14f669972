"""The record of an incident for debrief and public inquiry: its joint decision log, timeline and
actions, as one PDF document or as CSV files.

An export shows its reader exactly what the access rule lets them read (``visible_to``), never
more; the PDF says how many entries were withheld from that reader, so an inquiry knows a
document is partial without learning what is missing. Every export is audited, and so is every
RED or AMBER+STRICT item it contains.
"""

import copy
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Prefetch
from django.template.loader import render_to_string
from django.utils import timezone

from incidents.models import Incident, TimelineEntry

from .audit import audit_read, audit_record
from .markings import Marking
from .models import Action, Decision, DecisionPosition, Meeting, User
from .services import ChainReport, decision_log_verify

# Lowest to highest: the banner of a document carries the highest marking of what it contains.
MARKING_ORDER: list[str] = [
    Marking.CLEAR,
    Marking.GREEN,
    Marking.AMBER,
    Marking.AMBER_STRICT,
    Marking.RED,
]
# TLP 2.0: coloured text on black.
BANNER_COLOURS: dict[str, str] = {
    Marking.CLEAR: "#FFFFFF",
    Marking.GREEN: "#33FF00",
    Marking.AMBER: "#FFC000",
    Marking.AMBER_STRICT: "#FFC000",
    Marking.RED: "#FF2B2B",
}
KINDS = ("decisions", "timeline", "actions")


def highest_marking(markings: list[str]) -> str:
    """The most restrictive of ``markings``; CLEAR for an empty document."""
    ranks = [MARKING_ORDER.index(m) for m in markings if m in MARKING_ORDER]
    return MARKING_ORDER[max(ranks)] if ranks else Marking.CLEAR


@dataclass
class IncidentRecord:
    """What one reader may see of an incident's record, gathered once for any format."""

    incident: Incident
    reader: User
    generated_at: datetime
    # Items carry what the export shows of them (``marking_shown`` and the like) as attributes.
    decisions: list[Any]
    timeline: list[Any]
    actions: list[Any]
    withheld: dict[str, int]
    chain: ChainReport
    meetings: dict[int, Meeting] = field(default_factory=dict)

    @property
    def marking(self) -> str:
        return highest_marking(
            [item.marking_shown for item in (*self.decisions, *self.timeline, *self.actions)]
        )

    @property
    def withheld_total(self) -> int:
        return sum(self.withheld.values())

    def restricted_items(self) -> list[Any]:
        """The RED and AMBER+STRICT items included, each carrying the marking in force."""
        items = []
        for item in (*self.decisions, *self.timeline, *self.actions):
            if item.marking_shown in (Marking.AMBER_STRICT, Marking.RED):
                if item.marking != item.marking_shown:
                    item = copy.copy(item)  # a re-marked decision: never saved
                    item.marking = item.marking_shown
                items.append(item)
        return items


def _decisions(incident: Incident, reader: User) -> list[Any]:
    entries: list[Any] = list(
        Decision.objects.visible_to(reader)
        .filter(incident=incident)
        .select_related("author", "author_agency", "superseded_by", "supersedes")
        .prefetch_related(
            Prefetch(
                "positions",
                queryset=DecisionPosition.objects.select_related("agency", "recorded_by"),
            ),
            "recipient_agencies",
            "recipient_people",
            "marking_changes__recipient_agencies",
            "marking_changes__recipient_people",
        )
        .order_by("sequence")
    )
    for entry in entries:
        entry.marking_shown = entry.current_audience().marking
        entry.agreeing = [p for p in entry.positions.all() if p.stance == "agree"]
        entry.dissenting = [p for p in entry.positions.all() if p.stance == "dissent"]
        entry.correction = getattr(entry, "superseded_by", None)
    return entries


def incident_record(*, incident: Incident, reader: User, verify: bool = True) -> IncidentRecord:
    """Gather what ``reader`` may read of the incident's record (the caller has checked that the
    reader may see the incident at all)."""
    decisions = _decisions(incident, reader)
    timeline: list[Any] = list(
        TimelineEntry.objects.visible_to(reader)
        .filter(incident=incident)
        .select_related("author", "author_agency")
        .order_by("occurred_at", "pk")
    )
    actions: list[Any] = list(
        Action.objects.visible_to(reader)
        .filter(incident=incident)
        .select_related("owner_agency", "owner", "decision")
        .order_by("created_at", "pk")
    )
    for item in (*timeline, *actions):
        item.marking_shown = item.marking
    withheld = {
        "decisions": Decision.objects.filter(incident=incident).count() - len(decisions),
        "timeline": TimelineEntry.objects.filter(incident=incident).count() - len(timeline),
        "actions": Action.objects.filter(incident=incident).count() - len(actions),
    }
    # A decision or action names its meeting only to a reader of that meeting.
    meetings = {
        meeting.pk: meeting
        for meeting in Meeting.objects.visible_to(reader).filter(incident=incident)
    }
    for item in (*decisions, *actions):
        item.meeting_shown = meetings.get(item.meeting_id) if item.meeting_id else None
    return IncidentRecord(
        incident=incident,
        reader=reader,
        generated_at=timezone.now(),
        decisions=decisions,
        timeline=timeline,
        actions=actions,
        withheld=withheld,
        chain=decision_log_verify(incident_id=incident.pk) if verify else ChainReport(True, 0),
        meetings=meetings,
    )


def _audit(record: IncidentRecord, *, what: str, file_format: str, request: Any) -> None:
    audit_record(
        action="export",
        user=record.reader,
        request=request,
        target=record.incident,
        detail={
            "what": what,
            "format": file_format,
            "incident": record.incident.reference,
            "decisions": len(record.decisions),
            "timeline": len(record.timeline),
            "actions": len(record.actions),
            "withheld": record.withheld,
        },
    )
    audit_read(user=record.reader, request=request, items=record.restricted_items())


def export_pdf(*, incident: Incident, reader: User, request: Any = None) -> bytes:
    """The incident's record as a PDF document for ``reader`` (audited)."""
    from weasyprint import CSS, HTML  # loads Pango: only when a PDF is made

    record = incident_record(incident=incident, reader=reader)
    zone = incident.city.zone
    with timezone.override(zone):
        context = {
            "record": record,
            "incident": incident,
            "marking": record.marking,
            "banner_colour": BANNER_COLOURS[record.marking],
            "generated_local": record.generated_at.astimezone(zone),
            "generated_utc": record.generated_at.astimezone(UTC),
        }
        html = render_to_string("exports/log.html", context)
        css = render_to_string("exports/log.css", context)
    pdf = HTML(string=html).write_pdf(stylesheets=[CSS(string=css)])
    assert pdf is not None
    _audit(record, what="incident_record", file_format="pdf", request=request)
    return pdf


def cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula: the text is anyone's."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


COLUMNS = {
    "decisions": [
        "entry",
        "marking",
        "decided_at",
        "recorded_at",
        "author",
        "author_agency",
        "information",
        "threat_assessment",
        "working_strategy",
        "powers_policies",
        "options",
        "decision",
        "rationale",
        "late_entry_reason",
        "review_by",
        "agreed_by",
        "dissents",
        "supersedes",
        "superseded_by",
        "meeting",
        "entry_hash",
    ],
    "timeline": ["occurred_at", "marking", "category", "text", "author", "author_agency"],
    "actions": [
        "id",
        "marking",
        "title",
        "description",
        "owner_agency",
        "owner",
        "due_at",
        "status",
        "decision",
        "meeting",
        "created_at",
        "completed_at",
    ],
}


def _decision_row(entry: Any) -> list[Any]:
    options = "; ".join(
        f"{'CHOSEN' if option.get('chosen') else 'rejected'}: {option.get('option')} "
        f"({option.get('reason')})"
        for option in entry.options
    )
    return [
        entry.label,
        entry.marking_shown,
        entry.decided_at,
        entry.recorded_at,
        entry.author,
        entry.author_agency.short_name,
        entry.information,
        entry.threat_assessment,
        entry.working_strategy,
        entry.powers_policies,
        options,
        entry.decision,
        entry.rationale,
        entry.late_entry_reason,
        entry.review_by,
        ", ".join(p.agency.short_name for p in entry.agreeing),
        "; ".join(f"{p.agency.short_name}: {p.statement}" for p in entry.dissenting),
        entry.supersedes.label if entry.supersedes else "",
        entry.correction.label if entry.correction else "",
        entry.meeting_shown.title if entry.meeting_shown else "",
        entry.entry_hash,
    ]


def _timeline_row(entry: Any) -> list[Any]:
    return [
        entry.occurred_at,
        entry.marking_shown,
        entry.get_category_display(),
        entry.text,
        entry.author,
        entry.author_agency.short_name if entry.author_agency_id else "",
    ]


def _action_row(action: Any) -> list[Any]:
    return [
        action.pk,
        action.marking_shown,
        action.title,
        action.description,
        action.owner_agency.short_name,
        action.owner or "",
        action.due_at,
        action.get_status_display(),
        action.decision.label if action.decision else "",
        action.meeting_shown.title if action.meeting_shown else "",
        action.created_at,
        action.completed_at,
    ]


class _Line:
    """A file-like object that hands back what the CSV writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def export_csv(
    *, incident: Incident, reader: User, kind: str, request: Any = None
) -> Iterator[str]:
    """One part of the incident's record (``decisions``, ``timeline`` or ``actions``) as CSV
    lines for ``reader``; times in UTC. Audited when called, before the first line is read."""
    if kind not in KINDS:
        raise ValueError(f"Unknown export {kind!r}")
    record = incident_record(incident=incident, reader=reader, verify=False)
    items: list[Any] = getattr(record, kind)
    rows: dict[str, Callable[[Any], list[Any]]] = {
        "decisions": _decision_row,
        "timeline": _timeline_row,
        "actions": _action_row,
    }
    row = rows[kind]
    for name in KINDS:
        if name != kind:  # only what this file holds counts as read
            setattr(record, name, [])
    record.withheld = {kind: record.withheld[kind]}
    _audit(record, what=kind, file_format="csv", request=request)
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        yield writer.writerow(COLUMNS[kind])
        for item in items:
            yield writer.writerow([cell(value) for value in row(item)])

    return lines()
