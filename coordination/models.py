"""Cities, agencies and people; the joint decision log; actions; debriefs and lessons."""

import hashlib
import json
import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, ClassVar
from uuid import uuid4

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from .markings import DEFAULT_MARKING, Audience, Marking
from .querysets import (
    ActionQuerySet,
    AgencyQuerySet,
    AuditEntryQuerySet,
    DebriefQuerySet,
    DecisionQuerySet,
    LessonQuerySet,
    MeetingQuerySet,
    UserQuerySet,
)
from .roles import Role

GENESIS_HASH = "0" * 64

# (agency ids, people ids) named by a restricted marking.
Recipients = tuple[tuple[int, ...] | list[int], tuple[int, ...] | list[int]]


# The stored columns of a decision its hash covers, in the order ``decision_canonical_content``
# takes them. The chain verification reads exactly these from the database.
DECISION_HASHED_FIELDS = (
    "incident_id",
    "sequence",
    "information",
    "threat_assessment",
    "working_strategy",
    "powers_policies",
    "options",
    "decision",
    "rationale",
    "decided_at",
    "recorded_at",
    "late_entry_reason",
    "review_by",
    "author_id",
    "author_agency_id",
    "supersedes_id",
    "marking",
    "meeting_id",
)

# json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False), with the encoder
# built once rather than for every entry.
_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def decision_canonical_content(
    values: Sequence[Any],
    positions: Iterable[tuple[int, str, str]] = (),
    recipients: Recipients = ((), ()),
) -> str:
    """A decision as one deterministic string: what its hash covers. The single definition, used
    when an entry is recorded (``Decision.canonical_content``) and when a log is verified.

    ``values`` are the entry's ``DECISION_HASHED_FIELDS``, in that order. ``positions`` are
    (agency id, stance, statement) triples and ``recipients`` the (agency ids, people ids) the
    marking names, because they are hashed before their rows exist. Recipient lists are part of
    the content only when there are some, so entries recorded before recipient lists existed keep
    their hash.
    """
    (
        incident,
        sequence,
        information,
        threat_assessment,
        working_strategy,
        powers_policies,
        options,
        decision,
        rationale,
        decided_at,
        recorded_at,
        late_entry_reason,
        review_by,
        author,
        author_agency,
        supersedes,
        marking,
        meeting,
    ) = values
    content = {
        "incident": incident,
        "sequence": sequence,
        "information": information,
        "threat_assessment": threat_assessment,
        "working_strategy": working_strategy,
        "powers_policies": powers_policies,
        "options": options,
        "decision": decision,
        "rationale": rationale,
        "decided_at": _instant(decided_at),
        "recorded_at": _instant(recorded_at),
        "late_entry_reason": late_entry_reason,
        "review_by": _instant(review_by),
        "author": author,
        "author_agency": author_agency,
        "supersedes": supersedes,
        "marking": marking,
        "positions": sorted([list(position) for position in positions]),
    }
    agencies, people = recipients
    if agencies:
        content["recipient_agencies"] = sorted(agencies)
    if people:
        content["recipient_people"] = sorted(people)
    # Likewise the meeting: entries recorded before meetings existed, or outside one, keep their
    # hash.
    if meeting is not None:
        content["meeting"] = meeting
    return _canonical_json(content)


def decision_hash(
    prev_hash: str,
    values: Sequence[Any],
    positions: Iterable[tuple[int, str, str]] = (),
    recipients: Recipients = ((), ()),
) -> str:
    """The SHA-256 a decision stores: of the previous entry's hash and its canonical content."""
    payload = f"{prev_hash}\n{decision_canonical_content(values, positions, recipients)}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Stockholm.")


class City(models.Model):
    """A member city of the network. Agencies, incidents and rotas belong to one."""

    name = models.CharField(max_length=100, unique=True)
    code = models.CharField(
        max_length=3,
        unique=True,
        validators=[RegexValidator(r"^[A-Z]{3}$", "Three capital letters, e.g. STO.")],
        help_text="Prefix of incident references, e.g. STO in STO-2026-0001.",
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])

    class Meta:
        verbose_name_plural = "cities"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class AgencyType(models.TextChoices):
    POLICE = "police", "Police"
    FIRE_RESCUE = "fire_rescue", "Fire and rescue"
    AMBULANCE = "ambulance", "Ambulance"
    HEALTH = "health", "Health"
    LOCAL_AUTHORITY = "local_authority", "Local authority"
    TRANSPORT = "transport", "Transport"
    UTILITIES = "utilities", "Utilities"
    MILITARY = "military", "Military"
    VOLUNTARY = "voluntary", "Voluntary sector"
    VENUE_OPERATOR = "venue_operator", "Venue operator"
    OTHER = "other", "Other"


