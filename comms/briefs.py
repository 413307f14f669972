"""Situation briefs in the IIMARCH order, generated from an incident's state at one instant.

Information (the latest M/ETHANE; timeline entries since the last issued brief), Intent (the
working strategy and threat assessment of the latest decision in force), Method (decisions in
force and open actions), Administration (free text), Risk assessment (the threat and risk
assessments of the decisions in force: incidents keep no separate risk register), Communications
(the public line published at that instant) and Humanitarian issues (free text).

"At an instant" means from what existed then: items recorded at or before it, decisions not yet
superseded then, each action's status as its latest event before the instant recorded it, the
statement published and not yet superseded then. So a brief can be rebuilt for a past moment.

Need to know: a brief is generated from its author's view (``visible_to``) and only from items
whose marking is at least as open as the brief's own, which is CLEAR, GREEN or AMBER (default).
Restricted material (AMBER+STRICT, RED) therefore never enters a brief, and an AMBER item never
enters a GREEN or CLEAR one. Every member of a participating agency reads a brief.

A draft is edited freely; issuing numbers it (1, 2, 3 per incident) and freezes it.

Lock order: the incident row, then the brief row.
"""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from coordination.markings import Marking, marking_validate
from coordination.models import Action, ActionStatus, Decision, User
from coordination.roles import Capability
from coordination.validation import errors_raise, instant_check, recording_agency
from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident, IncidentEvent, MethaneReport, TimelineEntry
from incidents.services import incident_lock_for_write

from .models import Brief, BriefStatus
from .statements import statement_current

BRIEF_MARKINGS = (Marking.CLEAR, Marking.GREEN, Marking.AMBER)
# Items a brief of each marking may draw on: as open as the brief, or more.
DRAWS_ON: dict[str, tuple[str, ...]] = {
    Marking.CLEAR: (Marking.CLEAR,),
    Marking.GREEN: (Marking.CLEAR, Marking.GREEN),
    Marking.AMBER: (Marking.CLEAR, Marking.GREEN, Marking.AMBER),
}
SECTIONS = [
    ("information", "Information"),
    ("intent", "Intent"),
    ("method", "Method"),
    ("administration", "Administration"),
    ("risk_assessment", "Risk assessment"),
    ("communications", "Communications"),
    ("humanitarian", "Humanitarian issues"),
]
EDITABLE = frozenset(name for name, _ in SECTIONS)
SECTION_MAX = 20_000
OPEN_ACTION_STATUSES = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS, ActionStatus.BLOCKED)
METHANE_LABELS = [
    ("major_incident_declared", "M: major incident declared"),
    ("exact_location", "E: exact location"),
    ("incident_type", "T: type"),
    ("hazards", "H: hazards"),
    ("access", "A: access"),
    ("casualties_fatal", "N: fatalities"),
    ("casualties_p1", "N: immediate (P1)"),
    ("casualties_p2", "N: urgent (P2)"),
    ("casualties_p3", "N: delayed (P3)"),
    ("casualties_notes", "N: casualties"),
    ("emergency_services_present", "E: emergency services present"),
    ("emergency_services_required", "E: emergency services required"),
]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    return str(value)


# --- the state at an instant ----------------------------------------------------------------------


