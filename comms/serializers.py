"""API representations of the comms app. Input serializers check shape; services decide.

Rota part: rotas, who is on call, shifts, cover, contact methods, escalation policies.

Activation part: activations, notifications and answers. The activation board (API, page and the
live topic ``activation:<id>``) is built here, so all three show the same rows the same way.
"""

from datetime import datetime
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coordination.models import Agency, User
from coordination.serializers import InstantField, VisibleRelatedField
from incidents.models import Incident, IncidentLevel, IncidentType

from .ical import calendar_token
from .models import (
    LATEST_INSTANT,
    STATEMENT_MARKINGS,
    Acknowledgement,
    Activation,
    ActivationTarget,
    ContactKind,
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    ExerciseInject,
    ExerciseRun,
    InjectKind,
    Notification,
    Quorum,
    Recurrence,
    ResponderGroup,
    Response,
    Rota,
    RotaOverride,
    Scenario,
    Shift,
    Tier,
    Urgency,
)
from .rotas import Assignment, Handover, wall_clock_instants
from .services import MAX_ETA_MINUTES, MESSAGE_MAX_LENGTH


class RotaInstantField(InstantField):
    """An instant a rota can be asked about or planned for: from 2000, before 2100."""

    def to_internal_value(self, value):
        instant = super().to_internal_value(value)
        if instant >= LATEST_INSTANT:
            raise serializers.ValidationError(f"Must be before {LATEST_INSTANT:%Y}.")
        return instant


def _person(user: User | None) -> str | None:
    return (user.get_full_name() or user.username) if user is not None else None


class RotaSerializer(serializers.ModelSerializer):
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    time_zone = serializers.CharField(source="agency.city.time_zone", read_only=True)
    calendar_url = serializers.SerializerMethodField(
        help_text="The rota's iCalendar feed; works without signing in until revoked."
    )

    class Meta:
        model = Rota
        fields = [
            "id",
            "agency",
            "agency_name",
            "name",
            "description",
            "is_active",
            "time_zone",
            "calendar_url",
        ]
        read_only_fields = fields

    def get_calendar_url(self, rota: Rota) -> str:
        path = reverse("rota-calendar", args=[rota.pk]) + f"?token={calendar_token(rota)}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class AssignmentSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=Tier.choices)
    user = serializers.IntegerField(source="user.pk")
    user_name = serializers.SerializerMethodField()
    since = serializers.DateTimeField(allow_null=True, help_text="Null: over 35 days ago.")
    until = serializers.DateTimeField(allow_null=True, help_text="Null: not within 400 days.")
    is_override = serializers.BooleanField()

    def get_user_name(self, assignment: Assignment) -> str | None:
        return _person(assignment.user)


class HandoverSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    tier = serializers.ChoiceField(choices=Tier.choices)
    user = serializers.IntegerField(source="user.pk", allow_null=True, default=None)
    user_name = serializers.SerializerMethodField()
    previous_user = serializers.IntegerField(
        source="previous_user.pk", allow_null=True, default=None
    )
    is_override = serializers.BooleanField()

    def get_user_name(self, handover: Handover) -> str | None:
        return _person(handover.user)


class OnCallSerializer(serializers.Serializer):
    rota = serializers.IntegerField(source="rota.pk")
    at = serializers.DateTimeField()
    primary = AssignmentSerializer(allow_null=True)
    secondary = AssignmentSerializer(allow_null=True)
    next = HandoverSerializer(many=True, help_text="The next hand-overs after ``at``.")


class OnCallQuerySerializer(serializers.Serializer):
    at = RotaInstantField(
        required=False, help_text="ISO 8601 instant (read as UTC without an offset); default now."
    )
    next = serializers.IntegerField(
        required=False, default=5, min_value=0, max_value=50, help_text="Hand-overs to list."
    )


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
        "example": "08:00:00",
    }
)
class WallClockTimeField(serializers.TimeField):
    """A local wall-clock time with no offset ("08:00:00"); the schema's "time" format would
    demand an offset (RFC 3339), which a rota's time in its agency's zone does not have."""


