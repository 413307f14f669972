"""API representations of incidents, M/ETHANE reports, the timeline and the event stream."""

from rest_framework import serializers

from coordination.markings import DEFAULT_MARKING, Marking
from coordination.models import Agency, User
from coordination.serializers import (
    InstantField,
    RecipientsMixin,
    VisibleRelatedField,
    recipient_fields,
)

from .models import (
    Incident,
    IncidentEvent,
    IncidentLevel,
    IncidentStatus,
    IncidentType,
    MethaneReport,
    TimelineCategory,
    TimelineEntry,
)


class IncidentSerializer(serializers.ModelSerializer):
    lead_agency_name = serializers.CharField(source="lead_agency.short_name", read_only=True)
    neutral_commander_name = serializers.CharField(
        source="neutral_commander.__str__", default=None, read_only=True
    )
    city_time_zone = serializers.CharField(source="city.time_zone", read_only=True)
    allowed_transitions = serializers.ListField(child=serializers.CharField(), read_only=True)
    participating_agencies = serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(read_only=True), read_only=True
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "reference",
            "title",
            "type",
            "level",
            "status",
            "allowed_transitions",
            "is_exercise",
            "latitude",
            "longitude",
            "location_description",
            "city",
            "city_time_zone",
            "lead_agency",
            "lead_agency_name",
            "neutral_commander",
            "neutral_commander_name",
            "participating_agencies",
            "opened_at",
            "closed_at",
            "updated_at",
            "last_event_seq",
        ]
        read_only_fields = fields


class IncidentCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=IncidentType.choices)
    level = serializers.ChoiceField(choices=IncidentLevel.choices)
    lead_agency = VisibleRelatedField(queryset=Agency.objects.all())
    participating_agencies = VisibleRelatedField(
        queryset=Agency.objects.all(), many=True, required=False
    )
    neutral_commander = VisibleRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True
    )
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, default=None
    )
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, default=None
    )
    location_description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )
    is_exercise = serializers.BooleanField(default=False)
    opened_at = InstantField(required=False, allow_null=True, default=None)


class TransitionSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=IncidentStatus.choices)


class MethaneReportSerializer(RecipientsMixin, serializers.ModelSerializer):
    submitted_by_name = serializers.CharField(source="submitted_by.__str__", read_only=True)
    submitted_agency_name = serializers.CharField(
        source="submitted_agency.short_name", read_only=True
    )
    superseded_by = serializers.SerializerMethodField()

    class Meta:
        model = MethaneReport
        fields = [
            "id",
            "incident",
            "version",
            "supersedes",
            "superseded_by",
            "major_incident_declared",
            "exact_location",
            "latitude",
            "longitude",
            "incident_type",
            "hazards",
            "access",
            "casualties_fatal",
            "casualties_p1",
            "casualties_p2",
            "casualties_p3",
            "casualties_notes",
            "emergency_services_present",
            "emergency_services_required",
            "submitted_by",
            "submitted_by_name",
            "submitted_agency",
            "submitted_agency_name",
            "submitted_at",
            "marking",
            "recipient_agencies",
            "recipient_people",
        ]
        read_only_fields = fields

    def get_superseded_by(self, report: MethaneReport) -> int | None:
        try:
            return report.superseded_by.pk
        except MethaneReport.superseded_by.RelatedObjectDoesNotExist:
            return None


class CasualtyCountField(serializers.IntegerField):
    """A number of casualties. Bounded by what the column holds: past it the database would
    refuse the row with an error instead of a 400 naming the field."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2_147_483_647)  # PositiveIntegerField on PostgreSQL
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


class MethaneInputSerializer(serializers.Serializer):
    major_incident_declared = serializers.BooleanField()
    exact_location = serializers.CharField()
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, default=None
    )
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, default=None
    )
    incident_type = serializers.CharField()
    hazards = serializers.CharField()
    access = serializers.CharField()
    casualties_fatal = CasualtyCountField()
    casualties_p1 = CasualtyCountField()
    casualties_p2 = CasualtyCountField()
    casualties_p3 = CasualtyCountField()
    casualties_notes = serializers.CharField(required=False, allow_blank=True, default="")
    emergency_services_present = serializers.CharField()
    emergency_services_required = serializers.CharField()
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()


class TimelineEntrySerializer(RecipientsMixin, serializers.ModelSerializer):
    author_name = serializers.CharField(source="author.__str__", read_only=True)
    author_agency_name = serializers.CharField(source="author_agency.short_name", read_only=True)

    class Meta:
        model = TimelineEntry
        fields = [
            "id",
            "incident",
            "occurred_at",
            "recorded_at",
            "category",
            "text",
            "author",
            "author_name",
            "author_agency",
            "author_agency_name",
            "marking",
            "recipient_agencies",
            "recipient_people",
        ]
        read_only_fields = fields


class TimelineInputSerializer(serializers.Serializer):
    text = serializers.CharField()
    occurred_at = InstantField(required=False, allow_null=True, default=None)
    category = serializers.ChoiceField(
        choices=TimelineCategory.choices, default=TimelineCategory.SIGNIFICANT_EVENT
    )
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()


class IncidentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = IncidentEvent
        fields = [
            "seq",
            "incident",
            "kind",
            "subject_type",
            "subject_id",
            "marking",
            "actor",
            "created_at",
            "payload",
        ]
        read_only_fields = fields