def brief_state(*, incident: Incident, user: User, as_of: datetime, marking: str) -> dict[str, Any]:
    """The structured state of ``incident`` at ``as_of``, as ``user`` may see it, drawn only from
    items marked at least as openly as ``marking``. JSON-ready: kept in ``Brief.content``."""
    allowed = DRAWS_ON[marking]
    previous = (
        Brief.objects.filter(incident=incident, status=BriefStatus.ISSUED, as_of__lte=as_of)
        .order_by("-as_of", "-number")
        .first()
    )
    methane = (
        MethaneReport.objects.visible_to(user)
        .filter(incident=incident, submitted_at__lte=as_of, marking__in=allowed)
        .order_by("-version")
        .first()
    )
    decisions = (
        Decision.objects.visible_to(user)
        .filter(incident=incident, recorded_at__lte=as_of, marking_now__in=allowed)
        .exclude(superseded_by__recorded_at__lte=as_of)
        .order_by("-sequence")
    )
    actions = list(
        Action.objects.visible_to(user)
        .filter(incident=incident, created_at__lte=as_of, marking__in=allowed)
        .select_related("owner_agency")
        .order_by("due_at", "pk")
    )
    # An action's row holds only its status now; its events hold each status it had.
    as_recorded: dict[int, dict[str, Any]] = {}
    for event in IncidentEvent.objects.filter(
        incident=incident,
        subject_type="action",
        subject_id__in=[a.pk for a in actions],
        created_at__lte=as_of,
    ).order_by("seq"):
        assert event.subject_id is not None
        as_recorded[event.subject_id] = event.payload
    timeline = TimelineEntry.objects.visible_to(user).filter(
        incident=incident, recorded_at__lte=as_of, marking__in=allowed
    )
    if previous is not None:
        timeline = timeline.filter(recorded_at__gt=previous.as_of)
    statement = statement_current(incident.pk, at=as_of)
    return {
        "as_of": _iso(as_of),
        "marking": marking,
        "previous": {"id": previous.pk, "number": previous.number, "as_of": _iso(previous.as_of)}
        if previous
        else None,
        "methane": {
            "id": methane.pk,
            "version": methane.version,
            "submitted_at": _iso(methane.submitted_at),
            "fields": {name: _plain(getattr(methane, name)) for name, _ in METHANE_LABELS},
        }
        if methane
        else None,
        "decisions": [
            {
                "id": d.pk,
                "label": d.label,
                "decision": d.decision,
                "threat_assessment": d.threat_assessment,
                "working_strategy": d.working_strategy,
                "recorded_at": _iso(d.recorded_at),
            }
            for d in decisions
        ],
        "actions": [
            {
                "id": a.pk,
                "title": as_recorded.get(a.pk, {}).get("title", a.title),
                "status": as_recorded.get(a.pk, {}).get("status", a.status),
                "owner_agency": a.owner_agency.short_name,
                "due_at": _iso(a.due_at),
            }
            for a in actions
        ],
        "timeline": [
            {"id": t.pk, "occurred_at": _iso(t.occurred_at), "text": t.text}
            for t in timeline.order_by("occurred_at", "pk")
        ],
        "statement": {
            "id": statement.pk,
            "headline": statement.current_version.headline,
            "body": statement.current_version.body,
            "published_at": _iso(statement.published_at),
        }
        if statement is not None and statement.current_version is not None
        else None,
    }


def _local(value: str | None, zone) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def brief_sections(state: dict[str, Any], zone) -> dict[str, str]:
    """The generated text of the IIMARCH sections (Administration and Humanitarian issues are
    the author's own words, so they start empty)."""
    lines: list[str] = []
    methane = state["methane"]
    if methane:
        lines.append(
            f"M/ETHANE version {methane['version']} ({_local(methane['submitted_at'], zone)}):"
        )
        for name, label in METHANE_LABELS:
            value = methane["fields"].get(name)
            if value in (None, ""):
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            lines.append(f"- {label}: {value}")
    else:
        lines.append("No M/ETHANE report yet.")
    previous = state["previous"]
    since = (
        f"since brief {previous['number']} ({_local(previous['as_of'], zone)})"
        if previous
        else "since the incident opened"
    )
    lines.append("")
    lines.append(f"Timeline {since}:")
    lines.extend(f"- {_local(t['occurred_at'], zone)} {t['text']}" for t in state["timeline"])
    if not state["timeline"]:
        lines.append("- Nothing recorded.")

    decisions = state["decisions"]
    if decisions:
        latest = decisions[0]
        intent = (
            f"Working strategy ({latest['label']}): {latest['working_strategy']}\n"
            f"Threat and risk assessment: {latest['threat_assessment']}"
        )
    else:
        intent = "No decision recorded yet: no working strategy agreed."

    method = ["Decisions in force:"]
    method.extend(f"- {d['label']}: {d['decision']}" for d in reversed(decisions))
    if not decisions:
        method.append("- None.")
    open_actions = [a for a in state["actions"] if a["status"] in OPEN_ACTION_STATUSES]
    method.append("")
    method.append("Open actions:")
    for a in open_actions:
        due = f", due {_local(a['due_at'], zone)}" if a["due_at"] else ""
        method.append(f"- {a['owner_agency']}: {a['title']} ({a['status'].replace('_', ' ')}{due})")
    if not open_actions:
        method.append("- None.")

    risks = [f"- {d['label']}: {d['threat_assessment']}" for d in decisions]
    statement = state["statement"]
    communications = (
        f"Public line published {_local(statement['published_at'], zone)}:\n"
        f"{statement['headline']}\n{statement['body']}"
        if statement
        else "No public line published."
    )
    return {
        "information": "\n".join(lines),
        "intent": intent,
        "method": "\n".join(method),
        "risk_assessment": "\n".join(risks) if risks else "No risk assessment recorded yet.",
        "communications": communications,
    }