class ShiftSerializer(serializers.ModelSerializer):
    start_time = WallClockTimeField(
        read_only=True, help_text="Local wall-clock time each occurrence starts."
    )
    user_name = serializers.SerializerMethodField()
    first_starts_at = serializers.SerializerMethodField()
    first_ends_at = serializers.SerializerMethodField()

    class Meta:
        model = Shift
        fields = [
            "id",
            "rota",
            "tier",
            "user",
            "user_name",
            "start_date",
            "start_time",
            "duration",
            "recurrence",
            "interval",
            "repeat_until",
            "note",
            "first_starts_at",
            "first_ends_at",
        ]
        read_only_fields = fields

    def get_user_name(self, shift: Shift) -> str | None:
        return _person(shift.user)

    def get_first_starts_at(self, shift: Shift) -> datetime:
        return wall_clock_instants(shift)[0]

    def get_first_ends_at(self, shift: Shift) -> datetime:
        return wall_clock_instants(shift)[1]


class ShiftInputSerializer(serializers.Serializer):
    user = VisibleRelatedField(queryset=User.objects.all(), help_text="Who is on duty.")
    tier = serializers.ChoiceField(choices=Tier.choices, default=Tier.PRIMARY)
    starts_at = RotaInstantField(help_text="First start, read on the city's wall clock.")
    ends_at = RotaInstantField(help_text="First end; the wall-clock length repeats.")
    recurrence = serializers.ChoiceField(choices=Recurrence.choices, default=Recurrence.ONCE)
    interval = serializers.IntegerField(default=1, min_value=1, max_value=52)
    repeat_until = serializers.DateField(required=False, allow_null=True, default=None)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class OverrideSerializer(serializers.ModelSerializer):
    user_name = serializers.SerializerMethodField()

    class Meta:
        model = RotaOverride
        fields = ["id", "rota", "tier", "user", "user_name", "starts_at", "ends_at", "reason"]
        read_only_fields = fields

    def get_user_name(self, override: RotaOverride) -> str | None:
        return _person(override.user)


class OverrideInputSerializer(serializers.Serializer):
    user = VisibleRelatedField(queryset=User.objects.all(), help_text="Who covers.")
    tier = serializers.ChoiceField(choices=Tier.choices, default=Tier.PRIMARY)
    starts_at = RotaInstantField()
    ends_at = RotaInstantField()
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ContactMethodSerializer(serializers.ModelSerializer):
    has_signing_secret = serializers.SerializerMethodField()

    class Meta:
        model = ContactMethod
        fields = ["id", "kind", "address", "label", "is_active", "has_signing_secret", "created_at"]
        read_only_fields = fields

    def get_has_signing_secret(self, method: ContactMethod) -> bool:
        return bool(method.signing_secret)


class ContactMethodSecretSerializer(ContactMethodSerializer):
    """Shown once, when a webhook is added or its secret replaced: the HMAC-SHA256 key."""

    class Meta(ContactMethodSerializer.Meta):
        fields = [*ContactMethodSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields


class ContactMethodInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ContactKind.choices)
    address = serializers.CharField(max_length=2000)
    label = serializers.CharField(  # type: ignore[assignment]
        max_length=60, required=False, allow_blank=True, default=""
    )


class ContactMethodForUserInputSerializer(ContactMethodInputSerializer):
    user = VisibleRelatedField(queryset=User.objects.all(), help_text="Whose method this is.")


class ContactMethodWithOwnerSerializer(ContactMethodSerializer):
    class Meta(ContactMethodSerializer.Meta):
        fields = ["id", "user", *ContactMethodSerializer.Meta.fields[1:]]
        read_only_fields = fields


class ContactMethodPatchSerializer(serializers.Serializer):
    label = serializers.CharField(  # type: ignore[assignment]
        max_length=60, required=False, allow_blank=True
    )
    is_active = serializers.BooleanField(required=False)


