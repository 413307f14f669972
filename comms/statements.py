"""Public statements: one consistent public line, agreed by the partners before it goes out.

A communications lead drafts a statement for an incident and names the partner agencies whose
approval it needs. Each named partner's communications lead approves the current version or
requests changes (saying which). A revision adds a new version: approvals refer to the version
approved, so a new version needs every approval again. Once every named partner has approved the
current version, a communications lead of the owning agency publishes it.

Who "the owner" is: the owning agency (the drafting lead's agency), so any of its communications
leads may revise, withdraw and publish. A statement must not stall because its author went off
shift; the author is recorded on every version and event.

Publishing makes the statement the incident's current public line (CLEAR): the statement
published before it becomes superseded. Only one is current per incident, held by a partial
unique index and by the incident row lock every write takes first.

Lock order, everywhere: the incident row, then statement rows (the current one before this one).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from coordination.markings import Marking, marking_validate
from coordination.models import Agency, User
from coordination.roles import Capability
from coordination.validation import errors_raise, recording_agency, text_required
from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.models import Incident
from incidents.services import incident_lock_for_write

from .models import (
    STATEMENT_MARKINGS,
    PublicStatement,
    ReviewDecision,
    StatementReview,
    StatementStatus,
    StatementVersion,
)

HEADLINE_MAX = 200
BODY_MAX = 10_000


class ApprovalsMissing(Conflict):
    """Publishing refused: some named partners have not approved the current version."""

    def __init__(self, missing: list[Agency]) -> None:
        names = ", ".join(agency.short_name for agency in missing)
        super().__init__(f"Not yet approved by {names}: every named partner must approve first.")
        self.missing = missing


@dataclass(frozen=True)
class AgencyApproval:
    """Where one named partner stands on the current version."""

    agency: Agency
    decision: str | None  # ReviewDecision value, or None: no answer yet
    review: StatementReview | None

    @property
    def approved(self) -> bool:
        return self.decision == ReviewDecision.APPROVED


# --- reads ----------------------------------------------------------------------------------------


def statement_approvals(statement: PublicStatement) -> list[AgencyApproval]:
    """Each named partner's latest answer to the current version, by agency short name.

    Uses prefetched ``approver_agencies`` and ``reviews`` when there are such prefetches.
    """
    latest: dict[int, StatementReview] = {}
    for review in sorted(statement.reviews.all(), key=lambda r: (r.created_at, r.pk)):
        if review.version_id == statement.current_version_id:
            latest[review.agency_id] = review
    approvals = []
    for agency in sorted(statement.approver_agencies.all(), key=lambda a: a.short_name):
        answer = latest.get(agency.pk)
        approvals.append(AgencyApproval(agency, answer.decision if answer else None, answer))
    return approvals


def statements_prefetched(queryset: QuerySet) -> QuerySet:
    """Statements with what their pages and API show: versions, reviews, named partners."""
    return queryset.select_related("current_version", "owner_agency").prefetch_related(
        "approver_agencies",
        "versions",
        Prefetch("reviews", queryset=StatementReview.objects.select_related("agency", "version")),
    )


def statement_missing(statement: PublicStatement) -> list[Agency]:
    return [a.agency for a in statement_approvals(statement) if not a.approved]


def statement_current(incident_id: int, *, at=None) -> PublicStatement | None:
    """The incident's published line at instant ``at`` (default: now), or None.

    For a past instant: published by then and not yet superseded then.
    """
    qs = PublicStatement.objects.filter(incident_id=incident_id, published_at__isnull=False)
    if at is None:
        qs = qs.filter(status=StatementStatus.PUBLISHED)
    else:
        qs = qs.filter(published_at__lte=at).exclude(superseded_at__lte=at)
    return qs.select_related("current_version", "owner_agency").order_by("-published_at").first()


# --- writes ---------------------------------------------------------------------------------------


def _wording_check(errors: dict[str, list[str]], headline: str, body: str) -> None:
    text_required(errors, headline=headline, body=body)
    if len((headline or "").strip()) > HEADLINE_MAX:
        errors.setdefault("headline", []).append(f"At most {HEADLINE_MAX} characters.")
    if len(body or "") > BODY_MAX:
        errors.setdefault("body", []).append(f"At most {BODY_MAX} characters.")


def _payload(statement: PublicStatement, summary: str, **extra: Any) -> dict[str, Any]:
    version = statement.current_version
    return {
        "id": statement.pk,
        "status": statement.status,
        "version": version.number if version else None,
        "headline": version.headline if version else "",
        "owner_agency": statement.owner_agency_id,
        "summary": summary,
        **extra,
    }


def _lock(*, statement_id: int, user: User) -> tuple[Incident, PublicStatement]:
    """Lock the statement's incident (which the user must be able to write to), then the
    statement. A statement the user may not see raises ``DoesNotExist`` (404)."""
    incident_id = (
        PublicStatement.objects.visible_to(user)
        .values_list("incident_id", flat=True)
        .get(pk=statement_id)
    )
    incident = incident_lock_for_write(
        incident_id=incident_id, user=user, capability=Capability.STATEMENT_WRITE
    )
    statement = (
        PublicStatement.objects.select_for_update(of=("self",))
        .select_related("current_version", "owner_agency")
        .get(pk=statement_id)
    )
    return incident, statement


def _draft_require(statement: PublicStatement, doing: str) -> None:
    if statement.status != StatementStatus.DRAFT:
        raise Conflict(
            f"The statement is {statement.get_status_display().lower()}; only a draft can be "
            f"{doing}."
        )


def _owner_require(statement: PublicStatement, user: User, doing: str) -> None:
    if user.agency_id != statement.owner_agency_id:
        raise PermissionDenied(
            f"Only communications leads of {statement.owner_agency.short_name}, which owns the "
            f"statement, may {doing} it."
        )


def statement_draft(
    *,
    incident_id: int,
    user: User,
    headline: str,
    body: str,
    approver_agencies: Sequence[Agency] = (),
    marking: str = Marking.AMBER,
) -> PublicStatement:
    """Draft a statement owned by the user's agency, naming the partners who must approve it."""
    errors: dict[str, list[str]] = {}
    _wording_check(errors, headline, body)
    errors_raise(errors)
    marking_validate(marking)
    if marking not in STATEMENT_MARKINGS:
        raise ValidationError(
            {
                "marking": "A statement's draft is read by the partners who approve it: use CLEAR, "
                "GREEN or AMBER."
            }
        )
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.STATEMENT_WRITE
        )
        owner = recording_agency(user)
        participating = set(incident.participating_agencies.values_list("pk", flat=True))
        approvers = {agency.pk: agency for agency in approver_agencies}
        if owner.pk in approvers:
            raise ValidationError(
                {
                    "approver_agencies": f"{owner.short_name} owns the statement and approves "
                    "it by publishing; name partner agencies only."
                }
            )
        outsiders = sorted(a.short_name for a in approvers.values() if a.pk not in participating)
        if outsiders:
            raise ValidationError(
                {
                    "approver_agencies": "Only agencies taking part in the incident can be named "
                    f"(not {', '.join(outsiders)})."
                }
            )
        now = timezone.now()
        statement = PublicStatement.objects.create(
            incident=incident,
            owner_agency=owner,
            author=user,
            marking=marking,
            created_at=now,
            updated_at=now,
        )
        statement.approver_agencies.set(list(approvers.values()))
        version = StatementVersion.objects.create(
            statement=statement,
            number=1,
            headline=headline.strip(),
            body=body.strip(),
            created_by=user,
            created_at=now,
        )
        statement.current_version = version
        statement.save(update_fields=["current_version"])
        names = ", ".join(sorted(a.short_name for a in approvers.values())) or "nobody"
        event_append(
            incident=incident,
            kind="statement.drafted",
            payload=_payload(
                statement,
                f"Statement drafted by {owner.short_name} (approval needed from {names}): "
                f"{version.headline}",
                approver_agencies=sorted(approvers),
            ),
            actor=user,
            subject=statement,
            marking=statement.marking,
        )
    return statement