# --- writes ---------------------------------------------------------------------------------------


def _brief_payload(brief: Brief, summary: str) -> dict[str, Any]:
    return {
        "id": brief.pk,
        "number": brief.number,
        "status": brief.status,
        "as_of": _iso(brief.as_of),
        "summary": summary,
    }


def brief_generate(
    *,
    incident_id: int,
    user: User,
    as_of: datetime | None = None,
    marking: str = Marking.AMBER,
    administration: str = "",
    humanitarian: str = "",
) -> Brief:
    """Draft a brief from the incident's state at ``as_of`` (default: now), as ``user`` sees
    it, drawing only on items at least as openly marked as ``marking``."""
    errors: dict[str, list[str]] = {}
    instant_check(errors, "as_of", as_of, future=False)
    for name, value in (("administration", administration), ("humanitarian", humanitarian)):
        if len(value or "") > SECTION_MAX:
            errors.setdefault(name, []).append(f"At most {SECTION_MAX} characters.")
    errors_raise(errors)
    marking_validate(marking)
    if marking not in BRIEF_MARKINGS:
        raise ValidationError(
            {
                "marking": "A brief is read by every participating agency: use CLEAR, GREEN or "
                "AMBER (restricted items never enter a brief)."
            }
        )
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        now = timezone.now()
        instant = min(as_of or now, now)
        state = brief_state(incident=incident, user=user, as_of=instant, marking=marking)
        sections = brief_sections(state, incident.city.zone)
        brief = Brief.objects.create(
            incident=incident,
            as_of=instant,
            marking=marking,
            author=user,
            author_agency=recording_agency(user),
            previous_id=state["previous"]["id"] if state["previous"] else None,
            administration=(administration or "").strip(),
            humanitarian=(humanitarian or "").strip(),
            content=state,
            created_at=now,
            updated_at=now,
            **sections,
        )
        event_append(
            incident=incident,
            kind="brief.drafted",
            payload=_brief_payload(brief, "Situation brief drafted"),
            actor=user,
            subject=brief,
            marking=brief.marking,
        )
    return brief


def _brief_lock(*, brief_id: int, user: User) -> tuple[Incident, Brief]:
    incident_id = (
        Brief.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=brief_id)
    )
    incident = incident_lock_for_write(
        incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
    )
    return incident, Brief.objects.select_for_update().get(pk=brief_id)


def _frozen_refuse(brief: Brief) -> None:
    if brief.status == BriefStatus.ISSUED:
        raise Conflict(f"Brief {brief.number} is issued and frozen; draft a new brief instead.")