class EscalationStepSerializer(serializers.ModelSerializer):
    group_name = serializers.CharField(
        source="group.name", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = EscalationStep
        fields = ["position", "target", "group", "group_name", "wait_minutes"]
        read_only_fields = fields


class EscalationPolicySerializer(serializers.ModelSerializer):
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    steps = EscalationStepSerializer(many=True, read_only=True)

    class Meta:
        model = EscalationPolicy
        fields = [
            "id",
            "agency",
            "agency_name",
            "name",
            "rota",
            "repeat_count",
            "is_default",
            "steps",
        ]
        read_only_fields = fields


class ResponderGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = ResponderGroup
        fields = ["id", "agency", "name", "description", "members"]
        read_only_fields = fields


# ================================================================================================
# Activation alerting
# ================================================================================================


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


class ActivationCreateSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=MESSAGE_MAX_LENGTH)
    agencies = VisibleRelatedField(
        queryset=Agency.objects.all(), many=True, help_text="The agencies to call."
    )
    urgency = serializers.ChoiceField(choices=Urgency.choices, default=Urgency.IMMEDIATE)
    quorum = serializers.ChoiceField(choices=Quorum.choices, default=Quorum.EACH_AGENCY)
    quorum_per_agency = serializers.IntegerField(min_value=1, max_value=50, default=1)
    response_deadline = InstantField(
        required=False, help_text="When answers are needed by; default: in 30 minutes."
    )
    incident = VisibleRelatedField(queryset=Incident.objects.all(), required=False, allow_null=True)
    is_exercise = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Default: the incident's flag."
    )

    def validate_agencies(self, value: list[Agency]) -> list[Agency]:
        if not value:
            raise serializers.ValidationError("Choose at least one agency to call.")
        return value


class AnswerSerializer(serializers.Serializer):
    response = serializers.ChoiceField(choices=Response.choices)
    eta_minutes = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_ETA_MINUTES
    )


class SmsReceiptSerializer(serializers.Serializer):
    idempotency_key = serializers.UUIDField(help_text="The key our message carried.")
    status = serializers.ChoiceField(choices=["delivered", "failed"])
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class TargetSerializer(serializers.ModelSerializer):
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    policy_name = serializers.CharField(source="policy.name", default=None, read_only=True)

    class Meta:
        model = ActivationTarget
        fields = [
            "id",
            "agency",
            "agency_name",
            "policy_name",
            "state",
            "round",
            "steps_taken",
            "next_step_at",
            "satisfied_at",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    """One notification on the board: who, through what, and how long each stage took."""

    agency = serializers.IntegerField(source="target.agency_id", read_only=True)
    recipient_name = serializers.SerializerMethodField()
    seconds_to_sent = serializers.SerializerMethodField()
    seconds_to_delivered = serializers.SerializerMethodField()
    seconds_to_acknowledged = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "activation",
            "target",
            "agency",
            "recipient",
            "recipient_name",
            "channel",
            "step",
            "round",
            "state",
            "failure_reason",
            "attempts",
            "created_at",
            "sent_at",
            "delivered_at",
            "acknowledged_at",
            "failed_at",
            "seconds_to_sent",
            "seconds_to_delivered",
            "seconds_to_acknowledged",
        ]
        read_only_fields = fields

    def get_recipient_name(self, notification: Notification) -> str:
        return str(notification.recipient)

    def get_seconds_to_sent(self, notification: Notification) -> float | None:
        return _seconds_between(notification.created_at, notification.sent_at)

    def get_seconds_to_delivered(self, notification: Notification) -> float | None:
        return _seconds_between(notification.created_at, notification.delivered_at)

    def get_seconds_to_acknowledged(self, notification: Notification) -> float | None:
        return _seconds_between(notification.created_at, notification.acknowledged_at)


