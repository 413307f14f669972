"""Models of the comms app: who is on call, how to reach them, and how alerts escalate."""

import secrets
from datetime import timedelta

from django.db import models
from django.db.models import Q

from .querysets import (
    ContactMethodQuerySet,
    EscalationPolicyQuerySet,
    ResponderGroupQuerySet,
    RotaItemQuerySet,
    RotaQuerySet,
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
