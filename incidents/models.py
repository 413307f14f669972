"""Incidents and their lifecycle, M/ETHANE reports, the timeline, and the incident event stream."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from coordination.markings import DEFAULT_MARKING, Audience, Marking

from .querysets import IncidentItemQuerySet, IncidentQuerySet


class IncidentType(models.TextChoices):
    MARAUDING_TERRORIST_ATTACK = "marauding_terrorist_attack", "Marauding terrorist attack"
    VEHICLE_AS_WEAPON = "vehicle_as_weapon", "Vehicle as a weapon"
    IED = "ied", "Improvised explosive device"
    CBRN = "cbrn", "CBRN"
    HOSTAGE = "hostage", "Hostage"
    CYBER_PHYSICAL = "cyber_physical", "Cyber-physical"
    OTHER = "other", "Other"


class IncidentStatus(models.TextChoices):
    REPORTED = "reported", "Reported"
    ACTIVATED = "activated", "Activated"
    RESPONSE = "response", "Response"
    RECOVERY = "recovery", "Recovery"
    CLOSED = "closed", "Closed"


# The lifecycle. Forward one step at a time; a report that proves false may be stood down
# (reported -> closed); recovery may fall back to response if the threat returns. Closed is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    IncidentStatus.REPORTED: (IncidentStatus.ACTIVATED, IncidentStatus.CLOSED),
    IncidentStatus.ACTIVATED: (IncidentStatus.RESPONSE,),
    IncidentStatus.RESPONSE: (IncidentStatus.RECOVERY,),
    IncidentStatus.RECOVERY: (IncidentStatus.RESPONSE, IncidentStatus.CLOSED),
    IncidentStatus.CLOSED: (),
}


class IncidentLevel(models.IntegerChoices):
    LEVEL_1 = 1, "Level 1: local, single agency lead"
    LEVEL_2 = 2, "Level 2: significant, multi-agency"
    LEVEL_3 = 3, "Level 3: major, strategic coordination"
    LEVEL_4 = 4, "Level 4: catastrophic, national support"


class Incident(models.Model):
    """An incident (or an exercise of one) that partners coordinate together."""

    city = models.ForeignKey(
        "coordination.City", on_delete=models.PROTECT, related_name="incidents"
    )
    year = models.PositiveSmallIntegerField()
    number = models.PositiveIntegerField(help_text="Counter per city and year.")
    reference = models.CharField(max_length=20, unique=True, editable=False)
    title = models.CharField(max_length=200)
    type = models.CharField(max_length=40, choices=IncidentType.choices)
    level = models.PositiveSmallIntegerField(choices=IncidentLevel.choices)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.REPORTED
    )
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    location_description = models.CharField(max_length=300, blank=True)
    lead_agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="led_incidents"
    )
    neutral_commander = models.ForeignKey(
        "coordination.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="chaired_incidents",
    )
    participating_agencies = models.ManyToManyField("coordination.Agency", related_name="incidents")
    is_exercise = models.BooleanField(
        default=False, help_text="An exercise: every view of it says EXERCISE."
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(help_text="When the last event was appended.")
    last_event_seq = models.PositiveBigIntegerField(
        default=0, help_text="Sequence number of the newest event; the next one is this + 1."
    )

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["city", "year", "number"], name="incident_unique_number_per_city_year"
            ),
        ]

    def __str__(self) -> str:
        prefix = "EXERCISE " if self.is_exercise else ""
        return f"{prefix}{self.reference} {self.title}"

    @property
    def allowed_transitions(self) -> tuple[str, ...]:
        return TRANSITIONS[self.status]


class MethaneReport(models.Model):
    """One version of an incident's M/ETHANE report. A new report supersedes, never overwrites."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="methane_reports")
    version = models.PositiveIntegerField()
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    major_incident_declared = models.BooleanField(help_text="M: major incident declared?")
    exact_location = models.TextField(help_text="E: exact location.")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    incident_type = models.TextField(help_text="T: type of incident.")
    hazards = models.TextField(help_text="H: hazards, present and potential.")
    access = models.TextField(help_text="A: access routes and rendezvous points.")
    casualties_fatal = models.PositiveIntegerField(null=True, blank=True)
    casualties_p1 = models.PositiveIntegerField(
        null=True, blank=True, help_text="N: immediate (P1)."
    )
    casualties_p2 = models.PositiveIntegerField(null=True, blank=True, help_text="N: urgent (P2).")
    casualties_p3 = models.PositiveIntegerField(null=True, blank=True, help_text="N: delayed (P3).")
    casualties_notes = models.TextField(blank=True, help_text="N: number and severity, in words.")
    emergency_services_present = models.TextField(help_text="E: emergency services present.")
    emergency_services_required = models.TextField(help_text="E: emergency services required.")
    submitted_by = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, related_name="+"
    )
    submitted_agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField()
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies = models.ManyToManyField(
        "coordination.Agency",
        blank=True,
        related_name="+",
        help_text="AMBER+STRICT: the agencies named.",
    )
    recipient_people = models.ManyToManyField(
        "coordination.User", blank=True, related_name="+", help_text="RED: the people named."
    )

    objects = IncidentItemQuerySet.as_manager()

    class Meta:
        verbose_name = "M/ETHANE report"
        ordering = ["incident", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "version"], name="methane_unique_version_per_incident"
            ),
        ]

    def __str__(self) -> str:
        return f"M/ETHANE v{self.version}"

    def current_audience(self) -> Audience:
        return Audience(
            marking=self.marking,
            agencies=tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            people=tuple(sorted(p.pk for p in self.recipient_people.all())),
        )