class AlertSerializer(NotificationSerializer):
    """One of the caller's own in-app alerts, with what it says (for the alerts toast)."""

    title = serializers.SerializerMethodField()
    message = serializers.CharField(source="activation.message", read_only=True)
    is_exercise = serializers.BooleanField(source="activation.is_exercise", read_only=True)
    urgency = serializers.CharField(source="activation.urgency", read_only=True)

    class Meta(NotificationSerializer.Meta):
        fields = [*NotificationSerializer.Meta.fields, "title", "message", "is_exercise", "urgency"]
        read_only_fields = fields

    def get_title(self, notification: Notification) -> str:
        activation = notification.activation
        exercise = "EXERCISE EXERCISE EXERCISE. " if activation.is_exercise else ""
        return f"{exercise}Activation ({activation.get_urgency_display().upper()})"


class AcknowledgementSerializer(serializers.ModelSerializer):
    user_name = serializers.SerializerMethodField()
    agency = serializers.IntegerField(source="target.agency_id", read_only=True)
    summary = serializers.CharField(source="describe", read_only=True)
    seconds_after_activation = serializers.SerializerMethodField()

    class Meta:
        model = Acknowledgement
        fields = [
            "id",
            "activation",
            "user",
            "user_name",
            "agency",
            "response",
            "eta_minutes",
            "summary",
            "via",
            "created_at",
            "seconds_after_activation",
        ]
        read_only_fields = fields

    def get_user_name(self, answer: Acknowledgement) -> str:
        return str(answer.user)

    def get_seconds_after_activation(self, answer: Acknowledgement) -> float | None:
        return _seconds_between(answer.activation.created_at, answer.created_at)


class ActivationSerializer(serializers.ModelSerializer):
    incident_reference = serializers.CharField(
        source="incident.reference", default=None, read_only=True
    )
    created_by_name = serializers.SerializerMethodField()
    targets = TargetSerializer(many=True, read_only=True)

    class Meta:
        model = Activation
        fields = [
            "id",
            "message",
            "urgency",
            "is_exercise",
            "quorum",
            "quorum_per_agency",
            "response_deadline",
            "status",
            "incident",
            "incident_reference",
            "created_by",
            "created_by_name",
            "created_at",
            "completed_at",
            "cancelled_at",
            "targets",
        ]
        read_only_fields = fields

    def get_created_by_name(self, activation: Activation) -> str:
        return str(activation.created_by)


class ActivationBoardSerializer(ActivationSerializer):
    """The live board: the activation with every notification and answer."""

    notifications = serializers.SerializerMethodField()
    acknowledgements = serializers.SerializerMethodField()

    class Meta(ActivationSerializer.Meta):
        fields = [*ActivationSerializer.Meta.fields, "notifications", "acknowledgements"]
        read_only_fields = fields

    def get_notifications(self, activation: Activation) -> list[dict[str, Any]]:
        rows = notification_rows(activation.pk)
        return list(NotificationSerializer(rows, many=True).data)

    def get_acknowledgements(self, activation: Activation) -> list[dict[str, Any]]:
        return list(AcknowledgementSerializer(answer_rows(activation.pk), many=True).data)


def activation_rows():
    return Activation.objects.select_related("incident", "created_by").prefetch_related(
        "targets__agency", "targets__policy"
    )


def notification_rows(activation_id: int):
    return (
        Notification.objects.filter(activation_id=activation_id)
        .select_related("recipient", "target")
        .order_by("target__agency__short_name", "recipient__username", "id")
    )


def answer_rows(activation_id: int):
    return (
        Acknowledgement.objects.filter(activation_id=activation_id)
        .select_related("user", "target", "activation")
        .order_by("created_at")
    )


def board_messages(
    *, activation_id: int, notification_ids: list[int], rows_only: bool = False
) -> dict[str, Any]:
    """The live message for a change: the changed notifications (every one when
    ``notification_ids`` is empty) and, unless ``rows_only`` (a delivery, which changes nothing
    else), the activation with its targets and every answer. Clients upsert rows by id."""
    rows = notification_rows(activation_id)
    if notification_ids:
        rows = rows.filter(pk__in=notification_ids)
    message: dict[str, Any] = {
        "type": "activation.board",
        "id": activation_id,
        "notifications": list(NotificationSerializer(rows, many=True).data),
        "complete": not notification_ids,
    }
    if not rows_only:
        message["activation"] = dict(
            ActivationSerializer(activation_rows().get(pk=activation_id)).data
        )
        message["acknowledgements"] = list(
            AcknowledgementSerializer(answer_rows(activation_id), many=True).data
        )
    return message