def statement_revise(*, statement_id: int, user: User, headline: str, body: str) -> PublicStatement:
    """Add a new version of a draft's wording. Every named partner must approve it afresh."""
    errors: dict[str, list[str]] = {}
    _wording_check(errors, headline, body)
    errors_raise(errors)
    with transaction.atomic():
        incident, statement = _lock(statement_id=statement_id, user=user)
        _owner_require(statement, user, "revise")
        _draft_require(statement, "revised")
        current = statement.current_version
        assert current is not None
        if current.headline == headline.strip() and current.body == body.strip():
            raise ValidationError(
                {"body": "Nothing changed: the wording is the current version's."}
            )
        now = timezone.now()
        version = StatementVersion.objects.create(
            statement=statement,
            number=current.number + 1,
            headline=headline.strip(),
            body=body.strip(),
            created_by=user,
            created_at=now,
        )
        statement.current_version = version
        statement.updated_at = now
        statement.save(update_fields=["current_version", "updated_at"])
        event_append(
            incident=incident,
            kind="statement.revised",
            payload=_payload(
                statement,
                f"Statement revised to version {version.number}; approvals start again: "
                f"{version.headline}",
            ),
            actor=user,
            subject=statement,
            marking=statement.marking,
        )
    return statement


def _review(
    *, statement_id: int, user: User, decision: str, comment: str, kind: str
) -> StatementReview:
    comment = (comment or "").strip()
    if decision == ReviewDecision.CHANGES_REQUESTED and not comment:
        raise ValidationError({"comment": "Say which changes your agency needs."})
    with transaction.atomic():
        incident, statement = _lock(statement_id=statement_id, user=user)
        approvers = set(statement.approver_agencies.values_list("pk", flat=True))
        if user.agency_id not in approvers:
            raise PermissionDenied("Your agency is not named to approve this statement.")
        _draft_require(statement, "approved or sent back")
        assert user.agency is not None and statement.current_version is not None
        review = StatementReview.objects.create(
            statement=statement,
            version=statement.current_version,
            agency=user.agency,
            reviewer=user,
            decision=decision,
            comment=comment,
            created_at=timezone.now(),
        )
        verb = "approves" if decision == ReviewDecision.APPROVED else "requests changes to"
        event_append(
            incident=incident,
            kind=kind,
            payload=_payload(
                statement,
                f"{user.agency.short_name} {verb} statement version "
                f"{statement.current_version.number}",
                agency=user.agency_id,
                decision=decision,
            ),
            actor=user,
            subject=statement,
            marking=statement.marking,
        )
    return review