class TimelineCategory(models.TextChoices):
    SIGNIFICANT_EVENT = "significant_event", "Significant event"
    INFORMATION = "information", "Information"
    COMMUNICATION = "communication", "Communication"
    RESOURCE = "resource", "Resource"
    MEETING = "meeting", "Meeting"
    OTHER = "other", "Other"


class TimelineEntry(models.Model):
    """A significant event in the life of an incident, as a partner recorded it."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline")
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    category = models.CharField(
        max_length=24, choices=TimelineCategory.choices, default=TimelineCategory.SIGNIFICANT_EVENT
    )
    text = models.TextField()
    author = models.ForeignKey("coordination.User", on_delete=models.PROTECT, related_name="+")
    author_agency = models.ForeignKey(
        "coordination.Agency", on_delete=models.PROTECT, related_name="+"
    )
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies = models.ManyToManyField(
        "coordination.Agency",
        blank=True,
        related_name="+",
        help_text="AMBER+STRICT: the agencies named.",
    )
    recipient_people = models.ManyToManyField(
        "coordination.User", blank=True, related_name="+", help_text="RED: the people named."
    )

    objects = IncidentItemQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "timeline entries"
        ordering = ["incident", "occurred_at", "id"]

    def __str__(self) -> str:
        return self.text[:60]

    def current_audience(self) -> Audience:
        return Audience(
            marking=self.marking,
            agencies=tuple(sorted(a.pk for a in self.recipient_agencies.all())),
            people=tuple(sorted(p.pk for p in self.recipient_people.all())),
        )


class IncidentEvent(models.Model):
    """One change to an incident that its members should see, numbered without gaps per incident.

    Written in the same transaction as the change; broadcast after commit. A client that misses a
    broadcast replays from the last sequence number it applied.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=32, blank=True)
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    marking = models.CharField(max_length=16, choices=Marking.choices, default=DEFAULT_MARKING)
    # Who may read a restricted event (AMBER+STRICT: agencies; RED: people): the audience of the
    # item it is about, kept here so the replay and the live feed decide without reading the
    # item. Never sent to clients.
    recipient_agencies = models.ManyToManyField("coordination.Agency", blank=True, related_name="+")
    recipient_people = models.ManyToManyField("coordination.User", blank=True, related_name="+")
    actor = models.ForeignKey(
        "coordination.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    objects = IncidentItemQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "seq"], name="event_unique_seq_per_incident"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"