# --- Public statements and situation briefs -------------------------------------------------------


class StatementVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    headline = serializers.CharField(read_only=True)
    body = serializers.CharField(read_only=True)
    created_by = serializers.IntegerField(source="created_by_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class StatementReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    agency = serializers.IntegerField(source="agency_id", read_only=True)
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    reviewer = serializers.IntegerField(source="reviewer_id", read_only=True)
    decision = serializers.CharField(read_only=True)
    comment = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class StatementApprovalSerializer(serializers.Serializer):
    agency = serializers.IntegerField(source="agency.pk", read_only=True)
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    decision = serializers.CharField(
        read_only=True, allow_null=True, help_text="approved, changes_requested, or null."
    )


class PublicStatementSerializer(serializers.Serializer):
    """A statement with every version, every review, and where each named partner stands on the
    current version."""

    id = serializers.IntegerField(read_only=True)
    incident = serializers.IntegerField(source="incident_id", read_only=True)
    status = serializers.CharField(read_only=True)
    marking = serializers.CharField(read_only=True)
    owner_agency = serializers.IntegerField(source="owner_agency_id", read_only=True)
    author = serializers.IntegerField(source="author_id", read_only=True)
    approver_agencies = serializers.SerializerMethodField()
    current_version = StatementVersionSerializer(read_only=True)
    versions = StatementVersionSerializer(many=True, read_only=True)
    reviews = StatementReviewSerializer(many=True, read_only=True)
    approvals = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    published_at = serializers.DateTimeField(read_only=True, allow_null=True)
    published_by = serializers.IntegerField(
        source="published_by_id", read_only=True, allow_null=True
    )
    superseded_at = serializers.DateTimeField(read_only=True, allow_null=True)
    superseded_by = serializers.IntegerField(
        source="superseded_by_id", read_only=True, allow_null=True
    )
    withdrawn_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def get_approver_agencies(self, statement) -> list[int]:
        return sorted(a.pk for a in statement.approver_agencies.all())

    @extend_schema_field(StatementApprovalSerializer(many=True))
    def get_approvals(self, statement) -> Any:
        from .statements import statement_approvals

        return StatementApprovalSerializer(statement_approvals(statement), many=True).data


class StatementDraftInputSerializer(serializers.Serializer):
    headline = serializers.CharField(max_length=200)
    body = serializers.CharField(max_length=10_000)
    approver_agencies = VisibleRelatedField(
        queryset=Agency.objects.all(),
        many=True,
        required=False,
        help_text="Partner agencies (taking part in the incident) whose approval it needs.",
    )
    marking = serializers.ChoiceField(
        choices=list(STATEMENT_MARKINGS),
        required=False,
        help_text="The draft's marking (default AMBER); a published statement is CLEAR.",
    )


class StatementReviseInputSerializer(serializers.Serializer):
    headline = serializers.CharField(max_length=200)
    body = serializers.CharField(max_length=10_000)


class StatementReviewInputSerializer(serializers.Serializer):
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=5_000, help_text="Required to request changes."
    )


class BriefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    incident = serializers.IntegerField(source="incident_id", read_only=True)
    number = serializers.IntegerField(read_only=True, allow_null=True)
    status = serializers.CharField(read_only=True)
    as_of = serializers.DateTimeField(read_only=True)
    marking = serializers.CharField(read_only=True)
    author = serializers.IntegerField(source="author_id", read_only=True)
    author_agency = serializers.IntegerField(source="author_agency_id", read_only=True)
    previous = serializers.IntegerField(source="previous_id", read_only=True, allow_null=True)
    information = serializers.CharField(read_only=True)
    intent = serializers.CharField(read_only=True)
    method = serializers.CharField(read_only=True)
    administration = serializers.CharField(read_only=True)
    risk_assessment = serializers.CharField(read_only=True)
    communications = serializers.CharField(read_only=True)
    humanitarian = serializers.CharField(read_only=True)
    content = serializers.JSONField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    issued_at = serializers.DateTimeField(read_only=True, allow_null=True)
    issued_by = serializers.IntegerField(source="issued_by_id", read_only=True, allow_null=True)


class BriefGenerateInputSerializer(serializers.Serializer):
    as_of = InstantField(required=False, help_text="The instant to describe (default: now).")
    marking = serializers.ChoiceField(choices=list(STATEMENT_MARKINGS), required=False)
    administration = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    humanitarian = serializers.CharField(required=False, allow_blank=True, max_length=20_000)


class BriefUpdateInputSerializer(serializers.Serializer):
    information = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    intent = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    method = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    administration = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    risk_assessment = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    communications = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    humanitarian = serializers.CharField(required=False, allow_blank=True, max_length=20_000)


class BriefChangeSectionSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField(source="label")
    before = serializers.CharField()
    after = serializers.CharField()


class BriefChangesSerializer(serializers.Serializer):
    """What changed since the previous issued brief."""

    previous = serializers.IntegerField(source="previous.pk", allow_null=True, default=None)
    new_decisions = serializers.ListField(child=serializers.DictField())
    ended_decisions = serializers.ListField(child=serializers.DictField())
    methane_changes = serializers.ListField(child=serializers.DictField())
    actions_opened = serializers.ListField(child=serializers.DictField())
    actions_closed = serializers.ListField(child=serializers.DictField())
    timeline = serializers.ListField(child=serializers.DictField())
    statement_changed = serializers.BooleanField()
    statement = serializers.DictField(allow_null=True)
    sections = BriefChangeSectionSerializer(many=True)


# ================================================================================================
# Exercises
# ================================================================================================


class InjectContentSerializer(serializers.Serializer):
    """The fields an inject's content may carry; which ones a kind needs, and their values, are
    checked by the service (``comms.exercises``), which names the inject and field at fault."""

    major_incident_declared = serializers.BooleanField(required=False)
    exact_location = serializers.CharField(required=False, allow_blank=True)
    incident_type = serializers.CharField(required=False, allow_blank=True)
    hazards = serializers.CharField(required=False, allow_blank=True)
    access = serializers.CharField(required=False, allow_blank=True)
    casualties_fatal = serializers.IntegerField(required=False, allow_null=True)
    casualties_p1 = serializers.IntegerField(required=False, allow_null=True)
    casualties_p2 = serializers.IntegerField(required=False, allow_null=True)
    casualties_p3 = serializers.IntegerField(required=False, allow_null=True)
    casualties_notes = serializers.CharField(required=False, allow_blank=True)
    emergency_services_present = serializers.CharField(required=False, allow_blank=True)
    emergency_services_required = serializers.CharField(required=False, allow_blank=True)
    text = serializers.CharField(required=False, allow_blank=True)
    category = serializers.CharField(required=False, allow_blank=True)
    sender = serializers.CharField(required=False, allow_blank=True)
    message = serializers.CharField(required=False, allow_blank=True)
    urgency = serializers.CharField(required=False, allow_blank=True)
    agencies = serializers.ListField(child=serializers.CharField(), required=False)


class ScenarioInjectSerializer(serializers.Serializer):
    """One timed inject. ``content`` by kind: ``methane``: the M/ETHANE fields
    (``major_incident_declared``, ``exact_location``, ``incident_type``, ``hazards``,
    ``access``, ``casualties_fatal``/``_p1``/``_p2``/``_p3``, ``casualties_notes``,
    ``emergency_services_present``, ``emergency_services_required``); ``timeline``: ``text``,
    ``category``; ``message``: ``text``, ``sender``; ``activation``: ``message``, ``urgency``,
    ``agencies`` (short names; empty: every participating agency)."""

    offset_seconds = serializers.IntegerField(min_value=0)
    kind = serializers.ChoiceField(choices=InjectKind.choices)
    title = serializers.CharField(max_length=200)
    content = InjectContentSerializer(required=False)


