"""Models of the comms app: who is on call, how to reach them, and how alerts escalate."""

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models import Q

from .querysets import (
    AcknowledgementQuerySet,
    ActivationQuerySet,
    BriefQuerySet,
    ContactMethodQuerySet,
    EscalationPolicyQuerySet,
    ExerciseInjectQuerySet,
    ExerciseRunQuerySet,
    NotificationQuerySet,
    PublicStatementQuerySet,
    ResponderGroupQuerySet,
    RotaItemQuerySet,
    RotaQuerySet,
    ScenarioInjectQuerySet,
    ScenarioQuerySet,
    StatementItemQuerySet,
)

# =================================================================================================
# On-call rotas, contact methods and escalation policies (configuration of 24/7 alerting)
# =================================================================================================


def new_calendar_key() -> str:
    """A fresh secret for a rota's calendar feed URL; replacing it revokes every old URL."""
    return secrets.token_urlsafe(24)


def new_signing_secret() -> str:
    """A fresh HMAC-SHA256 key for a webhook contact method, generated on the server."""
    return secrets.token_hex(32)


class Tier(models.TextChoices):
    PRIMARY = "primary", "Primary duty officer"
    SECONDARY = "secondary", "Secondary duty officer"


class Rota(models.Model):
    """An on-call rota of an agency, such as "Strategic duty officer": who answers, 24/7.

    Its shifts and cover (overrides) say who is the primary and the secondary duty officer at any
    instant; ``comms.rotas.on_call`` answers that. ``calendar_key`` is the secret behind the
    rota's calendar feed URL; replacing it revokes every URL handed out before.
    """

    agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="rotas"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    calendar_key = models.CharField(max_length=64, default=new_calendar_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RotaQuerySet.as_manager()

    class Meta:
        ordering = ["agency__short_name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["agency", "name"], name="rota_unique_name_per_agency"),
        ]

    def __str__(self) -> str:
        return f"{self.agency}: {self.name}"


class Recurrence(models.TextChoices):
    ONCE = "once", "Once"
    DAILY = "daily", "Every day"
    WEEKLY = "weekly", "Every week"


# Rotas plan no further than this; it keeps every date computation far from datetime's limits.
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)

# Longest a single shift may run; also bounds how far back the on-call query looks for a shift
# that started before the instant asked about.
MAX_SHIFT_DURATION = timedelta(days=28)


class Shift(models.Model):
    """A duty period of one person on one tier of a rota: once, or repeating daily or weekly.

    Times are wall-clock times in the city's time zone, so a hand-over at 08:00 stays at 08:00
    local across a daylight-saving change: occurrence ``k`` starts on ``start_date + k * interval``
    days (or weeks) at ``start_time`` local, and ends ``duration`` later on the local clock (a
    "08:00 for 7 days" shift ends at 08:00 local a week later, 167 or 169 real hours when the
    clocks change in between). ``repeat_until`` is the last local date an occurrence may start.
    """

    rota = models.ForeignKey(Rota, on_delete=models.CASCADE, related_name="shifts")
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.PRIMARY)
    user = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="rota_shifts"
    )
    start_date = models.DateField(help_text="Local date of the first occurrence.")
    start_time = models.TimeField(help_text="Local wall-clock time each occurrence starts.")
    duration = models.DurationField(help_text="Length on the local wall clock, at most 28 days.")
    recurrence = models.CharField(max_length=8, choices=Recurrence.choices, default=Recurrence.ONCE)
    interval = models.PositiveSmallIntegerField(
        default=1, help_text="Repeat every this many days or weeks."
    )
    repeat_until = models.DateField(
        null=True, blank=True, help_text="Last local date an occurrence may start; empty: no end."
    )
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RotaItemQuerySet.as_manager()

    class Meta:
        ordering = ["rota", "start_date", "start_time", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration__gt=timedelta(0)), name="shift_duration_positive"
            ),
            models.CheckConstraint(condition=Q(interval__gte=1), name="shift_interval_positive"),
            models.CheckConstraint(
                condition=Q(repeat_until__isnull=True)
                | Q(repeat_until__gte=models.F("start_date")),
                name="shift_repeat_until_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_tier_display()} {self.user} from {self.start_date} {self.start_time}"

    @property
    def duration_label(self) -> str:
        """The length as people say it: "7 days", "12 h", "1 day 4 h 30 min"."""
        days, seconds = self.duration.days, self.duration.seconds
        parts = []
        if days:
            parts.append(f"{days} day{'s' if days != 1 else ''}")
        if seconds // 3600:
            parts.append(f"{seconds // 3600} h")
        if seconds % 3600 // 60:
            parts.append(f"{seconds % 3600 // 60} min")
        return " ".join(parts) or "0 min"


class RotaOverride(models.Model):
    """Cover: someone else takes a tier of a rota for an interval, whatever the shifts say.

    Exact UTC instants, half-open ``[starts_at, ends_at)`` like every on-call interval.
    """

    rota = models.ForeignKey(Rota, on_delete=models.CASCADE, related_name="overrides")
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.PRIMARY)
    user = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="rota_overrides"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RotaItemQuerySet.as_manager()

    class Meta:
        ordering = ["rota", "starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="override_ends_after_start"
            ),
        ]
        indexes = [models.Index(fields=["rota", "ends_at", "starts_at"])]

    def __str__(self) -> str:
        start = f"{self.starts_at:%Y-%m-%d %H:%M}"
        return f"{self.get_tier_display()} cover by {self.user} from {start} UTC"


class ContactKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    WEBHOOK = "webhook", "Webhook"


class ContactMethod(models.Model):
    """One way to reach a person with an alert: an e-mail address, a mobile number for SMS, or a
    webhook URL (the platform signs each webhook body with HMAC-SHA256 under ``signing_secret``).

    In-app notification is always on and is not stored here.
    """

    user = models.ForeignKey(
        "coordination.User", on_delete=models.CASCADE, related_name="contact_methods"
    )
    kind = models.CharField(max_length=8, choices=ContactKind.choices)
    address = models.CharField(
        max_length=2000, help_text="E-mail address, E.164 number (+46701234567) or https URL."
    )
    label = models.CharField(max_length=60, blank=True, help_text='E.g. "work mobile".')
    signing_secret = models.CharField(max_length=128, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ContactMethodQuerySet.as_manager()

    class Meta:
        ordering = ["user", "kind", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "address"], name="contact_method_unique_address"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.address}"


class ResponderGroup(models.Model):
    """A named group of people of one agency that an escalation can notify at once, such as
    "Agency heads" or "All duty officers"."""

    agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="responder_groups"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        "coordination.User", related_name="responder_groups", blank=True
    )

    objects = ResponderGroupQuerySet.as_manager()

    class Meta:
        ordering = ["agency__short_name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "name"], name="responder_group_unique_name_per_agency"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agency}: {self.name}"


class EscalationPolicy(models.Model):
    """How an agency's activation alert escalates while nobody acknowledges: ordered steps
    (notify the primary duty officer, wait, the secondary, wait, a named group...), the whole
    sequence run once and then repeated up to ``repeat_count`` more times.

    ``rota`` is the rota whose primary and secondary the steps mean; empty means every active
    rota of the agency. The agency's ``is_default`` policy is the one activations use.
    """

    agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="escalation_policies"
    )
    name = models.CharField(max_length=100)
    rota = models.ForeignKey(
        Rota, on_delete=models.PROTECT, null=True, blank=True, related_name="escalation_policies"
    )
    repeat_count = models.PositiveSmallIntegerField(
        default=0, help_text="How many more times the whole policy runs after the first pass."
    )
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EscalationPolicyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "escalation policies"
        ordering = ["agency__short_name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "name"], name="escalation_policy_unique_name_per_agency"
            ),
            models.UniqueConstraint(
                fields=["agency"],
                condition=Q(is_default=True),
                name="escalation_policy_one_default_per_agency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agency}: {self.name}"


class StepTarget(models.TextChoices):
    PRIMARY = "primary", "Primary duty officer"
    SECONDARY = "secondary", "Secondary duty officer"
    GROUP = "group", "Named group"


class EscalationStep(models.Model):
    """One step of an escalation policy: notify someone, then wait ``wait_minutes`` for an
    acknowledgement before the next step (after the last step: before the policy repeats)."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="Order within the policy, from 1.")
    target = models.CharField(max_length=16, choices=StepTarget.choices)
    group = models.ForeignKey(
        ResponderGroup, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    wait_minutes = models.PositiveIntegerField(default=5)

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "position"], name="escalation_step_unique_position"
            ),
            models.CheckConstraint(
                condition=(Q(target="group") & Q(group__isnull=False))
                | (~Q(target="group") & Q(group__isnull=True)),
                name="escalation_step_group_iff_group_target",
            ),
        ]

    def __str__(self) -> str:
        what = self.group.name if self.group_id and self.group else self.get_target_display()
        return f"{self.position}. {what}, then wait {self.wait_minutes} min"


# =================================================================================================
# Activations, their notifications and acknowledgements (alerting at runtime)
# =================================================================================================


class Urgency(models.TextChoices):
    IMMEDIATE = "immediate", "Immediate"
    URGENT = "urgent", "Urgent"
    ROUTINE = "routine", "Routine"


class Quorum(models.TextChoices):
    EACH_AGENCY = "each_agency", "Acknowledged by each target agency"
    ANY_AGENCY = "any_agency", "Acknowledged by any one target agency"


class ActivationStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Quorum met"
    CANCELLED = "cancelled", "Stood down"


class Activation(models.Model):
    """A call to stand up a structure ("strategic cell to assemble at City Hall at 14:00"), sent
    to the on-call duty officers of chosen agencies, escalating along each agency's policy until
    its quorum of acknowledgements is met.

    The rows it creates in its own transaction (targets and notifications) are the outbox: the
    worker sends what they say, and a sweep re-drives whatever a lost worker left behind.
    """

    city = models.ForeignKey("coordination.City", on_delete=models.PROTECT, related_name="+")
    incident = models.ForeignKey(
        "incidents.Incident",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="activations",
    )
    message = models.TextField()
    urgency = models.CharField(max_length=16, choices=Urgency.choices, default=Urgency.IMMEDIATE)
    is_exercise = models.BooleanField(default=False, help_text="Every message says EXERCISE.")
    quorum = models.CharField(max_length=16, choices=Quorum.choices, default=Quorum.EACH_AGENCY)
    quorum_per_agency = models.PositiveSmallIntegerField(
        default=1, help_text="Acknowledgements an agency must give for its part of the quorum."
    )
    response_deadline = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=ActivationStatus.choices, default=ActivationStatus.OPEN
    )
    created_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="activations_sent"
    )
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = ActivationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        prefix = "EXERCISE " if self.is_exercise else ""
        return f"{prefix}Activation {self.pk}: {self.message[:40]}"


class TargetState(models.TextChoices):
    ESCALATING = "escalating", "Escalating"
    EXHAUSTED = "exhausted", "Escalation ran out"
    SATISFIED = "satisfied", "Acknowledged"
    STOPPED = "stopped", "Stopped"


class ActivationTarget(models.Model):
    """One agency an activation calls: its share of the quorum and where its escalation stands.

    ``steps_taken`` counts the escalation steps run so far; a scheduled step carries the count it
    expects, so a duplicate or stale task finds a different count and does nothing.
    """

    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="targets")
    agency = models.ForeignKey("coordination.Agency", on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(
        EscalationPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=TargetState.choices, default=TargetState.ESCALATING
    )
    step_position = models.PositiveSmallIntegerField(default=0, help_text="Next step, from 0.")
    round = models.PositiveSmallIntegerField(default=0, help_text="0: the policy's first pass.")
    steps_taken = models.PositiveIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    satisfied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["activation", "agency__short_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["activation", "agency"], name="activation_target_unique_agency"
            ),
        ]
        indexes = [models.Index(fields=["state", "next_step_at"])]

    def __str__(self) -> str:
        return f"{self.agency} in activation {self.activation_id}"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    WEBHOOK = "webhook", "Webhook"
    IN_APP = "in_app", "In-app"


class NotificationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Not needed"


class Notification(models.Model):
    """One alert to one person through one channel, with its own lifecycle: ``queued → sent →
    delivered → acknowledged``, or ``failed`` with the reason; ``cancelled`` when it was no
    longer needed before it went out (the person had already answered, or the activation was
    stood down).

    Delivered at least once: a worker claims it with a lease (``claimed_until``) before sending,
    so a duplicate task does nothing, and one that dies lets the sweep send it again. Every
    message carries ``idempotency_key``, so a receiver can recognise a repeat.
    """

    activation = models.ForeignKey(
        Activation, on_delete=models.CASCADE, related_name="notifications"
    )
    target = models.ForeignKey(
        ActivationTarget, on_delete=models.CASCADE, related_name="notifications"
    )
    recipient = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="notifications"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    contact_method = models.ForeignKey(
        ContactMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    address = models.CharField(max_length=2000, blank=True, help_text="As it was when queued.")
    step = models.CharField(max_length=120, help_text="The escalation step that sent it.")
    round = models.PositiveSmallIntegerField(default=0)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    state = models.CharField(
        max_length=16, choices=NotificationState.choices, default=NotificationState.QUEUED
    )
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["activation", "id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["activation", "recipient"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.recipient} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try at handing a notification to its channel, and what came of it (empty outcome:
    the try never finished, because the worker died during it)."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["notification", "number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}: {self.outcome}"


class Response(models.TextChoices):
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    ATTENDING = "attending", "Attending"
    CANNOT_ATTEND = "cannot_attend", "Cannot attend"


class AnsweredVia(models.TextChoices):
    LINK = "link", "One-tap link"
    IN_APP = "in_app", "In-app"
    API = "api", "API"


class Acknowledgement(models.Model):
    """A person's answer to an activation: acknowledged, attending with an ETA, or cannot attend.

    At most one per person and activation: answering again changes nothing. "Cannot attend"
    does not count towards the quorum and escalates the person's agency at once.
    """

    activation = models.ForeignKey(
        Activation, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    target = models.ForeignKey(
        ActivationTarget, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    user = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    notification = models.ForeignKey(
        Notification, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    response = models.CharField(max_length=16, choices=Response.choices)
    eta_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    via = models.CharField(max_length=8, choices=AnsweredVia.choices)
    created_at = models.DateTimeField()

    objects = AcknowledgementQuerySet.as_manager()

    class Meta:
        ordering = ["activation", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["activation", "user"], name="acknowledgement_one_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.describe()}"

    def describe(self) -> str:
        if self.response == Response.ATTENDING and self.eta_minutes is not None:
            return f"Attending, ETA {self.eta_minutes} min"
        return self.get_response_display()

    @property
    def counts_towards_quorum(self) -> bool:
        return self.response != Response.CANNOT_ATTEND


# =================================================================================================
# Public statements (one consistent public line) and IIMARCH situation briefs
# =================================================================================================


class StatementStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published (current)"
    SUPERSEDED = "superseded", "Superseded"
    WITHDRAWN = "withdrawn", "Withdrawn"


# Markings a statement may carry: its draft is read by every participating agency (the partners
# who approve it must read it), and once published it is CLEAR.
STATEMENT_MARKINGS = ("CLEAR", "GREEN", "AMBER")


class PublicStatement(models.Model):
    """A public statement about an incident: drafted by a communications lead of the owning
    agency, approved by each partner agency it names, then published as the one public line.

    Its wording lives in ``StatementVersion`` rows (a revision adds one, never overwrites), and
    each partner's approval or request for changes in a ``StatementReview`` of one version. At
    most one statement per incident is published and current at a time; publishing another one
    supersedes it.
    """

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="statements"
    )
    owner_agency = models.ForeignKey(
        "coordination.Agency",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The agency whose communications leads revise and publish it.",
    )
    author = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    approver_agencies = models.ManyToManyField(
        "coordination.Agency",
        blank=True,
        related_name="+",
        help_text="The partner agencies whose approval of the current version it needs.",
    )
    status = models.CharField(
        max_length=16, choices=StatementStatus.choices, default=StatementStatus.DRAFT
    )
    marking = models.CharField(max_length=16, default="AMBER")
    current_version = models.ForeignKey(
        "StatementVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The wording partners approve now (the newest version).",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    objects = PublicStatementQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "-created_at", "-pk"]
        constraints = [
            # The one public line: never two current statements of an incident, whatever races.
            models.UniqueConstraint(
                fields=["incident"],
                condition=Q(status="published"),
                name="statement_one_current_per_incident",
            ),
            models.CheckConstraint(
                condition=Q(published_at__isnull=True) | Q(marking="CLEAR"),
                name="statement_published_only_clear",
            ),
        ]

    def __str__(self) -> str:
        headline = self.current_version.headline if self.current_version else ""
        return f"Statement {self.pk}: {headline}"[:120]


class StatementVersion(models.Model):
    """One wording of a public statement. A revision adds the next version; none is ever
    rewritten, so an approval always refers to the exact text approved."""

    statement = models.ForeignKey(
        PublicStatement, on_delete=models.PROTECT, related_name="versions"
    )
    number = models.PositiveIntegerField()
    headline = models.CharField(max_length=200)
    body = models.TextField()
    created_by = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    objects = StatementItemQuerySet.as_manager()

    class Meta:
        ordering = ["statement", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "number"], name="statement_version_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number} {self.headline}"[:120]


class ReviewDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"


class StatementReview(models.Model):
    """A named partner agency's answer to one version of a statement: approved, or changes
    requested (with a comment saying which). The latest answer of an agency to the current
    version is its position; a new version needs new answers."""

    statement = models.ForeignKey(PublicStatement, on_delete=models.PROTECT, related_name="reviews")
    version = models.ForeignKey(StatementVersion, on_delete=models.PROTECT, related_name="reviews")
    agency = models.ForeignKey("coordination.Agency", on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=20, choices=ReviewDecision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField()

    objects = StatementItemQuerySet.as_manager()

    class Meta:
        ordering = ["statement", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.agency} {self.get_decision_display().lower()} v{self.version.number}"


class BriefStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ISSUED = "issued", "Issued"


class Brief(models.Model):
    """A situation report for the strategic coordinating group, in the IIMARCH order
    (Information, Intent, Method, Administration, Risk assessment, Communications, Humanitarian
    issues), generated from the incident's state at one instant (``as_of``).

    Editable while a draft; once issued it is frozen and numbered (1, 2, 3 per incident).
    ``content`` keeps the structured state it was generated from, for "what changed since the
    last brief".
    """

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="briefs"
    )
    number = models.PositiveIntegerField(
        null=True, blank=True, help_text="Brief number within the incident, given on issue."
    )
    status = models.CharField(max_length=8, choices=BriefStatus.choices, default=BriefStatus.DRAFT)
    as_of = models.DateTimeField(help_text="The instant whose state the brief describes.")
    marking = models.CharField(max_length=16, default="AMBER")
    author = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    author_agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="+"
    )
    previous = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The last brief issued before this one's instant.",
    )
    information = models.TextField(blank=True)
    intent = models.TextField(blank=True)
    method = models.TextField(blank=True)
    administration = models.TextField(blank=True)
    risk_assessment = models.TextField(blank=True)
    communications = models.TextField(blank=True)
    humanitarian = models.TextField(blank=True)
    content = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = BriefQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "number"],
                condition=Q(number__isnull=False),
                name="brief_unique_number_per_incident",
            ),
            models.CheckConstraint(
                condition=Q(status="draft", number__isnull=True)
                | Q(status="issued", number__isnull=False, issued_at__isnull=False),
                name="brief_issued_has_number",
            ),
        ]

    def __str__(self) -> str:
        return f"Brief {self.number}" if self.number else f"Draft brief {self.pk}"


# =================================================================================================
# Exercises: scenarios of timed injects, and exercise runs that release them
# =================================================================================================


class InjectKind(models.TextChoices):
    METHANE = "methane", "New M/ETHANE report"
    TIMELINE = "timeline", "Timeline entry"
    MESSAGE = "message", "Message to the cell"
    ACTIVATION = "activation", "Activation alert"


class Scenario(models.Model):
    """The reusable script of a table-top exercise: a situation and its timed injects (new
    M/ETHANE reports, timeline entries, messages to the cell, activation alerts), each at an
    offset from the start of the exercise. It belongs to a city's exercise programme."""

    city = models.ForeignKey("coordination.City", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="The situation, for directing staff.")
    incident_title = models.CharField(
        max_length=200, help_text="Title of the exercise incident each run opens."
    )
    incident_type = models.CharField(max_length=40, default="marauding_terrorist_attack")
    incident_level = models.PositiveSmallIntegerField(default=3)
    location_description = models.CharField(max_length=300, blank=True)
    builtin_key = models.SlugField(
        max_length=60, blank=True, help_text="Set on the scenarios the platform ships."
    )
    created_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScenarioQuerySet.as_manager()

    class Meta:
        ordering = ["city", "name"]
        constraints = [
            models.UniqueConstraint(fields=["city", "name"], name="scenario_unique_name_per_city"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def duration_seconds(self) -> int:
        return max((inject.offset_seconds for inject in self.injects.all()), default=0)


class ScenarioInject(models.Model):
    """One timed inject of a scenario: what happens ``offset_seconds`` after the exercise starts.

    ``content`` holds the fields of its kind: M/ETHANE fields for a report, ``text`` (and
    ``category``) for a timeline entry, ``text`` (and ``sender``) for a message to the cell, and
    ``message``, ``agencies`` (short names; empty: every participating agency) and ``urgency``
    for an activation alert.
    """

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="injects")
    offset_seconds = models.PositiveIntegerField(help_text="Seconds after the exercise starts.")
    kind = models.CharField(max_length=16, choices=InjectKind.choices)
    title = models.CharField(max_length=200, help_text="What directing staff call it.")
    content = models.JSONField(default=dict, blank=True)

    objects = ScenarioInjectQuerySet.as_manager()

    class Meta:
        ordering = ["scenario", "offset_seconds", "id"]

    def __str__(self) -> str:
        return f"+{self.offset_seconds}s {self.get_kind_display()}: {self.title}"


class ExerciseStatus(models.TextChoices):
    READY = "ready", "Ready to start"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    ENDED = "ended", "Ended"


# What each exercise status may move to, and by which control.
EXERCISE_TRANSITIONS: dict[str, dict[str, str]] = {
    ExerciseStatus.READY: {"start": ExerciseStatus.RUNNING, "end": ExerciseStatus.ENDED},
    ExerciseStatus.RUNNING: {"pause": ExerciseStatus.PAUSED, "end": ExerciseStatus.ENDED},
    ExerciseStatus.PAUSED: {"resume": ExerciseStatus.RUNNING, "end": ExerciseStatus.ENDED},
    ExerciseStatus.ENDED: {},
}


class ExerciseRun(models.Model):
    """One run of a scenario: an exercise incident (marked EXERCISE everywhere) whose injects
    are released on time while the exercise director runs, pauses, resumes and ends it.

    An inject is due at start + offset + the time the exercise spent paused before it.
    """

    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="runs")
    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.PROTECT, related_name="exercise_run"
    )
    director = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="exercises_directed"
    )
    status = models.CharField(
        max_length=16, choices=ExerciseStatus.choices, default=ExerciseStatus.READY
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True, help_text="Start of the current pause.")
    paused_total = models.DurationField(
        default=timedelta(0), help_text="Time spent paused, over all finished pauses."
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = ExerciseRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"EXERCISE {self.scenario} ({self.get_status_display()})"

    @property
    def allowed_controls(self) -> list[str]:
        return list(EXERCISE_TRANSITIONS[self.status])


class InjectState(models.TextChoices):
    PENDING = "pending", "Pending"
    RELEASED = "released", "Released"
    FAILED = "failed", "Could not be released"
    SKIPPED = "skipped", "Not released (exercise ended)"


class ExerciseInject(models.Model):
    """An inject of one exercise run: a copy of the scenario's inject taken when the run was
    created (editing the scenario later does not change a run), with its due instant and what
    became of it."""

    run = models.ForeignKey(ExerciseRun, on_delete=models.CASCADE, related_name="injects")
    position = models.PositiveSmallIntegerField(help_text="Order of release, from 1.")
    offset_seconds = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=InjectKind.choices)
    title = models.CharField(max_length=200)
    content = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=InjectState.choices, default=InjectState.PENDING
    )
    due_at = models.DateTimeField(null=True, blank=True, help_text="Set when the run starts.")
    released_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    event_seq = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The incident event that announced the release."
    )

    objects = ExerciseInjectQuerySet.as_manager()

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "position"], name="exercise_inject_unique_position"
            ),
        ]
        indexes = [models.Index(fields=["state", "due_at"])]

    def __str__(self) -> str:
        return f"{self.position}. {self.title} ({self.state})"
