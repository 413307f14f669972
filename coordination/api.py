"""REST endpoints for the directory (agencies, people), the decision log, actions, debriefs and
lessons."""

import hashlib
import json
from typing import Any

from django.contrib.auth import authenticate
from django.core.cache import cache
from django.db.models import Case, F, Q, Value, When
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import filters, mixins, parsers, serializers, status, views, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ctpn.api import validated
from ctpn.security import lockout_response
from ctpn.throttling import AnonRateThrottle, ScopedRateThrottle
from incidents.api import (
    INCIDENT_PATH_PARAMETER,
    RECIPIENTS_PREFETCH,
    IncidentScopedViewSet,
    restricted_read_audit,
)
from incidents.models import Incident

from .export_views import csv_response, pdf_response
from .lessons import (
    city_today,
    debrief_close,
    debrief_create,
    lesson_assign,
    lesson_create,
    lesson_from_observation,
    lesson_transition,
    lesson_update,
    lessons_export,
    lessons_import,
    observation_add,
)
from .markings import RESTRICTED
from .meetings import (
    meeting_attendance_record,
    meeting_marking_change,
    meeting_schedule,
    meeting_transition,
    meeting_update,
)
from .mfa import has_authenticator, mfa_required, second_factor_verify
from .models import (
    LESSON_OPEN_STATUSES,
    Action,
    Agency,
    City,
    Debrief,
    Decision,
    DecisionPosition,
    Lesson,
    LessonStatus,
    Meeting,
    User,
)
from .roles import Capability
from .serializers import (
    ActionInputSerializer,
    ActionPatchSerializer,
    ActionSerializer,
    AgencyCreateSerializer,
    AgencySerializer,
    AttendanceInputSerializer,
    DebriefInputSerializer,
    DebriefSerializer,
    DecisionInputSerializer,
    DecisionMarkingChangeSerializer,
    DecisionPositionInputSerializer,
    DecisionPositionSerializer,
    DecisionSerializer,
    LessonAssignSerializer,
    LessonFromObservationSerializer,
    LessonInputSerializer,
    LessonPatchSerializer,
    LessonSerializer,
    LessonTransitionInputSerializer,
    MarkingChangeSerializer,
    MeetingDetailSerializer,
    MeetingInputSerializer,
    MeetingPatchSerializer,
    MeetingTransitionSerializer,
    MeSerializer,
    ObservationInputSerializer,
    ObservationSerializer,
    UserCreateSerializer,
    UserSerializer,
)
from .services import (
    action_create,
    action_marking_change,
    action_update,
    agency_create,
    decision_log_verify,
    decision_marking_change,
    decision_position_record,
    decision_record,
    user_create,
    user_deactivate,
)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="A code from the account's authenticator app, or one of its backup codes. "
        "Required when the account has a second factor.",
    )


TokenSerializer = inline_serializer("Token", {"token": serializers.CharField()})


