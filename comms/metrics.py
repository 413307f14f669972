"""Exercise metrics: how fast the structure stood up and how the cell decided, for the debrief.

Computed only from stored timestamps (never the clock at the time of reading), so a report read
a month later says the same as one read at the end of the exercise.

- **Activation response**: for each activation of the exercise incident and each agency it
  called, seconds from the activation to that agency's first answer counting towards the quorum
  ("acknowledged" or "attending"; "cannot attend" does not stand anything up), and from the
  activation to its quorum (``completed_at``).
- **Declaration to first joint decision**: the declaration is the first M/ETHANE report with
  "major incident declared", or, when no report declared one, the incident's move to
  ``activated``. The first joint decision is the earliest ``decided_at`` at or after it.
- **JDM completeness**: for each section of the Joint Decision Model, how many of the current
  decisions (those no correction superseded) filled it. The log refuses a blank section, so
  "options" counts decisions that weighed two or more options, and "take action and review"
  those that set a review time.

Decisions and M/ETHANE reports are read through the access rule, so a reader is never told
about entries they may not see; activations are the exercise's own (timings and agency names
only, no content).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coordination.models import Decision, User
from incidents.models import IncidentEvent, MethaneReport

from .models import Acknowledgement, Activation, ExerciseRun, Response


def _text(*names: str) -> Callable[[Decision], bool]:
    return lambda d: all(str(getattr(d, name) or "").strip() for name in names)


def _alternatives(decision: Decision) -> bool:
    # An option only counts as considered when another one was weighed against it.
    return isinstance(decision.options, list) and len(decision.options) >= 2


def _review(decision: Decision) -> bool:
    return _text("decision", "rationale")(decision) and decision.review_by is not None


# The JDM's sections, in order, and when a decision filled each. The decision log already
# refuses an entry with a blank section, so the last two ask for what makes them complete:
# options weighed against each other, and a time set to review what happened.
JDM_SECTIONS: list[tuple[str, str, Callable[[Decision], bool]]] = [
    ("information", "Gather information and intelligence", _text("information")),
    (
        "threat_strategy",
        "Assess threat and risk, develop a working strategy",
        _text("threat_assessment", "working_strategy"),
    ),
    ("powers", "Consider powers, policies and procedures", _text("powers_policies")),
    ("options", "Identify options and contingencies (two or more)", _alternatives),
    ("action", "Take action and review what happened (review time set)", _review),
]


@dataclass
class AgencyResponse:
    agency: str
    first_acknowledged_at: datetime | None
    seconds_to_acknowledge: float | None


@dataclass
class ActivationMetrics:
    activation: int
    message: str
    sent_at: datetime
    quorum_met_at: datetime | None
    seconds_to_quorum: float | None
    agencies: list[AgencyResponse] = field(default_factory=list)


@dataclass
class SectionCount:
    key: str
    label: str
    filled: int


@dataclass
class ExerciseMetrics:
    run: ExerciseRun
    activations: list[ActivationMetrics]
    declared_at: datetime | None
    declared_by: str  # "methane" or "activated", empty when never declared
    first_decision_at: datetime | None
    seconds_to_first_decision: float | None
    decisions: int
    sections: list[SectionCount]

    def as_dict(self) -> dict[str, Any]:
        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "exercise": self.run.pk,
            "is_exercise": True,
            "incident": self.run.incident.reference,
            "scenario": self.run.scenario.name,
            "started_at": instant(self.run.started_at),
            "ended_at": instant(self.run.ended_at),
            "activations": [
                {
                    "activation": a.activation,
                    "message": a.message,
                    "sent_at": instant(a.sent_at),
                    "quorum_met_at": instant(a.quorum_met_at),
                    "seconds_to_quorum": a.seconds_to_quorum,
                    "agencies": [
                        {
                            "agency": r.agency,
                            "first_acknowledged_at": instant(r.first_acknowledged_at),
                            "seconds_to_acknowledge": r.seconds_to_acknowledge,
                        }
                        for r in a.agencies
                    ],
                }
                for a in self.activations
            ],
            "declaration": {
                "declared_at": instant(self.declared_at),
                "declared_by": self.declared_by,
                "first_decision_at": instant(self.first_decision_at),
                "seconds_to_first_decision": self.seconds_to_first_decision,
            },
            "decisions": self.decisions,
            "jdm_sections": [
                {"section": s.key, "label": s.label, "decisions_filled": s.filled}
                for s in self.sections
            ],
        }


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def exercise_metrics(*, run: ExerciseRun, user: User) -> ExerciseMetrics:
    incident = run.incident
    activations = []
    for activation in (
        Activation.objects.filter(incident=incident)
        .prefetch_related("targets__agency")
        .order_by("created_at", "pk")
    ):
        firsts: dict[int, datetime] = {}
        for answer in Acknowledgement.objects.filter(activation=activation).exclude(
            response=Response.CANNOT_ATTEND
        ):
            at = firsts.get(answer.target_id)
            if at is None or answer.created_at < at:
                firsts[answer.target_id] = answer.created_at
        responses = [
            AgencyResponse(
                agency=target.agency.short_name,
                first_acknowledged_at=firsts.get(target.pk),
                seconds_to_acknowledge=_seconds(activation.created_at, firsts.get(target.pk)),
            )
            for target in sorted(activation.targets.all(), key=lambda t: t.agency.short_name)
        ]
        activations.append(
            ActivationMetrics(
                activation=activation.pk,
                message=activation.message,
                sent_at=activation.created_at,
                quorum_met_at=activation.completed_at,
                seconds_to_quorum=_seconds(activation.created_at, activation.completed_at),
                agencies=responses,
            )
        )

    declared = (
        MethaneReport.objects.visible_to(user)
        .filter(incident=incident, major_incident_declared=True)
        .order_by("submitted_at", "version")
        .values_list("submitted_at", flat=True)
        .first()
    )
    declared_by = "methane" if declared else ""
    if declared is None:
        for created_at, payload in (
            IncidentEvent.objects.filter(incident=incident, kind="incident.transitioned")
            .order_by("seq")
            .values_list("created_at", "payload")
        ):
            if payload.get("status") == "activated":
                declared, declared_by = created_at, "activated"
                break

    decisions = list(Decision.objects.visible_to(user).filter(incident=incident))
    first_decision = None
    if declared is not None:
        first_decision = min(
            (d.decided_at for d in decisions if d.decided_at >= declared), default=None
        )
    superseded = {d.supersedes_id for d in decisions if d.supersedes_id}
    current = [d for d in decisions if d.pk not in superseded]
    sections = [
        SectionCount(
            key=key,
            label=label,
            filled=sum(1 for d in current if filled(d)),
        )
        for key, label, filled in JDM_SECTIONS
    ]
    return ExerciseMetrics(
        run=run,
        activations=activations,
        declared_at=declared,
        declared_by=declared_by,
        first_decision_at=first_decision,
        seconds_to_first_decision=_seconds(declared, first_decision),
        decisions=len(current),
        sections=sections,
    )


def metrics_csv_rows(metrics: ExerciseMetrics) -> list[list[str]]:
    """The report as rows of (metric, subject, value): one table, easy to load anywhere."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    run = metrics.run
    rows = [
        ["metric", "subject", "value"],
        ["exercise", "EXERCISE", f"{run.incident.reference} {run.scenario.name}"],
        ["started_at", "", text(run.started_at)],
        ["ended_at", "", text(run.ended_at)],
    ]
    for a in metrics.activations:
        subject = f"activation {a.activation}"
        rows.append(["activation_sent_at", subject, text(a.sent_at)])
        rows.append(["seconds_to_quorum", subject, text(a.seconds_to_quorum)])
        for r in a.agencies:
            rows.append(
                ["seconds_to_first_acknowledgement", f"{subject} {r.agency}",
                 text(r.seconds_to_acknowledge)]
            )  # fmt: skip
    rows.append(["declared_at", metrics.declared_by, text(metrics.declared_at)])
    rows.append(["first_decision_at", "", text(metrics.first_decision_at)])
    rows.append(["seconds_to_first_decision", "", text(metrics.seconds_to_first_decision)])
    rows.append(["decisions", "", text(metrics.decisions)])
    for s in metrics.sections:
        rows.append(["jdm_section_filled", s.key, text(s.filled)])
    return rows
