"""Writes to the joint decision log, actions, and the city directory (agencies and people)."""

import itertools
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from ctpn.errors import Conflict
from incidents.events import event_append
from incidents.services import (
    audience_for,
    incident_lock_for_write,
    marking_change_record,
    marking_change_require,
    recipients_store,
)

from .audit import audit_record
from .markings import DEFAULT_MARKING, marking_validate
from .meetings import meeting_link_check
from .models import (
    DECISION_HASHED_FIELDS,
    GENESIS_HASH,
    Action,
    ActionStatus,
    Agency,
    AgencyType,
    City,
    Decision,
    DecisionMarkingChange,
    DecisionPosition,
    Meeting,
    Recipients,
    RoleAssignment,
    Stance,
    User,
    decision_hash,
)
from .roles import Capability, Role
from .serializers import ActionSerializer, DecisionPositionSerializer, DecisionSerializer
from .validation import errors_raise, instant_check, recording_agency, require, text_required


def _options_validate(errors: dict[str, list[str]], options: Any) -> list[dict[str, Any]]:
    if not isinstance(options, list) or not options:
        errors.setdefault("options", []).append("List at least one option considered.")
        return []
    cleaned = []
    for index, option in enumerate(options):
        if not isinstance(option, dict):
            errors.setdefault("options", []).append(f"Option {index + 1} must be an object.")
            continue
        text = str(option.get("option") or "").strip()
        reason = str(option.get("reason") or "").strip()
        chosen = option.get("chosen", False)
        if not text:
            errors.setdefault("options", []).append(f"Option {index + 1} needs its text.")
        if not reason:
            errors.setdefault("options", []).append(
                f"Option {index + 1} needs the reason it was chosen or rejected."
            )
        if not isinstance(chosen, bool):
            errors.setdefault("options", []).append(f"Option {index + 1}: chosen is true/false.")
        cleaned.append({"option": text, "chosen": bool(chosen), "reason": reason})
    return cleaned