def brief_update(*, brief_id: int, user: User, **sections: str) -> Brief:
    """Edit a draft's sections (refused with 409 once it is issued)."""
    unknown = set(sections) - EDITABLE
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    errors: dict[str, list[str]] = {}
    for name, value in sections.items():
        if not isinstance(value, str):
            errors.setdefault(name, []).append("Must be text.")
        elif len(value) > SECTION_MAX:
            errors.setdefault(name, []).append(f"At most {SECTION_MAX} characters.")
    errors_raise(errors)
    with transaction.atomic():
        incident, brief = _brief_lock(brief_id=brief_id, user=user)
        _frozen_refuse(brief)
        for name, value in sections.items():
            setattr(brief, name, value.strip())
        brief.updated_at = timezone.now()
        brief.save(update_fields=[*sections, "updated_at"])
        event_append(
            incident=incident,
            kind="brief.edited",
            payload=_brief_payload(brief, "Draft situation brief edited"),
            actor=user,
            subject=brief,
            marking=brief.marking,
        )
    return brief


def brief_issue(*, brief_id: int, user: User) -> Brief:
    """Issue a draft: it gets the incident's next brief number and is frozen from then on."""
    with transaction.atomic():
        incident, brief = _brief_lock(brief_id=brief_id, user=user)
        _frozen_refuse(brief)
        # The incident row lock serialises numbering: two briefs issued at once get 1 and 2.
        last = Brief.objects.filter(incident=incident).aggregate(n=Max("number"))["n"] or 0
        now = timezone.now()
        brief.number = last + 1
        brief.status = BriefStatus.ISSUED
        brief.issued_at = now
        brief.issued_by = user
        brief.updated_at = now
        brief.save(update_fields=["number", "status", "issued_at", "issued_by", "updated_at"])
        event_append(
            incident=incident,
            kind="brief.issued",
            payload=_brief_payload(brief, f"Situation brief {brief.number} issued"),
            actor=user,
            subject=brief,
            marking=brief.marking,
        )
    return brief


# --- what changed ---------------------------------------------------------------------------------


def brief_changes(brief: Brief, previous: Brief | None = None) -> dict[str, Any]:
    """What changed between ``previous`` (default: the last brief issued before this one's
    instant) and ``brief``: new and no longer current decisions, M/ETHANE fields that changed,
    actions opened and closed, timeline entries since, whether the public line changed, and
    the sections side by side."""
    if previous is None:
        previous = brief.previous
    before: dict[str, Any] = previous.content if previous is not None else {}
    after = brief.content
    old_decisions = {d["id"]: d for d in before.get("decisions", [])}
    new_decisions = {d["id"]: d for d in after.get("decisions", [])}
    old_actions = {a["id"]: a for a in before.get("actions", [])}
    opened, closed = [], []
    for action in after.get("actions", []):
        was = old_actions.get(action["id"])
        was_open = was is not None and was["status"] in OPEN_ACTION_STATUSES
        now_open = action["status"] in OPEN_ACTION_STATUSES
        if now_open and not was_open:
            opened.append(action)
        elif was_open and not now_open:
            closed.append(action)
    methane_changes = []
    old_methane = (before.get("methane") or {}).get("fields", {})
    new_methane = (after.get("methane") or {}).get("fields", {})
    for name, label in METHANE_LABELS:
        if old_methane.get(name) != new_methane.get(name):
            methane_changes.append(
                {
                    "field": name,
                    "label": label,
                    "before": old_methane.get(name),
                    "after": new_methane.get(name),
                }
            )
    old_statement = (before.get("statement") or {}).get("id")
    new_statement = (after.get("statement") or {}).get("id")
    return {
        "previous": previous,
        "new_decisions": [d for pk, d in new_decisions.items() if pk not in old_decisions],
        "ended_decisions": [d for pk, d in old_decisions.items() if pk not in new_decisions],
        "methane_changes": methane_changes,
        "actions_opened": opened,
        "actions_closed": closed,
        "timeline": after.get("timeline", []),
        "statement_changed": old_statement != new_statement,
        "statement": after.get("statement"),
        "sections": [
            {
                "name": name,
                "label": label,
                "before": getattr(previous, name) if previous is not None else "",
                "after": getattr(brief, name),
            }
            for name, label in SECTIONS
        ],
    }