class ScenarioSerializer(serializers.ModelSerializer):
    builtin_key = serializers.CharField(read_only=True, help_text="Empty for a city's own.")
    injects = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Scenario
        fields = [
            "id",
            "city",
            "name",
            "description",
            "incident_title",
            "incident_type",
            "incident_level",
            "location_description",
            "builtin_key",
            "duration_seconds",
            "injects",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ScenarioInjectSerializer(many=True))
    def get_injects(self, scenario: Scenario) -> list[dict[str, Any]]:
        return [
            {
                "offset_seconds": inject.offset_seconds,
                "kind": inject.kind,
                "title": inject.title,
                "content": inject.content,
            }
            for inject in scenario.injects.all()
        ]

    def get_duration_seconds(self, scenario: Scenario) -> int:
        return max((inject.offset_seconds for inject in scenario.injects.all()), default=0)


class ScenarioInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    incident_title = serializers.CharField(max_length=200)
    incident_type = serializers.ChoiceField(
        choices=IncidentType.choices, default=IncidentType.MARAUDING_TERRORIST_ATTACK
    )
    incident_level = serializers.ChoiceField(
        choices=IncidentLevel.choices, default=IncidentLevel.LEVEL_3
    )
    location_description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )
    injects = ScenarioInjectSerializer(many=True, allow_empty=True)

    def validate_injects(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**inject, "content": dict(inject.get("content") or {})} for inject in value]


class ExerciseInjectSerializer(serializers.ModelSerializer):
    content = InjectContentSerializer(read_only=True)

    class Meta:
        model = ExerciseInject
        fields = [
            "id",
            "position",
            "offset_seconds",
            "kind",
            "title",
            "content",
            "state",
            "due_at",
            "released_at",
            "failure_reason",
            "event_seq",
        ]
        read_only_fields = fields


class ExerciseRunSerializer(serializers.ModelSerializer):
    is_exercise = serializers.SerializerMethodField()
    incident_reference = serializers.CharField(source="incident.reference", read_only=True)
    scenario_name = serializers.CharField(source="scenario.name", read_only=True)
    director_name = serializers.CharField(source="director.__str__", read_only=True)
    allowed_controls = serializers.ListField(child=serializers.CharField(), read_only=True)
    injects = serializers.SerializerMethodField()

    class Meta:
        model = ExerciseRun
        fields = [
            "id",
            "is_exercise",
            "incident",
            "incident_reference",
            "scenario",
            "scenario_name",
            "director",
            "director_name",
            "status",
            "allowed_controls",
            "created_at",
            "started_at",
            "paused_at",
            "paused_total",
            "ended_at",
            "injects",
        ]
        read_only_fields = fields

    def get_is_exercise(self, run: ExerciseRun) -> bool:
        return True

    @extend_schema_field(ExerciseInjectSerializer(many=True))
    def get_injects(self, run: ExerciseRun) -> list[dict[str, Any]]:
        # Players see what was released; directing staff the whole script (the access rule).
        request = self.context.get("request")
        injects = ExerciseInject.objects.filter(run=run)
        if request is not None:
            injects = ExerciseInject.objects.visible_to(request.user).filter(run=run)
        return list(ExerciseInjectSerializer(injects.order_by("position"), many=True).data)


class ExerciseCreateSerializer(serializers.Serializer):
    scenario = VisibleRelatedField(queryset=Scenario.objects.all())
    participating_agencies = VisibleRelatedField(
        queryset=Agency.objects.all(), many=True, required=False
    )
    lead_agency = VisibleRelatedField(queryset=Agency.objects.all(), required=False, default=None)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