class Agency(models.Model):
    """A responding organisation of one city: police, fire and rescue, ambulance, and so on."""

    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="agencies")
    name = models.CharField(max_length=200)
    short_name = models.CharField(max_length=30)
    type = models.CharField(max_length=32, choices=AgencyType.choices)
    is_active = models.BooleanField(default=True)

    objects = AgencyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "agencies"
        ordering = ["city__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["city", "name"], name="agency_unique_name_per_city"),
            models.UniqueConstraint(
                fields=["city", "short_name"], name="agency_unique_short_name_per_city"
            ),
        ]

    def __str__(self) -> str:
        return self.short_name


class CtpnUserManager(UserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    pass


class User(AbstractUser):
    """A person using the platform. Belongs to one agency and holds one or more roles.

    A superuser (``createsuperuser``) has no agency: a platform administrator who sees every city.
    """

    agency = models.ForeignKey(
        Agency, on_delete=models.PROTECT, related_name="users", null=True, blank=True
    )
    phone = models.CharField(max_length=32, blank=True)

    objects: ClassVar[CtpnUserManager] = CtpnUserManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @cached_property
    def roles(self) -> set[str]:
        """The user's roles, read once per request (uses a prefetch when there is one)."""
        return {assignment.role for assignment in self.role_assignments.all()}

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def city_id(self) -> int | None:
        return self.agency.city_id if self.agency is not None else None


class RoleAssignment(models.Model):
    """One role held by one user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=32, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="role_assignment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.get_role_display()}"


class Decision(models.Model):
    """One entry of an incident's joint decision log, in the JESIP Joint Decision Model order.

    Append-only: a correction is a new entry that ``supersedes`` an earlier one. Each entry stores
    the SHA-256 of its canonical content together with the previous entry's hash, so the log of an
    incident is a chain and any out-of-band edit breaks it. The database refuses UPDATE and DELETE.
    """

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="decisions"
    )
    sequence = models.PositiveIntegerField(help_text="Entry number within the incident's log.")
    # The Joint Decision Model, in order.
    information = models.TextField(help_text="Information and intelligence.")
    threat_assessment = models.TextField(help_text="Threat and risk assessment.")
    working_strategy = models.TextField(help_text="The working strategy.")
    powers_policies = models.TextField(help_text="Powers, policies and procedures.")
    options = models.JSONField(
        help_text='Options considered: [{"option": ..., "chosen": true|false, "reason": ...}].'
    )
    decision = models.TextField()
    rationale = models.TextField()
    decided_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    late_entry_reason = models.TextField(
        blank=True, help_text="Why the entry was recorded long after the decision was taken."
    )
    review_by = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="decisions")
    author_agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="+")
    supersedes = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="superseded_by",
        help_text="The earlier entry this one corrects.",
    )
    marking = models.CharField(
        max_length=16,
        choices=Marking.choices,
        default=DEFAULT_MARKING,
        help_text="The marking it was recorded with; a later marking change takes precedence.",
    )
    recipient_agencies = models.ManyToManyField(
        Agency, blank=True, related_name="+", help_text="AMBER+STRICT: the agencies named."
    )
    recipient_people = models.ManyToManyField(
        User, blank=True, related_name="+", help_text="RED: the people named."
    )
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)
    meeting = models.ForeignKey(
        "coordination.Meeting",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="decisions",
        help_text="The meeting of the strategic cell in which the decision was taken.",
    )

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "sequence"], name="decision_unique_sequence_per_incident"
            ),
        ]

    def __str__(self) -> str:
        return f"D-{self.sequence:04d}"

    @property
    def label(self) -> str:
        return str(self)

    def canonical_content(
        self, positions: Iterable[tuple[int, str, str]], recipients: Recipients = ((), ())
    ) -> str:
        """The entry as one deterministic string: what the hash covers (see
        ``decision_canonical_content``, which the chain verification calls with stored rows)."""
        values = tuple(getattr(self, name) for name in DECISION_HASHED_FIELDS)
        return decision_canonical_content(values, positions, recipients)

    def compute_hash(
        self, positions: Iterable[tuple[int, str, str]], recipients: Recipients = ((), ())
    ) -> str:
        values = tuple(getattr(self, name) for name in DECISION_HASHED_FIELDS)
        return decision_hash(self.prev_hash, values, positions, recipients)

    def stored_recipients(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The recipient lists recorded with the entry (uses a prefetch when there is one)."""
        return (
            tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            tuple(sorted(p.pk for p in self.recipient_people.all())),
        )

    def current_audience(self) -> Audience:
        """The marking and recipients in force: those of the latest marking change, if any.

        Uses ``marking_changes`` prefetched in order when there is such a prefetch.
        """
        changes = list(self.marking_changes.all())
        if changes:
            latest = max(changes, key=lambda change: change.pk)
            agencies, people = latest.stored_recipients()
            return Audience(marking=latest.marking, agencies=agencies, people=people)
        agencies, people = self.stored_recipients()
        return Audience(marking=self.marking, agencies=agencies, people=people)

    def stored_positions(self) -> list[tuple[int, str, str]]:
        """The positions recorded with the entry (those taken later carry their own hash)."""
        return [
            (p.agency_id, p.stance, p.statement) for p in self.positions.all() if not p.entry_hash
        ]


class Stance(models.TextChoices):
    AGREE = "agree", "Agrees"
    DISSENT = "dissent", "Dissents"


class DecisionPosition(models.Model):
    """An agency's agreement with, or dissent from, a joint decision.

    Append-only like the decision itself. A position recorded *with* the decision is part of the
    decision's hashed content (``entry_hash`` empty). A position an agency takes *later* cannot
    change that hash, so it carries its own: the SHA-256 of its content and of the hash before it,
    which is the decision's hash for the first later position and the previous later position's
    hash after that. Each decision thus grows a short chain hanging off the log's main chain.
    """

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="positions")
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="+")
    stance = models.CharField(max_length=8, choices=Stance.choices)
    statement = models.TextField(blank=True, help_text="The dissent, in the agency's words.")
    recorded_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who recorded a later position (empty: recorded with the decision).",
    )
    recorded_at = models.DateTimeField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    entry_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["decision", "agency__short_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "agency"], name="decision_position_one_per_agency"
            ),
            models.UniqueConstraint(
                fields=["entry_hash"],
                condition=~models.Q(entry_hash=""),
                name="decision_position_unique_hash",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agency} {self.stance} {self.decision}"

    @property
    def is_later(self) -> bool:
        return bool(self.entry_hash)

    def canonical_content(self) -> str:
        """A later position as one deterministic string: what its hash covers."""
        content = {
            "decision": self.decision_id,
            "agency": self.agency_id,
            "stance": self.stance,
            "statement": self.statement,
            "recorded_by": self.recorded_by_id,
            "recorded_at": self.recorded_at.astimezone(UTC).isoformat()
            if self.recorded_at
            else None,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_hash(self) -> str:
        payload = f"{self.prev_hash}\n{self.canonical_content()}"
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class DecisionMarkingChange(models.Model):
    """A raise or a lowering of a joint decision's handling marking, by the author's agency.

    The decision itself is append-only, so its marking is never edited: the latest change is the
    marking in force. Append-only like positions recorded later, and chained the same way: each
    change stores the SHA-256 of its content and of the hash before it (the decision's hash for
    the first change, the previous change's after that).
    """

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="marking_changes")
    marking = models.CharField(max_length=16, choices=Marking.choices)
    recipient_agencies = models.ManyToManyField(Agency, blank=True, related_name="+")
    recipient_people = models.ManyToManyField(User, blank=True, related_name="+")
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["decision", "pk"]

    def __str__(self) -> str:
        return f"{self.decision} marked {self.marking}"

    def canonical_content(self, recipients: Recipients) -> str:
        agencies, people = recipients
        content = {
            "decision": self.decision_id,
            "marking": self.marking,
            "recipient_agencies": sorted(agencies),
            "recipient_people": sorted(people),
            "reason": self.reason,
            "changed_by": self.changed_by_id,
            "changed_at": self.changed_at.astimezone(UTC).isoformat(),
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_hash(self, recipients: Recipients) -> str:
        payload = f"{self.prev_hash}\n{self.canonical_content(recipients)}"
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def stored_recipients(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (
            tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            tuple(sorted(p.pk for p in self.recipient_people.all())),
        )


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    BLOCKED = "blocked", "Blocked"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Action(models.Model):
    """A task for an agency (optionally a person), due at a time; may stem from a decision."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="actions"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner_agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="actions")
    owner = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_actions"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ActionStatus.choices, default="open")
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="actions"
    )
    meeting = models.ForeignKey(
        "coordination.Meeting",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="actions",
        help_text="The meeting of the strategic cell in which the action was agreed.",
    )
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies = models.ManyToManyField(
        Agency, blank=True, related_name="+", help_text="AMBER+STRICT: the agencies named."
    )
    recipient_people = models.ManyToManyField(
        User, blank=True, related_name="+", help_text="RED: the people named."
    )
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ActionQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "due_at", "id"]

    def __str__(self) -> str:
        return self.title

    def current_audience(self) -> Audience:
        return Audience(
            marking=self.marking,
            agencies=tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            people=tuple(sorted(p.pk for p in self.recipient_people.all())),
        )

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.due_at is not None
            and self.due_at < now
            and self.status not in (ActionStatus.DONE, ActionStatus.CANCELLED)
        )


class AuditChainHead(models.Model):
    """The newest link of the audit log's hash chain: one row, locked to append one at a time.

    Appends lock this row (SELECT ... FOR UPDATE) before reading the previous hash, so concurrent
    writers take turns and the chain stays linear. It also remembers the newest entry, so removing
    that entry (which no later link would reveal) is caught by the verification.
    """

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"audit chain at {self.last_sequence}"


class AuditEntry(models.Model):
    """One entry of the security audit log: who did what, from where, to what, and when.

    Logins, failed logins, MFA events, refused requests, marking changes, exports and reads of RED
    and AMBER+STRICT material. Append-only and hash-chained across the whole platform: each entry
    stores the SHA-256 of its canonical content and of the previous entry's hash, and the database
    refuses UPDATE and DELETE. References to people, agencies and cities carry no database
    constraint: an entry must be writable from its own connection while the caller's transaction
    (which may have created the person) is still open, and must outlive what it refers to; the
    ``username`` text keeps the name regardless.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField(help_text="When, in UTC.")
    action = models.CharField(max_length=64, help_text="Dotted name, e.g. auth.login_failed.")
    user = models.ForeignKey(
        User,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    agency = models.ForeignKey(
        Agency,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    city = models.ForeignKey(
        City,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-sequence"]
        indexes = [
            models.Index(fields=["city", "-sequence"], name="audit_city_sequence"),
            models.Index(fields=["action", "-sequence"], name="audit_action_sequence"),
            models.Index(fields=["user", "-sequence"], name="audit_user_sequence"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.username}".strip()

    def canonical_content(self) -> str:
        """The entry as one deterministic string: what the hash covers."""
        content = {
            "sequence": self.sequence,
            "at": self.at.astimezone(UTC).isoformat(),
            "action": self.action,
            "user": self.user_id,
            "username": self.username,
            "agency": self.agency_id,
            "city": self.city_id,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_label": self.target_label,
            "detail": self.detail,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_hash(self) -> str:
        payload = f"{self.prev_hash}\n{self.canonical_content()}"
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- Joint debriefs and lessons ------------------------------------------------------------------


class DebriefStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Debrief(models.Model):
    """A joint multi-agency debrief of an incident or exercise: who met, when, and what they
    observed. Observations stay open to additions until the facilitator closes the debrief.

    Debriefs and their observations are read by every member of an agency taking part in the
    incident (AMBER), and by the city's oversight committee.
    """

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="debriefs"
    )
    title = models.CharField(max_length=200)
    held_at = models.DateTimeField(help_text="When the debrief was held, in UTC.")
    facilitator = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    agencies = models.ManyToManyField(
        Agency, blank=True, related_name="+", help_text="The agencies represented."
    )
    participants = models.ManyToManyField(
        User, blank=True, related_name="+", help_text="The people who took part."
    )
    status = models.CharField(
        max_length=8, choices=DebriefStatus.choices, default=DebriefStatus.OPEN
    )
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = DebriefQuerySet.as_manager()

    class Meta:
        ordering = ["-held_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    @property
    def marking(self) -> str:
        """Debriefs are shared with the incident's partners: always AMBER."""
        return Marking.AMBER


class ObservationCategory(models.TextChoices):
    WENT_WELL = "went_well", "Went well"
    DID_NOT_GO_WELL = "did_not_go_well", "Did not go well"
    OTHER = "other", "Other"


class Observation(models.Model):
    """One thing a partner observed at a debrief: what went well, what did not, or anything else.
    Any observation can become a lesson identified."""

    debrief = models.ForeignKey(Debrief, on_delete=models.PROTECT, related_name="observations")
    category = models.CharField(max_length=16, choices=ObservationCategory.choices)
    text = models.TextField()
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["debrief", "pk"]

    def __str__(self) -> str:
        return f"{self.get_category_display()}: {self.text[:60]}"


class LessonSource(models.TextChoices):
    OBSERVATION = "observation", "Debrief observation"
    DEBRIEF = "debrief", "Debrief"
    INCIDENT = "incident", "Incident"
    IMPORTED = "imported", "Imported from another city"


class LessonStatus(models.TextChoices):
    IDENTIFIED = "identified", "Identified"
    ACTION_PLANNED = "action_planned", "Action planned"
    IMPLEMENTED = "implemented", "Implemented"
    VERIFIED = "verified", "Learned (verified)"
    NOT_ACCEPTED = "not_accepted", "Not accepted"


# Statuses still awaiting someone's step: the oversight committee follows these.
LESSON_OPEN_STATUSES = (
    LessonStatus.IDENTIFIED,
    LessonStatus.ACTION_PLANNED,
    LessonStatus.IMPLEMENTED,
)


class Lesson(models.Model):
    """A lesson identified at a debrief (or imported from another city), owned by an agency and
    tracked by the oversight committee until it is implemented and verified: then it is learned.

    ``uuid`` identifies the lesson across deployments: an exported lesson keeps it, so importing
    it twice into a city finds the first copy. Imported lessons have no incident; they belong to
    the importing ``city`` and say where they came from in ``origin_city``/``origin_deployment``.
    """

    uuid = models.UUIDField(default=uuid4, editable=False)
    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="lessons")
    incident = models.ForeignKey(
        "incidents.Incident",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="lessons",
    )
    debrief = models.ForeignKey(
        Debrief, on_delete=models.PROTECT, null=True, blank=True, related_name="lessons"
    )
    observation = models.OneToOneField(
        Observation, on_delete=models.PROTECT, null=True, blank=True, related_name="lesson"
    )
    source = models.CharField(max_length=16, choices=LessonSource.choices)
    title = models.CharField(max_length=200)
    description = models.TextField()
    recommended_action = models.TextField(blank=True)
    owner_agency = models.ForeignKey(
        Agency,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="owned_lessons",
        help_text="Empty for an imported lesson until the oversight committee assigns it.",
    )
    owner = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_lessons"
    )
    due_date = models.DateField(null=True, blank=True, help_text="In the city's calendar.")
    status = models.CharField(
        max_length=16, choices=LessonStatus.choices, default=LessonStatus.IDENTIFIED
    )
    not_accepted_reason = models.TextField(blank=True)
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies = models.ManyToManyField(
        Agency, blank=True, related_name="+", help_text="AMBER+STRICT: the agencies named."
    )
    recipient_people = models.ManyToManyField(
        User, blank=True, related_name="+", help_text="RED: the people named."
    )
    shareable = models.BooleanField(
        default=False, help_text="May be exported to other cities (GREEN or CLEAR only)."
    )
    is_exercise = models.BooleanField(
        default=False, help_text="Identified in an exercise: every view of it says EXERCISE."
    )
    origin_city = models.CharField(max_length=100, blank=True)
    origin_deployment = models.CharField(max_length=200, blank=True)
    identified_on = models.DateField()
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # The day (city calendar) each reminder kind was last claimed: at most one a day per kind.
    due_soon_reminded_on = models.DateField(null=True, blank=True)
    overdue_reminded_on = models.DateField(null=True, blank=True)

    objects = LessonQuerySet.as_manager()

    class Meta:
        ordering = ["due_date", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["city", "uuid"], name="lesson_unique_uuid_per_city"),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.title}"

    @property
    def label(self) -> str:
        return f"L-{self.pk:04d}" if self.pk else "L-new"

    @property
    def is_open(self) -> bool:
        return self.status in LESSON_OPEN_STATUSES

    def is_overdue(self, today: date) -> bool:
        return self.is_open and self.due_date is not None and self.due_date < today

    def current_audience(self) -> Audience:
        return Audience(
            marking=self.marking,
            agencies=tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            people=tuple(sorted(p.pk for p in self.recipient_people.all())),
        )


class LessonTransition(models.Model):
    """One step of a lesson's history: its status before and after, who took it, when, and why.
    Identification, assignment and every change of status are recorded."""

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, choices=LessonStatus.choices)
    note = models.TextField(blank=True)
    by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    by_agency = models.ForeignKey(
        Agency, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["lesson", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.lesson_id}: {self.from_status or '-'} -> {self.to_status}"


class MeetingStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    CLOSED = "closed", "Closed"


# Where a meeting may go from each status; a closed meeting is final (its minutes are frozen).
MEETING_TRANSITIONS: dict[str, tuple[str, ...]] = {
    MeetingStatus.SCHEDULED: (MeetingStatus.IN_PROGRESS,),
    MeetingStatus.IN_PROGRESS: (MeetingStatus.CLOSED,),
    MeetingStatus.CLOSED: (),
}


class Meeting(models.Model):
    """A meeting of an incident's strategic coordinating group: when and where it sits, who
    chairs it, who attends for which agency, its agenda and its minutes.

    Joint decisions and actions record the meeting in which they were taken. Minutes may be
    written until the meeting is closed; from then on they are the record and are frozen.
    """

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="meetings"
    )
    title = models.CharField(max_length=200)
    scheduled_at = models.DateTimeField(help_text="When the meeting sits (UTC).")
    location = models.CharField(max_length=200, blank=True, help_text="The room, if co-located.")
    virtual_link = models.URLField(max_length=500, blank=True, help_text="The call, if virtual.")
    chair = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="chaired_meetings"
    )
    status = models.CharField(
        max_length=16, choices=MeetingStatus.choices, default=MeetingStatus.SCHEDULED
    )
    minutes = models.TextField(blank=True, help_text="Minutes of the meeting as a whole.")
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies = models.ManyToManyField(
        Agency, blank=True, related_name="+", help_text="AMBER+STRICT: the agencies named."
    )
    recipient_people = models.ManyToManyField(
        User, blank=True, related_name="+", help_text="RED: the people named."
    )
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = MeetingQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "scheduled_at", "id"]

    def __str__(self) -> str:
        return self.title

    @property
    def allowed_transitions(self) -> tuple[str, ...]:
        return MEETING_TRANSITIONS.get(self.status, ())

    @property
    def is_closed(self) -> bool:
        return self.status == MeetingStatus.CLOSED

    def current_audience(self) -> Audience:
        return Audience(
            marking=self.marking,
            agencies=tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            people=tuple(sorted(p.pk for p in self.recipient_people.all())),
        )


class AgendaItem(models.Model):
    """One item of a meeting's agenda, in order, with the minutes taken against it."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="agenda_items")
    position = models.PositiveIntegerField(help_text="Order on the agenda, from 1.")
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True, help_text="What the item is about, before the meeting.")
    minutes = models.TextField(blank=True, help_text="What was said and agreed on the item.")

    class Meta:
        ordering = ["meeting", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "position"], name="agenda_item_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class Attendance(models.TextChoices):
    EXPECTED = "expected", "Expected"
    PRESENT = "present", "Present"
    APOLOGIES = "apologies", "Apologies"


class MeetingAttendee(models.Model):
    """A person invited to a meeting for their agency, and whether they came or sent apologies.

    The agency is kept as it was at the meeting: a person who later moves agency still attended
    for the one they belonged to then.
    """

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="attendees")
    person = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="+")
    attendance = models.CharField(
        max_length=16, choices=Attendance.choices, default=Attendance.EXPECTED
    )

    class Meta:
        ordering = ["meeting", "agency__short_name", "person__last_name", "person__username"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "person"], name="meeting_attendee_once"),
        ]

    def __str__(self) -> str:
        return f"{self.person} ({self.agency}): {self.get_attendance_display()}"
