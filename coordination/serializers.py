"""API representations of the coordination app. Input serializers check shape; services decide."""

from django.db import models
from rest_framework import serializers

from .markings import DEFAULT_MARKING, Marking
from .models import (
    Action,
    ActionStatus,
    Agency,
    AgencyType,
    AgendaItem,
    Attendance,
    Debrief,
    Decision,
    DecisionPosition,
    Lesson,
    LessonStatus,
    LessonTransition,
    Meeting,
    MeetingAttendee,
    MeetingStatus,
    Observation,
    ObservationCategory,
    Stance,
    User,
)
from .roles import Capability, Role, user_can
from .validation import EARLIEST_INSTANT


def _incidents_queryset():
    from incidents.models import Incident

    return Incident.objects.all()


def recipient_fields() -> dict[str, serializers.Field]:
    """Input fields naming who may read a restricted item, checked by the service."""
    return {
        "recipient_agencies": VisibleRelatedField(
            queryset=Agency.objects.all(),
            many=True,
            required=False,
            help_text="AMBER+STRICT: the agencies that may read it besides the author's own.",
        ),
        "recipient_people": VisibleRelatedField(
            queryset=User.objects.all(),
            many=True,
            required=False,
            help_text="RED: the people who may read it besides the author.",
        ),
    }


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary key that resolves only among objects the requesting user may see.

    Anything else answers "does not exist", exactly like a missing id: no existence is revealed.
    """

    def get_queryset(self):
        user = self.context["request"].user
        return self.queryset.visible_to(user)


class InstantField(serializers.DateTimeField):
    """A moment in the life of an incident, as a client sends it.

    Times before 2000 are refused: none is plausible here, and the earliest ones cannot even be
    converted to the time zone of a city west of Greenwich (year 1 overflows), which would turn
    a typing slip into a server error.
    """

    def to_internal_value(self, value):
        instant = super().to_internal_value(value)
        if instant < EARLIEST_INSTANT:
            raise serializers.ValidationError("Must be in the year 2000 or later.")
        return instant


class AgencySerializer(serializers.ModelSerializer):
    class Meta:
        model = Agency
        fields = ["id", "city", "name", "short_name", "type", "is_active"]
        read_only_fields = fields


class AgencyCreateSerializer(serializers.Serializer):
    city = serializers.IntegerField(required=False, help_text="Defaults to your own city.")
    name = serializers.CharField(max_length=200)
    short_name = serializers.CharField(max_length=30)
    type = serializers.ChoiceField(choices=AgencyType.choices)


class UserSerializer(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()
    agency_name = serializers.CharField(source="agency.short_name", default=None, read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "phone",
            "agency",
            "agency_name",
            "roles",
            "is_active",
        ]
        read_only_fields = fields

    def get_roles(self, user: User) -> list[str]:
        return sorted(user.roles)


class MeSerializer(UserSerializer):
    city = serializers.SerializerMethodField()
    capabilities = serializers.SerializerMethodField()
    is_superuser = serializers.BooleanField(read_only=True)

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "city", "capabilities", "is_superuser"]
        read_only_fields = fields

    def get_city(self, user: User) -> int | None:
        return user.city_id

    def get_capabilities(self, user: User) -> list[str]:
        return [capability for capability in Capability.values if user_can(user, capability)]


def _max_length(name: str) -> int:
    field = User._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length
    return field.max_length


class UserCreateSerializer(serializers.Serializer):
    # Lengths and the username's characters as the model defines them: the service does not run
    # the model's field validators, and a value past a column's length would fail in the database.
    username = serializers.CharField(
        max_length=_max_length("username"), validators=[User.username_validator]
    )
    first_name = serializers.CharField(
        max_length=_max_length("first_name"), required=False, default=""
    )
    last_name = serializers.CharField(
        max_length=_max_length("last_name"), required=False, default=""
    )
    email = serializers.EmailField(max_length=_max_length("email"), required=False, default="")
    phone = serializers.CharField(max_length=_max_length("phone"), required=False, default="")
    agency = VisibleRelatedField(queryset=Agency.objects.all())
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices))
    password = serializers.CharField(
        write_only=True, required=False, style={"input_type": "password"}
    )


class DecisionPositionSerializer(serializers.ModelSerializer):
    """An agency's position on a decision. ``entry_hash`` is empty for a position recorded with
    the decision (the decision's hash covers it) and set for one recorded later."""

    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    recorded_by_name = serializers.CharField(
        source="recorded_by.__str__", default=None, read_only=True
    )

    class Meta:
        model = DecisionPosition
        fields = [
            "agency",
            "agency_name",
            "stance",
            "statement",
            "recorded_by",
            "recorded_by_name",
            "recorded_at",
            "prev_hash",
            "entry_hash",
        ]
        read_only_fields = fields


class DecisionPositionInputSerializer(serializers.Serializer):
    position = serializers.ChoiceField(
        choices=Stance.choices, help_text="Whether your agency agrees or dissents."
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Why your agency dissents (required for a dissent).",
    )


class OptionSerializer(serializers.Serializer):
    option = serializers.CharField()
    chosen = serializers.BooleanField(default=False)
    reason = serializers.CharField()


class RecipientsMixin(serializers.Serializer):
    """The marking in force and its recipient lists (agency and people ids)."""

    marking = serializers.SerializerMethodField()
    recipient_agencies = serializers.SerializerMethodField()
    recipient_people = serializers.SerializerMethodField()

    def get_marking(self, item) -> str:
        return item.current_audience().marking

    def get_recipient_agencies(self, item) -> list[int]:
        return list(item.current_audience().agencies)

    def get_recipient_people(self, item) -> list[int]:
        return list(item.current_audience().people)


class DecisionSerializer(RecipientsMixin, serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    options = OptionSerializer(many=True, read_only=True)
    author_name = serializers.CharField(source="author.__str__", read_only=True)
    author_agency_name = serializers.CharField(source="author_agency.short_name", read_only=True)
    superseded_by = serializers.SerializerMethodField()
    positions = DecisionPositionSerializer(many=True, read_only=True)
    recorded_marking = serializers.CharField(
        source="marking", read_only=True, help_text="The marking the entry was recorded with."
    )

    class Meta:
        model = Decision
        fields = [
            "id",
            "incident",
            "sequence",
            "label",
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
            "author",
            "author_name",
            "author_agency",
            "author_agency_name",
            "positions",
            "supersedes",
            "superseded_by",
            "marking",
            "recorded_marking",
            "recipient_agencies",
            "recipient_people",
            "prev_hash",
            "entry_hash",
            "meeting",
        ]
        read_only_fields = fields

    def get_superseded_by(self, decision: Decision) -> int | None:
        try:
            return decision.superseded_by.pk
        except Decision.superseded_by.RelatedObjectDoesNotExist:
            return None


class DissentSerializer(serializers.Serializer):
    agency = VisibleRelatedField(queryset=Agency.objects.all())
    statement = serializers.CharField()


class DecisionInputSerializer(serializers.Serializer):
    information = serializers.CharField(help_text="Information and intelligence.")
    threat_assessment = serializers.CharField(help_text="Threat and risk assessment.")
    working_strategy = serializers.CharField()
    powers_policies = serializers.CharField(help_text="Powers, policies and procedures.")
    options = OptionSerializer(many=True, allow_empty=False)
    decision = serializers.CharField()
    rationale = serializers.CharField()
    decided_at = InstantField()
    late_entry_reason = serializers.CharField(required=False, allow_blank=True, default="")
    review_by = InstantField(required=False, allow_null=True, default=None)
    agreed_by = VisibleRelatedField(queryset=Agency.objects.all(), many=True, required=False)
    dissents = DissentSerializer(many=True, required=False)
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()
    supersedes = VisibleRelatedField(
        queryset=Decision.objects.all(),
        required=False,
        allow_null=True,
        help_text="The entry this one corrects.",
    )
    meeting = VisibleRelatedField(
        queryset=Meeting.objects.all(),
        required=False,
        allow_null=True,
        help_text="The meeting of the strategic cell in which the decision was taken.",
    )


class ActionSerializer(RecipientsMixin, serializers.ModelSerializer):
    owner_agency_name = serializers.CharField(source="owner_agency.short_name", read_only=True)
    owner_name = serializers.CharField(source="owner.__str__", default=None, read_only=True)

    class Meta:
        model = Action
        fields = [
            "id",
            "incident",
            "title",
            "description",
            "owner_agency",
            "owner_agency_name",
            "owner",
            "owner_name",
            "due_at",
            "status",
            "decision",
            "meeting",
            "marking",
            "recipient_agencies",
            "recipient_people",
            "created_by",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class ActionInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner_agency = VisibleRelatedField(queryset=Agency.objects.all())
    owner = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    due_at = InstantField(required=False, allow_null=True)
    decision = VisibleRelatedField(queryset=Decision.objects.all(), required=False, allow_null=True)
    meeting = VisibleRelatedField(queryset=Meeting.objects.all(), required=False, allow_null=True)
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()


class MarkingChangeSerializer(serializers.Serializer):
    """A new marking for an item, with the recipients it names (as when recording one)."""

    marking = serializers.ChoiceField(choices=Marking.choices)
    recipient_agencies, recipient_people = recipient_fields().values()


class DecisionMarkingChangeSerializer(MarkingChangeSerializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why the marking changes."
    )


class ActionPatchSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ActionStatus.choices, required=False)
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    owner_agency = VisibleRelatedField(queryset=Agency.objects.all(), required=False)
    owner = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    due_at = InstantField(required=False, allow_null=True)


# --- debriefs and lessons -------------------------------------------------------------------------


class ObservationSerializer(serializers.ModelSerializer):
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)
    author_name = serializers.CharField(source="author.__str__", read_only=True)
    lesson = serializers.SerializerMethodField()

    class Meta:
        model = Observation
        fields = [
            "id",
            "debrief",
            "category",
            "text",
            "agency",
            "agency_name",
            "author",
            "author_name",
            "created_at",
            "lesson",
        ]
        read_only_fields = fields

    def get_lesson(self, observation: Observation) -> int | None:
        try:
            return observation.lesson.pk
        except Observation.lesson.RelatedObjectDoesNotExist:
            return None


class DebriefSerializer(serializers.ModelSerializer):
    is_exercise = serializers.BooleanField(source="incident.is_exercise", read_only=True)
    incident_reference = serializers.CharField(source="incident.reference", read_only=True)
    observations = ObservationSerializer(many=True, read_only=True)

    class Meta:
        model = Debrief
        fields = [
            "id",
            "incident",
            "incident_reference",
            "is_exercise",
            "title",
            "held_at",
            "facilitator",
            "agencies",
            "participants",
            "status",
            "created_by",
            "created_at",
            "closed_at",
            "closed_by",
            "observations",
        ]
        read_only_fields = fields


class DebriefInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    held_at = InstantField()
    facilitator = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    agencies = VisibleRelatedField(queryset=Agency.objects.all(), many=True, required=False)
    participants = VisibleRelatedField(queryset=User.objects.all(), many=True, required=False)


class ObservationInputSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=ObservationCategory.choices)
    text = serializers.CharField(max_length=20000)


class LessonFromObservationSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    owner_agency = VisibleRelatedField(
        queryset=Agency.objects.all(), required=False, allow_null=True, default=None
    )
    due_date = serializers.DateField(required=False, allow_null=True, default=None)


class LessonTransitionSerializer(serializers.ModelSerializer):
    by_name = serializers.CharField(source="by.__str__", default=None, read_only=True)
    by_agency_name = serializers.CharField(
        source="by_agency.short_name", default=None, read_only=True
    )

    class Meta:
        model = LessonTransition
        fields = ["from_status", "to_status", "note", "by", "by_name", "by_agency_name", "at"]
        read_only_fields = fields


class LessonSerializer(RecipientsMixin, serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    uuid = serializers.UUIDField(read_only=True)
    incident_reference = serializers.CharField(
        source="incident.reference", default=None, read_only=True
    )
    owner_agency_name = serializers.CharField(
        source="owner_agency.short_name", default=None, read_only=True
    )
    owner_name = serializers.CharField(source="owner.__str__", default=None, read_only=True)
    overdue = serializers.SerializerMethodField()
    allowed_transitions = serializers.SerializerMethodField()
    history = LessonTransitionSerializer(many=True, read_only=True)

    class Meta:
        model = Lesson
        fields = [
            "id",
            "uuid",
            "label",
            "city",
            "incident",
            "incident_reference",
            "is_exercise",
            "debrief",
            "observation",
            "source",
            "origin_city",
            "origin_deployment",
            "title",
            "description",
            "recommended_action",
            "owner_agency",
            "owner_agency_name",
            "owner",
            "owner_name",
            "due_date",
            "overdue",
            "status",
            "allowed_transitions",
            "not_accepted_reason",
            "marking",
            "recipient_agencies",
            "recipient_people",
            "shareable",
            "identified_on",
            "created_at",
            "updated_at",
            "history",
        ]
        read_only_fields = fields

    def get_overdue(self, lesson: Lesson) -> bool:
        from .lessons import city_today

        return lesson.is_overdue(city_today(lesson.city))

    def get_allowed_transitions(self, lesson: Lesson) -> list[str]:
        from .lessons import lesson_transitions

        return list(lesson_transitions(lesson.status))


class LessonInputSerializer(serializers.Serializer):
    incident = VisibleRelatedField(queryset=_incidents_queryset())
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=20000)
    recommended_action = serializers.CharField(
        max_length=20000, required=False, allow_blank=True, default=""
    )
    owner_agency = VisibleRelatedField(queryset=Agency.objects.all())
    owner = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    due_date = serializers.DateField(required=False, allow_null=True, default=None)
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()
    shareable = serializers.BooleanField(required=False, default=False)
    debrief = VisibleRelatedField(queryset=Debrief.objects.all(), required=False, allow_null=True)


class LessonPatchSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=20000, required=False)
    recommended_action = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    due_date = serializers.DateField(required=False, allow_null=True)
    shareable = serializers.BooleanField(required=False)
    marking = serializers.ChoiceField(choices=Marking.choices, required=False)


class LessonTransitionInputSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=LessonStatus.choices)
    note = serializers.CharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required when not accepting a lesson or sending an implemented one back.",
    )


class LessonAssignSerializer(serializers.Serializer):
    owner_agency = VisibleRelatedField(queryset=Agency.objects.all())
    owner = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    due_date = serializers.DateField(required=False, allow_null=True, default=None)
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    meeting = VisibleRelatedField(queryset=Meeting.objects.all(), required=False, allow_null=True)


class AgendaItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgendaItem
        fields = ["id", "position", "title", "notes", "minutes"]
        read_only_fields = fields


class MeetingAttendeeSerializer(serializers.ModelSerializer):
    person_name = serializers.CharField(source="person.__str__", read_only=True)
    agency_name = serializers.CharField(source="agency.short_name", read_only=True)

    class Meta:
        model = MeetingAttendee
        fields = ["id", "person", "person_name", "agency", "agency_name", "attendance"]
        read_only_fields = fields


class MeetingSerializer(RecipientsMixin, serializers.ModelSerializer):
    chair_name = serializers.SerializerMethodField()
    # Empty when the meeting is not virtual, so not documented as a URI.
    virtual_link = serializers.CharField(read_only=True, help_text="The call, if virtual.")
    agenda = AgendaItemSerializer(source="agenda_items", many=True, read_only=True)
    attendees = MeetingAttendeeSerializer(many=True, read_only=True)
    allowed_transitions = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Meeting
        fields = [
            "id",
            "incident",
            "title",
            "scheduled_at",
            "location",
            "virtual_link",
            "chair",
            "chair_name",
            "status",
            "allowed_transitions",
            "agenda",
            "attendees",
            "minutes",
            "marking",
            "recipient_agencies",
            "recipient_people",
            "created_by",
            "created_at",
            "updated_at",
            "started_at",
            "closed_at",
        ]
        read_only_fields = fields

    def get_chair_name(self, meeting: Meeting) -> str | None:
        return str(meeting.chair) if meeting.chair_id else None