class TokenView(views.APIView):
    """Issue the API token of an integration account: ``Authorization: Token <key>``.

    An account with a second factor gives a code from it as ``otp`` (400 naming ``otp`` when it is
    missing or wrong; wrong codes count as failed sign-ins). An account that must have a second
    factor and has none is refused (403) until it sets one up in the browser. Throttled strictly
    per address; repeated failures lock the username and address out (429).
    """

    permission_classes = [AllowAny]
    # No session or token is looked at: a half-signed-in session must not stand in the way.
    authentication_classes: list = []
    # DRF's own token view turns throttling off; here it is on, with a strict rate of its own.
    throttle_classes = [AnonRateThrottle, ScopedRateThrottle]
    throttle_scope = "auth-token"
    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Bad credentials, or a missing or wrong ``otp``."),
            403: OpenApiResponse(description="The account must set up a second factor first."),
        },
    )
    def post(self, request):
        data = validated(TokenRequestSerializer, request)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request, None, {"username": data["username"]})
            raise serializers.ValidationError(
                {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        if has_authenticator(user):
            second_factor_verify(user=user, code=data.get("otp", ""), request=request, field="otp")
        elif mfa_required(user):
            raise PermissionDenied(
                "This account must set up two-factor authentication before it can have a token: "
                "sign in to the web application once to do so."
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(views.APIView):
    """The signed-in user, with roles and what they may do."""

    required_capabilities = {"get": Capability.VIEW}

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class AgencyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The agencies of the caller's city; administrators add them."""

    serializer_class = AgencySerializer
    filterset_fields = ["type", "is_active", "city"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.DIRECTORY_MANAGE,
    }

    def get_queryset(self):
        return Agency.objects.visible_to(self.request.user).order_by("name")

    @extend_schema(request=AgencyCreateSerializer, responses={201: AgencySerializer})
    def create(self, request):
        data = validated(AgencyCreateSerializer, request)
        city_id = data.pop("city", None) or request.user.city_id
        city = City.objects.filter(pk=city_id).first()
        if city is None:
            raise serializers.ValidationError({"city": ["Give the city of the new agency."]})
        agency = agency_create(user=request.user, city=city, **data)
        return Response(self.get_serializer(agency).data, status=status.HTTP_201_CREATED)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The people of the caller's city; administrators add them."""

    serializer_class = UserSerializer
    filterset_fields = ["agency", "is_active"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.DIRECTORY_MANAGE,
        "deactivate": Capability.DIRECTORY_MANAGE,
    }

    def get_queryset(self):
        return (
            User.objects.visible_to(self.request.user)
            .select_related("agency")
            .prefetch_related("role_assignments")
            .order_by("username")
        )

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request):
        data = validated(UserCreateSerializer, request)
        user = user_create(user=request.user, **data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=user.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={200: UserSerializer})
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        """Deactivate the person's account: they cannot sign in any more, and their sessions and
        API tokens end now (400 for your own account)."""
        target = self.get_object()
        user_deactivate(user=request.user, target=target, request=request)
        return Response(self.get_serializer(self.get_queryset().get(pk=target.pk)).data)


ChainReportSerializer = inline_serializer(
    "ChainReport",
    {
        "intact": serializers.BooleanField(),
        "entries": serializers.IntegerField(),
        "broken_at": serializers.IntegerField(allow_null=True),
        "broken_id": serializers.IntegerField(allow_null=True),
        "reason": serializers.CharField(),
        "last_hash": serializers.CharField(),
    },
)


# How long a served page of a decision log is kept (a newer event makes it unused anyway).
DECISION_PAGE_CACHE_SECONDS = 300


def rendered_content_type(renderer) -> str:
    """The Content-Type DRF's ``Response`` gives a body from this renderer."""
    if renderer.charset:
        return f"{renderer.media_type}; charset={renderer.charset}"
    return str(renderer.media_type)


def decision_page_key(
    *, incident_id: int, last_event_seq: int, user_id: int, agency_id: int | None, query: str
) -> str:
    digest = hashlib.sha256(query.encode("utf-8")).hexdigest()[:32]
    return f"decision-page:{incident_id}:{last_event_seq}:{user_id}:{agency_id}:{digest}"


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class DecisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """The incident's joint decision log, oldest first. Append-only: corrections supersede."""

    model = Decision
    serializer_class = DecisionSerializer
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["sequence"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "verify": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "positions": Capability.LOG_WRITE,
        "marking": Capability.LOG_WRITE,
    }

    def list(self, request, *args, **kwargs):
        """A page of the log, served from the cache when this reader has read it before.

        The log is append-only, and every change to an entry (a position, a marking change, a
        superseding entry) appends an incident event: a page is the same for as long as the
        incident's ``last_event_seq`` is. The key holds that number, the reader (their own
        need-to-know: never shared between people), the exact query and the media type asked
        for. The cache holds the page as sent (its bytes), so a second read is not serialized nor
        rendered again. Pages showing a RED or AMBER+STRICT entry are never cached, so that every
        read of one is audited.
        """
        incident = self.get_incident()
        key = None
        renderer = request.accepted_renderer
        if renderer.format == "json":
            key = decision_page_key(
                incident_id=incident.pk,
                last_event_seq=incident.last_event_seq,
                user_id=request.user.pk,
                agency_id=getattr(request.user, "agency_id", None),
                query=f"{request.accepted_media_type}\n{request.build_absolute_uri()}",
            )
            cached = cache.get(key)
            if cached is not None:
                return HttpResponse(cached, content_type=rendered_content_type(renderer))
        self._page_restricted = False
        response = super().list(request, *args, **kwargs)
        if key is not None and response.status_code == 200 and not self._page_restricted:
            content = renderer.render(
                response.data, request.accepted_media_type, self.get_renderer_context()
            )
            cache.set(key, content, DECISION_PAGE_CACHE_SECONDS)
        return response

    def get_serializer(self, *args, **kwargs):
        if args and kwargs.get("many"):
            self._page_restricted = any(
                (getattr(item, "marking_now", None) or item.marking) in RESTRICTED
                for item in args[0]
            )
        return super().get_serializer(*args, **kwargs)

    def item_queryset(self, queryset):
        return (
            queryset.select_related("author", "author_agency", "superseded_by")
            .prefetch_related(
                "positions__agency",
                *RECIPIENTS_PREFETCH,
                "marking_changes__recipient_agencies",
                "marking_changes__recipient_people",
            )
            .order_by("sequence")
        )

    @extend_schema(request=DecisionMarkingChangeSerializer, responses={200: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def marking(self, request, incident_pk=None, pk=None):
        """Raise or lower the decision's marking (the author's agency only; audited).

        The entry stays as recorded: a hash-chained marking change is appended, and the latest
        one is the marking in force.
        """
        entry = self.get_object()
        data = validated(DecisionMarkingChangeSerializer, request)
        decision_marking_change(decision_id=entry.pk, user=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=entry.pk)).data)

    @extend_schema(request=DecisionInputSerializer, responses={201: DecisionSerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(DecisionInputSerializer, request)
        data["dissents"] = [(d["agency"], d["statement"]) for d in data.get("dissents", [])]
        data["options"] = [dict(option) for option in data["options"]]
        # The incident is the URL's; the service refuses a `supersedes` from any other incident.
        entry = decision_record(incident_id=incident.pk, author=request.user, **data)
        return self.created(entry)

    @extend_schema(
        request=DecisionPositionInputSerializer, responses={201: DecisionPositionSerializer}
    )
    @action(detail=True, methods=["post"])
    def positions(self, request, incident_pk=None, pk=None):
        """Record that your agency agrees with, or dissents from, this decision (once).

        A second position of the same agency answers 409, as does a superseded decision.
        """
        entry = self.get_object()
        data = validated(DecisionPositionInputSerializer, request)
        position = decision_position_record(
            decision=entry, user=request.user, position=data["position"], reason=data["reason"]
        )
        position = DecisionPosition.objects.select_related("agency", "recorded_by").get(
            pk=position.pk
        )
        return Response(DecisionPositionSerializer(position).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ChainReportSerializer)
    @action(detail=False, methods=["get"])
    def verify(self, request, incident_pk=None):
        """Whether the incident's decision chain is intact, and where it first breaks."""
        incident = self.get_incident()
        report = decision_log_verify(incident_id=incident.pk)
        return Response(
            {
                "intact": report.intact,
                "entries": report.entries,
                "broken_at": report.broken_at,
                "broken_id": report.broken_id,
                "reason": report.reason,
                "last_hash": report.last_hash,
            }
        )


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class ActionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Actions of the incident, soonest due first."""

    model = Action
    serializer_class = ActionSerializer
    filterset_fields = ["status", "owner_agency"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "partial_update": Capability.LOG_WRITE,
        "marking": Capability.LOG_WRITE,
    }

    def item_queryset(self, queryset):
        return (
            queryset.select_related("owner_agency", "owner")
            .prefetch_related(*RECIPIENTS_PREFETCH)
            .order_by("due_at", "id")
        )

    @extend_schema(request=MarkingChangeSerializer, responses={200: ActionSerializer})
    @action(detail=True, methods=["post"])
    def marking(self, request, incident_pk=None, pk=None):
        """Raise or lower the action's marking (the creator's agency only; audited)."""
        action_obj = self.get_object()
        data = validated(MarkingChangeSerializer, request)
        action_marking_change(action_id=action_obj.pk, user=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=action_obj.pk)).data)

    @extend_schema(request=ActionInputSerializer, responses={201: ActionSerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(ActionInputSerializer, request)
        action_obj = action_create(incident_id=incident.pk, user=request.user, **data)
        return self.created(action_obj)

    @extend_schema(request=ActionPatchSerializer, responses={200: ActionSerializer})
    def partial_update(self, request, incident_pk=None, pk=None):
        action_obj = self.get_object()
        data = validated(ActionPatchSerializer, request)
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give at least one field to change."]}
            )
        action_update(action_id=action_obj.pk, user=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=action_obj.pk)).data)


# --- debriefs and lessons -------------------------------------------------------------------------

OBSERVATION_PATH_PARAMETER = OpenApiParameter(
    "observation_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The observation's id."
)


class RawJsonParser(parsers.JSONParser):
    """JSON whose fault is named like any other: a body that is not JSON answers 400 under
    ``$`` (the document's root), the path convention of the lesson exchange's errors."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.loads(stream.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise serializers.ValidationError({"$": [f"Not a JSON document: {error}"]}) from None


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class DebriefViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Joint debriefs of the incident (or exercise), newest first, with their observations."""

    model = Debrief
    serializer_class = DebriefSerializer
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LESSON_WRITE,
        "close": Capability.LESSON_WRITE,
        "observations": Capability.LESSON_WRITE,
        "observation_lesson": Capability.LESSON_WRITE,
    }

    def item_queryset(self, queryset):
        return queryset.select_related("incident").prefetch_related(
            "agencies",
            "participants",
            "observations__agency",
            "observations__author",
            "observations__lesson",
        )

    @extend_schema(request=DebriefInputSerializer, responses={201: DebriefSerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(DebriefInputSerializer, request)
        debrief = debrief_create(incident_id=incident.pk, user=request.user, **data)
        return self.created(debrief)

    @extend_schema(request=None, responses={200: DebriefSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, incident_pk=None, pk=None):
        """Close the debrief: it takes no further observations (409 when already closed)."""
        debrief = self.get_object()
        debrief_close(debrief_id=debrief.pk, user=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=debrief.pk)).data)

    @extend_schema(request=ObservationInputSerializer, responses={201: ObservationSerializer})
    @action(detail=True, methods=["post"])
    def observations(self, request, incident_pk=None, pk=None):
        """Record an observation of your agency: went well, did not go well, or other."""
        debrief = self.get_object()
        data = validated(ObservationInputSerializer, request)
        observation = observation_add(debrief_id=debrief.pk, user=request.user, **data)
        return Response(ObservationSerializer(observation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=LessonFromObservationSerializer,
        responses={201: LessonSerializer},
        parameters=[OBSERVATION_PATH_PARAMETER],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"observations/(?P<observation_id>[0-9]+)/lesson",
        url_name="observation-lesson",
    )
    def observation_lesson(self, request, incident_pk=None, pk=None, observation_id=None):
        """Make the observation a lesson identified (one click; 409 if it already is one)."""
        debrief = self.get_object()
        observation = get_object_or_404(debrief.observations.all(), pk=observation_id)
        data = validated(LessonFromObservationSerializer, request)
        lesson = lesson_from_observation(observation_id=observation.pk, user=request.user, **data)
        return Response(
            LessonSerializer(lessons_queryset(request.user).get(pk=lesson.pk)).data,
            status=status.HTTP_201_CREATED,
        )


def lessons_queryset(user):
    return (
        Lesson.objects.visible_to(user)
        .select_related("city", "incident", "owner_agency", "owner")
        .prefetch_related(*RECIPIENTS_PREFETCH, "history__by", "history__by_agency")
    )


class LessonFilterSerializer(serializers.Serializer):
    status = serializers.MultipleChoiceField(choices=LessonStatus.choices, required=False)
    owner_agency = serializers.IntegerField(required=False, min_value=1)
    incident = serializers.IntegerField(required=False, min_value=1)
    overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
    open = serializers.BooleanField(required=False, allow_null=True, default=None)


def lessons_filtered(user, params) -> tuple[Any, dict[str, Any]]:
    """Visible lessons under the filters, overdue first, then soonest due (no date last)."""
    serializer = LessonFilterSerializer(data=_filter_params(params))
    serializer.is_valid(raise_exception=True)
    filters = {k: v for k, v in serializer.validated_data.items() if v not in (None, set())}
    lessons = lessons_queryset(user)
    if user.city_id is not None:
        lessons = lessons.filter(city_id=user.city_id)
    if filters.get("status"):
        lessons = lessons.filter(status__in=filters["status"])
    elif filters.get("open", True) is not False:
        lessons = lessons.open()
    if filters.get("owner_agency"):
        lessons = lessons.filter(owner_agency_id=filters["owner_agency"])
    if filters.get("incident"):
        lessons = lessons.filter(incident_id=filters["incident"])
    today = city_today(user.agency.city) if user.agency_id else timezone.now().date()
    overdue_q = Q(status__in=LESSON_OPEN_STATUSES, due_date__lt=today)
    lessons = lessons.annotate(
        is_overdue_now=Case(When(overdue_q, then=Value(True)), default=Value(False))
    )
    if filters.get("overdue") is True:
        lessons = lessons.filter(overdue_q)
    elif filters.get("overdue") is False:
        lessons = lessons.exclude(overdue_q)
    lessons = lessons.order_by(F("is_overdue_now").desc(), F("due_date").asc(nulls_last=True), "pk")
    return lessons, filters


def _filter_params(params) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ("owner_agency", "incident", "overdue", "open"):
        value = params.get(key)
        if value not in (None, ""):
            data[key] = value
    statuses = [s for s in params.getlist("status") if s]
    if statuses:
        data["status"] = statuses
    return data


LESSON_FILTER_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, many=True, description="Any of these."),
    OpenApiParameter("owner_agency", OpenApiTypes.INT),
    OpenApiParameter("incident", OpenApiTypes.INT),
    OpenApiParameter("overdue", OpenApiTypes.BOOL),
    OpenApiParameter(
        "open", OpenApiTypes.BOOL, description="Default true: open lessons only (no status given)."
    ),
]

LessonCountsSerializer = inline_serializer(
    "LessonCounts",
    {
        "total": serializers.IntegerField(),
        "overdue": serializers.IntegerField(),
        "by_status": serializers.DictField(child=serializers.IntegerField()),
        "by_agency": serializers.DictField(child=serializers.IntegerField()),
    },
)

ImportResultSerializer = inline_serializer(
    "LessonImportResult",
    {
        "created": LessonSerializer(many=True),
        "already_present": serializers.ListField(child=serializers.UUIDField()),
    },
)


class LessonViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Lessons of the caller's city they may read: the oversight committee's view.

    Open lessons by default, overdue first then soonest due. Each carries its history.
    """

    serializer_class = LessonSerializer
    filter_backends: list = []
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "counts": Capability.VIEW,
        "create": Capability.LESSON_WRITE,
        "partial_update": Capability.LESSON_WRITE,
        "transition": Capability.VIEW,  # whose step it is, the service decides (403 saying so)
        "assign": Capability.LESSON_OVERSEE,
        "export": Capability.LESSON_OVERSEE,
        "import_document": Capability.LESSON_OVERSEE,
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Lesson.objects.none()
        if self.action == "list":
            return lessons_filtered(self.request.user, self.request.query_params)[0]
        return lessons_queryset(self.request.user)

    def get_serializer(self, *args, **kwargs):
        if args and self.request.method in ("GET", "HEAD"):
            items = args[0] if kwargs.get("many") else [args[0]]
            restricted_read_audit(self.request, items)
        return super().get_serializer(*args, **kwargs)

    @extend_schema(parameters=LESSON_FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _fresh(self, lesson: Lesson) -> Response:
        return Response(
            self.get_serializer(lessons_queryset(self.request.user).get(pk=lesson.pk)).data
        )

    @extend_schema(request=LessonInputSerializer, responses={201: LessonSerializer})
    def create(self, request):
        data = validated(LessonInputSerializer, request)
        incident = data.pop("incident")
        lesson = lesson_create(incident_id=incident.pk, user=request.user, **data)
        response = self._fresh(lesson)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(request=LessonPatchSerializer, responses={200: LessonSerializer})
    def partial_update(self, request, pk=None):
        lesson = self.get_object()
        data = validated(LessonPatchSerializer, request)
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give at least one field to change."]}
            )
        lesson_update(lesson_id=lesson.pk, user=request.user, **data)
        return self._fresh(lesson)

    @extend_schema(request=LessonTransitionInputSerializer, responses={200: LessonSerializer})
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the lesson one step: 409 naming the allowed steps when the status refuses it,
        403 when the step is somebody else's, 400 naming ``note`` when a reason is needed."""
        lesson = self.get_object()
        data = validated(LessonTransitionInputSerializer, request)
        lesson_transition(lesson_id=lesson.pk, user=request.user, **data)
        return self._fresh(lesson)

    @extend_schema(request=LessonAssignSerializer, responses={200: LessonSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give the lesson an owner agency (and person, due date): the oversight committee."""
        lesson = self.get_object()
        data = validated(LessonAssignSerializer, request)
        lesson_assign(lesson_id=lesson.pk, user=request.user, **data)
        return self._fresh(lesson)

    @extend_schema(parameters=LESSON_FILTER_PARAMETERS, responses=LessonCountsSerializer)
    @action(detail=False, methods=["get"])
    def counts(self, request):
        """How many lessons the filters select: in all, overdue, by status and by owner agency."""
        lessons, _ = lessons_filtered(request.user, request.query_params)
        return Response(lesson_counts(lessons))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "id",
                OpenApiTypes.INT,
                many=True,
                description="Lessons to export; none: every shareable lesson of your city.",
            )
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        """The lessons as an exchange document (``docs/lesson-exchange.schema.json``) another
        city imports. Only GREEN or CLEAR lessons marked shareable: 409 naming any other.
        Audited."""
        raw = request.query_params.getlist("id")
        try:
            ids = [int(value) for value in raw] if raw else None
        except ValueError:
            raise serializers.ValidationError({"id": ["Lesson ids are whole numbers."]}) from None
        document = lessons_export(user=request.user, lesson_ids=ids, request=request)
        response = Response(document)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="lessons-{stamp}.json"'
        return response

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: ImportResultSerializer})
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[RawJsonParser],
    )
    def import_document(self, request):
        """Import another city's exchange document into your city, all or nothing: a fault
        anywhere answers 400 under its JSON path (``$.lessons[0].marking``) and nothing is
        written. Lessons your city already holds (same UUID) are left alone. Audited."""
        result = lessons_import(user=request.user, document=request.data, request=request)
        created = lessons_queryset(request.user).filter(pk__in=[x.pk for x in result.created])
        return Response(
            {
                "created": LessonSerializer(created.order_by("pk"), many=True).data,
                "already_present": result.already_present,
            }
        )


def lesson_counts(lessons) -> dict[str, Any]:
    rows = list(lessons.values_list("status", "owner_agency__short_name", "is_overdue_now"))
    by_status: dict[str, int] = {}
    by_agency: dict[str, int] = {}
    for lesson_status, agency, _ in rows:
        by_status[lesson_status] = by_status.get(lesson_status, 0) + 1
        by_agency[agency or "unassigned"] = by_agency.get(agency or "unassigned", 0) + 1
    return {
        "total": len(rows),
        "overdue": sum(1 for row in rows if row[2]),
        "by_status": by_status,
        "by_agency": by_agency,
    }


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class MeetingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Meetings of the incident's strategic cell, soonest first, with agenda, attendees and
    minutes. Minutes change until the meeting is closed; then every change answers 409."""

    model = Meeting
    serializer_class = MeetingDetailSerializer
    filterset_fields = ["status"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "partial_update": Capability.LOG_WRITE,
        "transition": Capability.LOG_WRITE,
        "attendance": Capability.LOG_WRITE,
        "marking": Capability.LOG_WRITE,
    }

    def item_queryset(self, queryset):
        return (
            queryset.select_related("chair")
            .prefetch_related(
                "agenda_items",
                "attendees__person",
                "attendees__agency",
                *RECIPIENTS_PREFETCH,
            )
            .order_by("scheduled_at", "id")
        )

    def _answer(self, meeting_id: int, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=meeting_id)).data, code)

    @extend_schema(request=MeetingInputSerializer, responses={201: MeetingDetailSerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(MeetingInputSerializer, request)
        data["agenda"] = [dict(item) for item in data.get("agenda", [])]
        data["attendees"] = [(a["person"], a["attendance"]) for a in data.get("attendees", [])]
        meeting = meeting_schedule(incident_id=incident.pk, user=request.user, **data)
        return self._answer(meeting.pk, status.HTTP_201_CREATED)

    @extend_schema(request=MeetingPatchSerializer, responses={200: MeetingDetailSerializer})
    def partial_update(self, request, incident_pk=None, pk=None):
        """Change the meeting's details, agenda, attendees or minutes (409 once closed)."""
        meeting = self.get_object()
        data = validated(MeetingPatchSerializer, request)
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give at least one field to change."]}
            )
        if "agenda" in data:
            data["agenda"] = [dict(item) for item in data["agenda"]]
        if "attendees" in data:
            data["attendees"] = [(a["person"], a["attendance"]) for a in data["attendees"]]
        meeting_update(meeting_id=meeting.pk, user=request.user, **data)
        return self._answer(meeting.pk)

    @extend_schema(request=MeetingTransitionSerializer, responses={200: MeetingDetailSerializer})
    @action(detail=True, methods=["post"])
    def transition(self, request, incident_pk=None, pk=None):
        """Start a scheduled meeting (``in_progress``) or close one in progress (``closed``).
        Any other move answers 409, saying which the meeting allows."""
        meeting = self.get_object()
        data = validated(MeetingTransitionSerializer, request)
        meeting_transition(meeting_id=meeting.pk, user=request.user, to=data["to"])
        return self._answer(meeting.pk)

    @extend_schema(request=AttendanceInputSerializer, responses={200: MeetingDetailSerializer})
    @action(detail=True, methods=["post"])
    def attendance(self, request, incident_pk=None, pk=None):
        """Mark invitees present, expected or as having sent apologies (409 once closed)."""
        meeting = self.get_object()
        data = validated(AttendanceInputSerializer, request)
        meeting_attendance_record(
            meeting_id=meeting.pk,
            user=request.user,
            attendance={row["attendee"]: row["attendance"] for row in data["attendance"]},
        )
        return self._answer(meeting.pk)

    @extend_schema(request=MarkingChangeSerializer, responses={200: MeetingDetailSerializer})
    @action(detail=True, methods=["post"])
    def marking(self, request, incident_pk=None, pk=None):
        """Raise or lower the meeting's marking (the agency that scheduled it; audited)."""
        meeting = self.get_object()
        data = validated(MarkingChangeSerializer, request)
        meeting_marking_change(meeting_id=meeting.pk, user=request.user, **data)
        return self._answer(meeting.pk)


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class IncidentExportViewSet(IncidentScopedViewSet):
    """The incident's record for debrief and inquiry, as the caller may read it (audited).

    The incident is looked up through the access rule first, so a non-participant gets 404.
    """

    model = Decision  # the items themselves are gathered by ``coordination.exports``
    required_capabilities = {
        "export_pdf": Capability.VIEW,
        "export_decisions": Capability.VIEW,
        "export_timeline": Capability.VIEW,
        "export_actions": Capability.VIEW,
    }

    @extend_schema(
        operation_id="incidents_export_pdf",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    def export_pdf(self, request, incident_pk=None):
        """The joint decision log, timeline and actions as a PDF document: what the caller may
        read, how many entries were withheld from them, the chain verification and its final
        hash, a TLP banner on every page."""
        return pdf_response(self._incident_for_export(), request)

    def _incident_for_export(self) -> Incident:
        return get_object_or_404(
            Incident.objects.visible_to(self.request.user).select_related("city", "lead_agency"),
            pk=self.kwargs["incident_pk"],
        )

    @extend_schema(
        operation_id="incidents_export_decisions_csv",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def export_decisions(self, request, incident_pk=None):
        """The decision log as CSV (UTC times, a marking column), streamed."""
        return csv_response(self._incident_for_export(), request, "decisions")

    @extend_schema(
        operation_id="incidents_export_timeline_csv",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def export_timeline(self, request, incident_pk=None):
        """The timeline as CSV (UTC times, a marking column), streamed."""
        return csv_response(self._incident_for_export(), request, "timeline")

    @extend_schema(
        operation_id="incidents_export_actions_csv",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def export_actions(self, request, incident_pk=None):
        """The actions as CSV (UTC times, a marking column), streamed."""
        return csv_response(self._incident_for_export(), request, "actions")
