"""API representations of activation alerting. Input serializers check shape; services decide.

The activation board (API, page and the live topic ``activation:<id>``) is built here, so all
three show the same rows the same way.
"""

from datetime import datetime
from typing import Any

from rest_framework import serializers

from coordination.models import Agency
from coordination.serializers import InstantField, VisibleRelatedField
from incidents.models import Incident

from .models import (
    Acknowledgement,
    Activation,
    ActivationTarget,
    Notification,
    Quorum,
    Response,
    Urgency,
)
from .services import MAX_ETA_MINUTES, MESSAGE_MAX_LENGTH


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
