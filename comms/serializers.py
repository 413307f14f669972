"""API representations of the comms app. Input serializers check shape; services decide.

Rota part: rotas, who is on call, shifts, cover, contact methods, escalation policies.
"""

from datetime import datetime

from django.urls import reverse
from rest_framework import serializers

from coordination.models import User
from coordination.serializers import InstantField, VisibleRelatedField

from .ical import calendar_token
from .models import (
    LATEST_INSTANT,
    ContactKind,
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    Recurrence,
    ResponderGroup,
    Rota,
    RotaOverride,
    Shift,
    Tier,
)
from .rotas import Assignment, Handover, wall_clock_instants


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


class ShiftSerializer(serializers.ModelSerializer):
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
    group_name = serializers.CharField(source="group.name", default=None, read_only=True)

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