def statement_approve(*, statement_id: int, user: User, comment: str = "") -> StatementReview:
    """Approve the current version on behalf of the user's (named) agency."""
    return _review(
        statement_id=statement_id,
        user=user,
        decision=ReviewDecision.APPROVED,
        comment=comment,
        kind="statement.approved",
    )


def statement_request_changes(*, statement_id: int, user: User, comment: str) -> StatementReview:
    """Send the current version back, saying which changes the user's agency needs."""
    return _review(
        statement_id=statement_id,
        user=user,
        decision=ReviewDecision.CHANGES_REQUESTED,
        comment=comment,
        kind="statement.changes_requested",
    )


def statement_publish(*, statement_id: int, user: User) -> PublicStatement:
    """Publish an approved draft as the incident's public line (CLEAR), superseding the line
    published before it. Refused (409, naming them) while a named partner has not approved."""
    with transaction.atomic():
        incident, statement = _lock(statement_id=statement_id, user=user)
        _owner_require(statement, user, "publish")
        _draft_require(statement, "published")
        missing = statement_missing(statement)
        if missing:
            raise ApprovalsMissing(missing)
        now = timezone.now()
        previous = (
            PublicStatement.objects.select_for_update()
            .filter(incident=incident, status=StatementStatus.PUBLISHED)
            .first()
        )
        if previous is not None:
            # Superseded first: the partial unique index allows one published row at a time.
            previous.status = StatementStatus.SUPERSEDED
            previous.superseded_at = now
            previous.superseded_by = statement
            previous.updated_at = now
            previous.save(update_fields=["status", "superseded_at", "superseded_by", "updated_at"])
            event_append(
                incident=incident,
                kind="statement.superseded",
                payload=_payload(
                    previous, "The previous public line is superseded", superseded_by=statement.pk
                ),
                actor=user,
                subject=previous,
                marking=previous.marking,
            )
        statement.status = StatementStatus.PUBLISHED
        statement.marking = Marking.CLEAR
        statement.published_at = now
        statement.published_by = user
        statement.updated_at = now
        statement.save(
            update_fields=["status", "marking", "published_at", "published_by", "updated_at"]
        )
        assert statement.current_version is not None
        event_append(
            incident=incident,
            kind="statement.published",
            payload=_payload(
                statement,
                f"Public line published: {statement.current_version.headline}",
                supersedes=previous.pk if previous else None,
            ),
            actor=user,
            subject=statement,
            marking=Marking.CLEAR,
        )
    return statement


def statement_withdraw(*, statement_id: int, user: User) -> PublicStatement:
    """Withdraw a draft that will not be published (a published line is replaced instead)."""
    with transaction.atomic():
        incident, statement = _lock(statement_id=statement_id, user=user)
        _owner_require(statement, user, "withdraw")
        _draft_require(statement, "withdrawn")
        now = timezone.now()
        statement.status = StatementStatus.WITHDRAWN
        statement.withdrawn_at = now
        statement.updated_at = now
        statement.save(update_fields=["status", "withdrawn_at", "updated_at"])
        event_append(
            incident=incident,
            kind="statement.withdrawn",
            payload=_payload(statement, "Draft statement withdrawn"),
            actor=user,
            subject=statement,
            marking=statement.marking,
        )
    return statement