def decision_record(
    *,
    incident_id: int,
    author: User,
    information: str,
    threat_assessment: str,
    working_strategy: str,
    powers_policies: str,
    options: list[dict[str, Any]],
    decision: str,
    rationale: str,
    decided_at: datetime,
    late_entry_reason: str = "",
    review_by: datetime | None = None,
    agreed_by: Sequence[Agency] = (),
    dissents: Sequence[tuple[Agency, str]] = (),
    marking: str = DEFAULT_MARKING,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
    supersedes: Decision | None = None,
    meeting: Meeting | None = None,
) -> Decision:
    """Append a joint decision to the incident's log, chained to the entry before it.

    ``meeting``: the meeting of the incident's strategic cell in which it was taken, if any.
    """
    errors: dict[str, list[str]] = {}
    text_required(
        errors,
        information=information,
        threat_assessment=threat_assessment,
        working_strategy=working_strategy,
        powers_policies=powers_policies,
        decision=decision,
        rationale=rationale,
    )
    cleaned_options = _options_validate(errors, options)
    instant_check(errors, "decided_at", decided_at, future=False)
    instant_check(errors, "review_by", review_by, future=True)
    recorded_at = timezone.now()
    late_after = timedelta(minutes=settings.DECISION_LATE_ENTRY_MINUTES)
    if decided_at and recorded_at - decided_at > late_after and not late_entry_reason.strip():
        errors.setdefault("late_entry_reason", []).append(
            f"This decision is recorded more than {settings.DECISION_LATE_ENTRY_MINUTES} minutes "
            "after it was taken; say why."
        )
    if review_by is not None and decided_at and review_by <= decided_at:
        errors.setdefault("review_by", []).append("Must be after the decision was taken.")
    positions: dict[int, tuple[int, str, str]] = {}
    for agency in agreed_by:
        positions[agency.pk] = (agency.pk, Stance.AGREE, "")
    for agency, statement in dissents:
        if agency.pk in positions:
            errors.setdefault("dissents", []).append(f"{agency} cannot both agree and dissent.")
        if not (statement or "").strip():
            errors.setdefault("dissents", []).append(f"Say what {agency} dissents from.")
        positions[agency.pk] = (agency.pk, Stance.DISSENT, (statement or "").strip())
    errors_raise(errors)
    marking_validate(marking)

    with transaction.atomic():
        # The incident row lock makes appends to one log strictly one after another, so the chain
        # stays linear however many liaisons record at once.
        incident = incident_lock_for_write(
            incident_id=incident_id, user=author, capability=Capability.LOG_WRITE
        )
        participating = set(incident.participating_agencies.values_list("pk", flat=True))
        outsiders = [pk for pk in positions if pk not in participating]
        if outsiders:
            field = "agreed_by" if positions[outsiders[0]][1] == Stance.AGREE else "dissents"
            raise ValidationError({field: ["Only participating agencies can agree or dissent."]})
        audience = audience_for(
            incident,
            author=author,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        if supersedes is not None:
            if supersedes.incident_id != incident.pk:
                raise ValidationError(
                    {"supersedes": ["That decision belongs to another incident."]}
                )
            later = Decision.objects.filter(supersedes=supersedes).first()
            if later is not None:
                raise Conflict(
                    f"{supersedes} is already superseded by {later}; correct {later} instead.",
                    allowed=[str(later.pk)],
                )
        meeting_link_check(incident=incident, user=author, meeting=meeting)
        last = incident.decisions.order_by("-sequence").first()
        entry = Decision(
            incident=incident,
            sequence=last.sequence + 1 if last else 1,
            information=information.strip(),
            threat_assessment=threat_assessment.strip(),
            working_strategy=working_strategy.strip(),
            powers_policies=powers_policies.strip(),
            options=cleaned_options,
            decision=decision.strip(),
            rationale=rationale.strip(),
            decided_at=decided_at,
            recorded_at=recorded_at,
            late_entry_reason=late_entry_reason.strip(),
            review_by=review_by,
            author=author,
            author_agency=recording_agency(author),
            supersedes=supersedes,
            marking=marking,
            meeting=meeting,
            prev_hash=last.entry_hash if last else GENESIS_HASH,
        )
        # The recipient lists are part of the hashed content: who may read an entry is as
        # much part of the record as what it says.
        entry.entry_hash = entry.compute_hash(
            list(positions.values()), (audience.agencies, audience.people)
        )
        entry.save()
        DecisionPosition.objects.bulk_create(
            DecisionPosition(decision=entry, agency_id=pk, stance=stance, statement=statement)
            for pk, stance, statement in positions.values()
        )
        recipients_store(entry, audience)
        event_append(
            incident=incident,
            kind="decision.recorded",
            payload=dict(DecisionSerializer(entry).data),
            actor=author,
            subject=entry,
            audience=audience,
        )
    return entry


def decision_supersede(*, original: Decision, author: User, **fields: Any) -> Decision:
    """Record a correction of ``original``: a new entry; the original stays, marked superseded."""
    return decision_record(
        incident_id=original.incident_id, author=author, supersedes=original, **fields
    )


def decision_position_record(
    *, decision: Decision, user: User, position: str, reason: str = ""
) -> DecisionPosition:
    """Record, after the fact, that the user's agency agrees with or dissents from a decision.

    The decision's own hash stays as it was; the position is hashed on its own and chained to the
    decision's hash (or to the previous later position of the same decision), so the log stays
    append-only and ``decision_log_verify`` sees any edit or removal. One position per agency.
    """
    errors: dict[str, list[str]] = {}
    if position not in Stance.values:
        errors.setdefault("position", []).append(
            f"Unknown position {position!r}; use one of {', '.join(Stance.values)}."
        )
    if position == Stance.DISSENT and not (reason or "").strip():
        errors.setdefault("reason", []).append("Say why your agency dissents.")
    errors_raise(errors)
    agency = recording_agency(user)
    with transaction.atomic():
        # Incident row first, as every writer of the log does: later positions of one decision
        # are then appended strictly one after another and their chain stays linear.
        incident = incident_lock_for_write(
            incident_id=decision.incident_id, user=user, capability=Capability.LOG_WRITE
        )
        entry = (
            Decision.objects.visible_to(user)
            .filter(incident=incident)
            .select_related("superseded_by")
            .get(pk=decision.pk)
        )
        if not incident.participating_agencies.filter(pk=agency.pk).exists():
            raise ValidationError({"agency": ["Only participating agencies can agree or dissent."]})
        existing = entry.positions.filter(agency=agency).first()
        if existing is not None:
            raise Conflict(
                f"{agency} has already recorded that it {existing.get_stance_display().lower()} "
                f"with {entry}; a position is recorded once and never changed."
            )
        later = getattr(entry, "superseded_by", None)
        if later is not None:
            raise Conflict(
                f"{entry} has been superseded by {later}; take a position on {later} instead.",
                allowed=[str(later.pk)],
            )
        # In insertion order: ids are drawn under the incident lock, so they follow the chain
        # (a clock stepping back would not).
        previous = entry.positions.exclude(entry_hash="").order_by("-pk").first()
        record = DecisionPosition(
            decision=entry,
            agency=agency,
            stance=position,
            statement=(reason or "").strip(),
            recorded_by=user,
            recorded_at=timezone.now(),
            prev_hash=previous.entry_hash if previous else entry.entry_hash,
        )
        record.entry_hash = record.compute_hash()
        try:
            with transaction.atomic():
                record.save()
        except IntegrityError as exc:  # the incident lock makes this unreachable short of a bug
            raise Conflict(f"{agency} has already recorded a position on {entry}.") from exc
        event_append(
            incident=incident,
            kind="decision.position_recorded",
            payload={
                "decision": entry.pk,
                "label": entry.label,
                **DecisionPositionSerializer(record).data,
            },
            actor=user,
            subject=entry,
            audience=entry.current_audience(),
        )
    return record


@dataclass(frozen=True)
class ChainReport:
    """The result of checking an incident's decision log."""

    intact: bool
    entries: int
    broken_at: int | None = None  # sequence number of the first entry that fails
    broken_id: int | None = None
    reason: str = ""
    last_hash: str = GENESIS_HASH


# How many entries are read per round trip when a log is verified.
VERIFY_CHUNK = 5000

# id, prev_hash, entry_hash, then what the hash covers: one row of the log as verified.
_VERIFY_COLUMNS = ("id", "prev_hash", "entry_hash", *DECISION_HASHED_FIELDS)
_SEQUENCE = _VERIFY_COLUMNS.index("sequence")


@dataclass
class _RecordedBeside:
    """What an incident's decisions have beside their own row, read in bulk and grouped by
    decision id: positions recorded with them, recipient lists, positions recorded later and
    marking changes (each in insertion order, with the recipient lists of every change)."""

    positions: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    agencies: dict[int, list[int]] = field(default_factory=dict)
    people: dict[int, list[int]] = field(default_factory=dict)
    later: dict[int, list[DecisionPosition]] = field(default_factory=dict)
    changes: dict[int, list[DecisionMarkingChange]] = field(default_factory=dict)
    change_agencies: dict[int, list[int]] = field(default_factory=dict)
    change_people: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def read(cls, incident_id: int) -> "_RecordedBeside":
        beside = cls()
        of_incident = {"decision__incident_id": incident_id}
        for position in DecisionPosition.objects.filter(**of_incident).order_by("pk"):
            if position.entry_hash:
                beside.later.setdefault(position.decision_id, []).append(position)
            else:
                beside.positions.setdefault(position.decision_id, []).append(
                    (position.agency_id, position.stance, position.statement)
                )
        lists = (
            (Decision.recipient_agencies.through, "agency_id", beside.agencies),
            (Decision.recipient_people.through, "user_id", beside.people),
        )
        for through, column, into in lists:
            for decision_id, member in through.objects.filter(**of_incident).values_list(
                "decision_id", column
            ):
                into.setdefault(decision_id, []).append(member)
        changes = DecisionMarkingChange.objects.filter(**of_incident).order_by("pk")
        for change in changes:
            beside.changes.setdefault(change.decision_id, []).append(change)
        if beside.changes:
            of_changes = {"decisionmarkingchange__decision__incident_id": incident_id}
            change_lists = (
                (DecisionMarkingChange.recipient_agencies.through, "agency_id", "change_agencies"),
                (DecisionMarkingChange.recipient_people.through, "user_id", "change_people"),
            )
            for change_through, column, name in change_lists:
                into = getattr(beside, name)
                for change_id, member in change_through.objects.filter(**of_changes).values_list(
                    "decisionmarkingchange_id", column
                ):
                    into.setdefault(change_id, []).append(member)
        return beside

    def decision_ids(self) -> set[int]:
        return {*self.positions, *self.agencies, *self.people, *self.later, *self.changes}


def _log_rows(
    incident_id: int,
) -> tuple[Generator[tuple[Any, ...], None, None], list[tuple[Any, ...]], _RecordedBeside]:
    """The incident's entries as rows of ``_VERIFY_COLUMNS``, in order; the positions and
    marking changes its event stream announced, as (decision id, kind, payload); and what was
    recorded beside the entries.

    The rows come through a server-side cursor, ``VERIFY_CHUNK`` at a time. The cursor is opened
    first, then the announcements are read, then what is beside the entries: each read sees at
    least what the one before saw, so whatever was recorded together with an entry the cursor
    returns, or with an announcement, is there when checked, however busy the incident.
    """
    from incidents.models import IncidentEvent  # the event stream records what was announced

    # A generator, closing its cursor when closed.
    rows = cast(
        Generator[tuple[Any, ...], None, None],
        Decision.objects.filter(incident_id=incident_id)
        .order_by("sequence")
        .values_list(*_VERIFY_COLUMNS)
        .iterator(chunk_size=VERIFY_CHUNK),
    )
    first = list(itertools.islice(rows, VERIFY_CHUNK))  # opens the cursor
    announced = list(
        IncidentEvent.objects.filter(
            incident_id=incident_id, kind__in=["decision.position_recorded", MARKING_CHANGED]
        ).values_list("subject_id", "kind", "payload")
    )
    beside = _RecordedBeside.read(incident_id)
    return _rows_then(first, rows), announced, beside


def _rows_then(
    first: list[tuple[Any, ...]], rows: Generator[tuple[Any, ...], None, None]
) -> Generator[tuple[Any, ...], None, None]:
    """The rows of ``first`` then of ``rows``, whose cursor is closed however the reading ends.

    Not fetched ahead by a second thread: in one process pinned to one CPU, as the benchmark
    runs, that cost more CPU time (switching between the threads) than it saved in waiting."""
    try:
        yield from first
        yield from rows
    finally:
        rows.close()


def decision_log_verify(*, incident_id: int) -> ChainReport:
    """Recompute every hash of an incident's log and report the first entry that does not fit.

    Covers the positions agencies recorded later: each must fit its own chain off its decision,
    and every such position the incident's event stream announced must still be there (which
    also catches the removal of the newest one, that no chain link would reveal). Entries are
    hashed from their stored rows by ``decision_hash``, the definition the model records with;
    what is recorded beside them is read in bulk, never one query per entry.
    """
    # In one transaction: the log's cursor then streams, the database reading the next rows as
    # they are fetched, rather than copying the whole log aside before the first row (as a cursor
    # held beyond the transaction must).
    with transaction.atomic():
        return _log_check(incident_id)


def _log_check(incident_id: int) -> ChainReport:
    expected_prev = GENESIS_HASH
    count = 0
    later_hashes: set[str] = set()

    def broken(sequence: int, pk: int, number: int, problem: str) -> ChainReport:
        return ChainReport(
            intact=False,
            entries=number,
            broken_at=sequence,
            broken_id=pk,
            reason=problem,
            last_hash=expected_prev,
        )

    rows, announced, beside = _log_rows(incident_id)
    with_more = beside.decision_ids()
    no_recipients: Recipients = ((), ())
    first_hashed = len(("id", "prev_hash", "entry_hash"))
    # Closed however the loop ends, so that the log's cursor does not outlive the check.
    with closing(rows):
        for count, row in enumerate(rows, start=1):
            pk, prev_hash, entry_hash = row[0], row[1], row[2]
            sequence = row[_SEQUENCE]
            more = pk in with_more
            positions: Sequence[tuple[int, str, str]]
            recipients: Recipients
            if more:
                positions = beside.positions.get(pk, ())
                recipients = (beside.agencies.get(pk, ()), beside.people.get(pk, ()))
            else:
                positions, recipients = (), no_recipients
            problem = ""
            if sequence != count:
                problem = f"entry {count} is missing: the next entry is numbered {sequence}"
            elif prev_hash != expected_prev:
                problem = "its link to the previous entry does not match that entry's hash"
            elif decision_hash(prev_hash, row[first_hashed:], positions, recipients) != entry_hash:
                problem = "its content no longer matches its hash: it was changed after recording"
            elif more:
                problem = _later_positions_check(
                    entry_hash, beside.later.get(pk, []), later_hashes
                ) or _marking_changes_check(entry_hash, beside, pk, later_hashes)
            if problem:
                return broken(sequence, pk, count, problem)
            expected_prev = entry_hash

    for decision_id, kind, payload in announced:
        expected_hash = payload.get("change_hash") if kind == MARKING_CHANGED else None
        if (expected_hash or payload.get("entry_hash")) in later_hashes:
            continue
        missing_from = Decision.objects.filter(pk=decision_id or 0).first()
        # An entry appended after the log's cursor was opened is not part of this check.
        if missing_from is not None and missing_from.sequence <= count:
            number, pk = count, missing_from.pk
            if kind == MARKING_CHANGED:
                return broken(
                    missing_from.sequence, pk, number, "a change of its marking is missing"
                )
            agency_name = payload.get("agency_name", "an agency")
            return broken(
                missing_from.sequence,
                pk,
                number,
                f"the position {agency_name} recorded later is missing",
            )
    return ChainReport(intact=True, entries=count, last_hash=expected_prev)


def _later_positions_check(
    decision_hash: str, later: list[DecisionPosition], seen: set[str]
) -> str:
    """What is wrong with the chain of positions recorded after a decision, or ''."""
    expected = decision_hash
    for position in later:  # in insertion order
        seen.add(position.entry_hash)
        if position.prev_hash != expected:
            return "a position recorded later is not linked to the hash before it"
        if position.compute_hash() != position.entry_hash:
            return "a position recorded later no longer matches its hash: it was changed"
        expected = position.entry_hash
    return ""


def _marking_changes_check(
    decision_hash: str, beside: _RecordedBeside, decision_id: int, seen: set[str]
) -> str:
    """What is wrong with the chain of marking changes of a decision, or ''."""
    expected = decision_hash
    for change in beside.changes.get(decision_id, []):  # in insertion order
        seen.add(change.entry_hash)
        if change.prev_hash != expected:
            return "a change of its marking is not linked to the hash before it"
        recipients = (
            beside.change_agencies.get(change.pk, ()),
            beside.change_people.get(change.pk, ()),
        )
        if change.compute_hash(recipients) != change.entry_hash:
            return "a change of its marking no longer matches its hash: it was changed"
        expected = change.entry_hash
    return ""


MARKING_CHANGED = "decision.marking_changed"


def decision_marking_change(
    *,
    decision_id: int,
    user: User,
    marking: str,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
    reason: str = "",
) -> DecisionMarkingChange:
    """Raise or lower a decision's marking (the author's agency only).

    The entry itself never changes: a hash-chained marking change is appended, and the latest
    change is the marking in force. Only someone who may read the decision may re-mark it.
    """
    marking_validate(marking)
    with transaction.atomic():
        readable = Decision.objects.visible_to(user)
        incident_id = readable.values_list("incident_id", flat=True).get(pk=decision_id)
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        entry = (
            Decision.objects.select_related("author")
            .prefetch_related(
                "recipient_agencies",
                "recipient_people",
                "marking_changes__recipient_agencies",
                "marking_changes__recipient_people",
            )
            .get(pk=decision_id)
        )
        marking_change_require(user, entry.author_agency_id)
        before = entry.current_audience()
        after = audience_for(
            incident,
            author=entry.author,
            author_agency_id=entry.author_agency_id,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
            also=[user],
        )
        # Under the incident lock, so a decision's changes are appended strictly one by one.
        previous = entry.marking_changes.order_by("-pk").first()
        change = DecisionMarkingChange(
            decision=entry,
            marking=marking,
            reason=(reason or "").strip(),
            changed_by=user,
            changed_at=timezone.now(),
            prev_hash=previous.entry_hash if previous else entry.entry_hash,
        )
        change.entry_hash = change.compute_hash((after.agencies, after.people))
        change.save()
        change.recipient_agencies.set(after.agencies)
        change.recipient_people.set(after.people)
        entry = Decision.objects.prefetch_related(
            "positions__agency",
            "recipient_agencies",
            "recipient_people",
            "marking_changes__recipient_agencies",
            "marking_changes__recipient_people",
        ).get(pk=decision_id)
        marking_change_record(
            incident=incident,
            user=user,
            item=entry,
            kind=MARKING_CHANGED,
            payload={**DecisionSerializer(entry).data, "change_hash": change.entry_hash},
            before=before,
            after=after,
        )
    return change


def action_marking_change(
    *,
    action_id: int,
    user: User,
    marking: str,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> Action:
    """Raise or lower an action's marking (the agency of whoever created it)."""
    marking_validate(marking)
    with transaction.atomic():
        incident_id = (
            Action.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=action_id)
        )
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        action = Action.objects.select_for_update().select_related("created_by").get(pk=action_id)
        author_agency_id = action.created_by.agency_id
        marking_change_require(user, author_agency_id)
        before = action.current_audience()
        after = audience_for(
            incident,
            author=action.created_by,
            author_agency_id=author_agency_id,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
            also=[user],
        )
        action.marking = marking
        action.updated_at = timezone.now()
        action.save(update_fields=["marking", "updated_at"])
        recipients_store(action, after)
        marking_change_record(
            incident=incident,
            user=user,
            item=action,
            kind="action.marking_changed",
            payload=dict(ActionSerializer(action).data),
            before=before,
            after=after,
        )
    return action


def action_create(
    *,
    incident_id: int,
    user: User,
    title: str,
    owner_agency: Agency,
    description: str = "",
    owner: User | None = None,
    due_at: datetime | None = None,
    decision: Decision | None = None,
    meeting: Meeting | None = None,
    marking: str = DEFAULT_MARKING,
    recipient_agencies: Sequence[Agency] = (),
    recipient_people: Sequence[User] = (),
) -> Action:
    """Give an agency (and optionally a person) something to do on an incident."""
    errors: dict[str, list[str]] = {}
    text_required(errors, title=title)
    instant_check(errors, "due_at", due_at, future=True)
    if owner is not None and owner.agency_id != owner_agency.pk:
        errors.setdefault("owner", []).append("Must belong to the owner agency.")
    errors_raise(errors)
    marking_validate(marking)
    with transaction.atomic():
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        if not incident.participating_agencies.filter(pk=owner_agency.pk).exists():
            raise ValidationError({"owner_agency": ["Must be a participating agency."]})
        if decision is not None and decision.incident_id != incident.pk:
            raise ValidationError({"decision": ["That decision belongs to another incident."]})
        meeting_link_check(incident=incident, user=user, meeting=meeting)
        audience = audience_for(
            incident,
            author=user,
            marking=marking,
            recipient_agencies=recipient_agencies,
            recipient_people=recipient_people,
        )
        now = timezone.now()
        action = Action.objects.create(
            incident=incident,
            title=title.strip(),
            description=description.strip(),
            owner_agency=owner_agency,
            owner=owner,
            due_at=due_at,
            decision=decision,
            meeting=meeting,
            marking=marking,
            created_by=user,
            created_at=now,
            updated_at=now,
        )
        recipients_store(action, audience)
        event_append(
            incident=incident,
            kind="action.created",
            payload=dict(ActionSerializer(action).data),
            actor=user,
            subject=action,
            audience=audience,
        )
    return action


_ACTION_FIELDS = {"status", "title", "description", "owner", "owner_agency", "due_at", "meeting"}


def action_update(*, action_id: int, user: User, **changes: Any) -> Action:
    """Change an action's status, owner, due time or wording."""
    unknown = set(changes) - _ACTION_FIELDS
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    errors: dict[str, list[str]] = {}
    if "status" in changes and changes["status"] not in ActionStatus.values:
        errors.setdefault("status", []).append(f"Unknown status {changes['status']!r}.")
    if "title" in changes:
        text_required(errors, title=changes["title"])
    instant_check(errors, "due_at", changes.get("due_at"), future=True)
    errors_raise(errors)
    with transaction.atomic():
        incident_id = (
            Action.objects.visible_to(user).values_list("incident_id", flat=True).get(pk=action_id)
        )
        incident = incident_lock_for_write(
            incident_id=incident_id, user=user, capability=Capability.LOG_WRITE
        )
        action = Action.objects.select_for_update().get(pk=action_id)
        owner_agency = changes.get("owner_agency", action.owner_agency)
        owner = changes.get("owner", action.owner)
        if (
            "owner_agency" in changes
            and not incident.participating_agencies.filter(pk=owner_agency.pk).exists()
        ):
            raise ValidationError({"owner_agency": ["Must be a participating agency."]})
        if owner is not None and owner.agency_id != owner_agency.pk:
            raise ValidationError({"owner": ["Must belong to the owner agency."]})
        if "meeting" in changes:
            meeting_link_check(incident=incident, user=user, meeting=changes["meeting"])
        previous_status = action.status
        for name, value in changes.items():
            setattr(action, name, value.strip() if isinstance(value, str) else value)
        now = timezone.now()
        action.updated_at = now
        if action.status in (ActionStatus.DONE, ActionStatus.CANCELLED):
            action.completed_at = action.completed_at or now
        else:
            action.completed_at = None
        action.save()
        event_append(
            incident=incident,
            kind="action.updated",
            payload={**ActionSerializer(action).data, "previous_status": previous_status},
            actor=user,
            subject=action,
            audience=action.current_audience(),
        )
    return action


def agency_create(*, user: User, city: City, name: str, short_name: str, type: str) -> Agency:
    """Add an agency to a city's directory (administrators of that city)."""
    require(user, Capability.DIRECTORY_MANAGE)
    errors: dict[str, list[str]] = {}
    text_required(errors, name=name, short_name=short_name)
    if type not in AgencyType.values:
        errors.setdefault("type", []).append(f"Unknown agency type {type!r}.")
    if not user.is_superuser and city.pk != user.city_id:
        errors.setdefault("city", []).append("You can only add agencies to your own city.")
    if Agency.objects.filter(city=city, name__iexact=name.strip()).exists():
        errors.setdefault("name", []).append("This city already has an agency of that name.")
    if Agency.objects.filter(city=city, short_name__iexact=short_name.strip()).exists():
        errors.setdefault("short_name", []).append("This city already has that short name.")
    errors_raise(errors)
    try:
        with transaction.atomic():
            return Agency.objects.create(
                city=city, name=name.strip(), short_name=short_name.strip(), type=type
            )
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise ValidationError({"name": ["This city already has an agency of that name."]}) from exc


def _roles_validate(errors: dict[str, list[str]], roles: list[str]) -> list[str]:
    unknown = [role for role in roles if role not in Role.values]
    if unknown:
        errors.setdefault("roles", []).append(f"Unknown roles: {', '.join(unknown)}.")
    return sorted(set(roles) - set(unknown))


def user_create(
    *,
    user: User,
    username: str,
    agency: Agency,
    roles: list[str],
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    phone: str = "",
    password: str | None = None,
) -> User:
    """Add a person to an agency of the administrator's city, with their roles."""
    require(user, Capability.DIRECTORY_MANAGE)
    errors: dict[str, list[str]] = {}
    text_required(errors, username=username)
    clean_roles = _roles_validate(errors, roles)
    if not clean_roles:
        errors.setdefault("roles", []).append("Give at least one role.")
    if not user.is_superuser and agency.city_id != user.city_id:
        errors.setdefault("agency", []).append("Must be an agency of your city.")
    if User.objects.filter(username__iexact=username.strip()).exists():
        errors.setdefault("username", []).append("A user with that username already exists.")
    if not agency.is_active:
        errors.setdefault("agency", []).append("This agency is inactive.")
    candidate = User(
        username=username.strip(),
        agency=agency,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        email=email.strip(),
        phone=phone.strip(),
    )
    try:  # the model's own rules: username characters, field lengths, e-mail form
        candidate.full_clean(exclude=["password", "agency"], validate_unique=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if password:
        try:
            validate_password(password, candidate)
        except ValidationError as exc:
            errors.setdefault("password", []).extend(exc.messages)
    errors_raise(errors)
    try:
        with transaction.atomic():
            if password:
                candidate.set_password(password)
            else:
                candidate.set_unusable_password()
            candidate.save()
            user_set_roles(target=candidate, roles=clean_roles)
    except IntegrityError as exc:  # a concurrent create of the same username won the race
        raise ValidationError({"username": ["A user with that username already exists."]}) from exc
    return candidate


def user_set_roles(*, target: User, roles: list[str]) -> None:
    """Replace a user's roles (inside the caller's transaction)."""
    RoleAssignment.objects.filter(user=target).exclude(role__in=roles).delete()
    RoleAssignment.objects.bulk_create(
        [RoleAssignment(user=target, role=role) for role in roles], ignore_conflicts=True
    )
    target.__dict__.pop("roles", None)


def user_credentials_revoke(*, target: User, keep_session_key: str | None = None) -> dict[str, int]:
    """End every session and delete every API token of a person (inside the caller's
    transaction), except the one session named: the one a person changes their password from.

    Open WebSockets end at their next re-check, when they find the session gone.
    """
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key == keep_session_key:
            continue
        if str(session.get_decoded().get(SESSION_KEY)) == str(target.pk):
            session.delete()
            ended += 1
    tokens, _ = Token.objects.filter(user=target).delete()
    return {"sessions": ended, "tokens": tokens}


def user_deactivate(*, user: User, target: User, request: Any = None) -> User:
    """Deactivate a person's account (administrators of their city): they can no longer sign in,
    and their sessions and API tokens end now. Deactivating an inactive account ends whatever
    might still be open, again."""
    require(user, Capability.DIRECTORY_MANAGE)
    if target.pk == user.pk:
        raise ValidationError({"user": ["You cannot deactivate your own account."]})
    if not user.is_superuser and (target.is_superuser or target.city_id != user.city_id):
        raise PermissionDenied("You can only deactivate people of your own city.")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=target.pk)
        if locked.is_active:
            locked.is_active = False
            locked.save(update_fields=["is_active"])
        revoked = user_credentials_revoke(target=locked)
    audit_record(
        action="user.deactivated", user=user, request=request, target=locked, detail=revoked
    )
    return locked


def user_password_change(
    *,
    user: User,
    target: User,
    password: str,
    keep_session_key: str | None = None,
    request: Any = None,
) -> User:
    """Set a person's new password, and end every other session and every API token they hold,
    so that whoever knew the old password is out. ``keep_session_key`` is the session the
    change was made from, when a person changes their own."""
    if target.pk != user.pk:
        require(user, Capability.DIRECTORY_MANAGE)
    try:
        validate_password(password, target)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=target.pk)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        revoked = user_credentials_revoke(target=locked, keep_session_key=keep_session_key)
    audit_record(
        action="user.password_changed", user=user, request=request, target=locked, detail=revoked
    )
    target.password = locked.password
    return locked