class MeetingDetailSerializer(MeetingSerializer):
    """A meeting with the decisions and actions taken in it that the caller may read."""

    decisions = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(MeetingSerializer.Meta):
        fields = [*MeetingSerializer.Meta.fields, "decisions", "actions"]
        read_only_fields = fields

    def _reader(self):
        request = self.context.get("request")
        return getattr(request, "user", None)

    def get_decisions(self, meeting: Meeting) -> list[int]:
        return list(
            Decision.objects.visible_to(self._reader())
            .filter(meeting=meeting)
            .order_by("sequence")
            .values_list("pk", flat=True)
        )

    def get_actions(self, meeting: Meeting) -> list[int]:
        return list(
            Action.objects.visible_to(self._reader())
            .filter(meeting=meeting)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


class AgendaItemInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    # No default: an item given without minutes keeps those already taken against it.
    minutes = serializers.CharField(required=False, allow_blank=True)


class AttendeeInputSerializer(serializers.Serializer):
    person = VisibleRelatedField(queryset=User.objects.all())
    attendance = serializers.ChoiceField(choices=Attendance.choices, default=Attendance.EXPECTED)


class MeetingInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    scheduled_at = InstantField()
    location = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    virtual_link = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    chair = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    agenda = AgendaItemInputSerializer(many=True, required=False)
    attendees = AttendeeInputSerializer(many=True, required=False)
    marking = serializers.ChoiceField(choices=Marking.choices, default=DEFAULT_MARKING)
    recipient_agencies, recipient_people = recipient_fields().values()


class MeetingPatchSerializer(serializers.Serializer):
    """Changes to a meeting not yet closed. ``agenda`` and ``attendees`` replace the lists."""

    title = serializers.CharField(max_length=200, required=False)
    scheduled_at = InstantField(required=False)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    virtual_link = serializers.CharField(max_length=500, required=False, allow_blank=True)
    chair = VisibleRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    agenda = AgendaItemInputSerializer(many=True, required=False)
    attendees = AttendeeInputSerializer(many=True, required=False)
    minutes = serializers.CharField(required=False, allow_blank=True)
    agenda_minutes = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="Minutes per agenda item: item id to text.",
    )


class MeetingTransitionSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=MeetingStatus.choices)


class AttendanceRowSerializer(serializers.Serializer):
    attendee = serializers.IntegerField(help_text="The id of one of the meeting's attendees.")
    attendance = serializers.ChoiceField(choices=Attendance.choices)


class AttendanceInputSerializer(serializers.Serializer):
    attendance = AttendanceRowSerializer(many=True, allow_empty=False)
