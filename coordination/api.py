"""REST endpoints for the directory (agencies, people), the decision log and actions."""

import hashlib

from django.contrib.auth import authenticate
from django.core.cache import cache
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import filters, mixins, parsers, serializers, status, views, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ctpn.api import validated
from ctpn.security import lockout_response
from ctpn.throttling import AnonRateThrottle, ScopedRateThrottle
from incidents.api import INCIDENT_PATH_PARAMETER, RECIPIENTS_PREFETCH, IncidentScopedViewSet

from .markings import RESTRICTED
from .mfa import has_authenticator, mfa_required, second_factor_verify
from .models import Action, Agency, City, Decision, DecisionPosition, User
from .roles import Capability
from .serializers import (
    ActionInputSerializer,
    ActionPatchSerializer,
    ActionSerializer,
    AgencyCreateSerializer,
    AgencySerializer,
    DecisionInputSerializer,
    DecisionMarkingChangeSerializer,
    DecisionPositionInputSerializer,
    DecisionPositionSerializer,
    DecisionSerializer,
    MarkingChangeSerializer,
    MeSerializer,
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
        need-to-know: never shared between people) and the exact query. Pages showing a RED or
        AMBER+STRICT entry are never cached, so that every read of one is audited.
        """
        incident = self.get_incident()
        key = None
        if request.accepted_renderer.format == "json":
            key = decision_page_key(
                incident_id=incident.pk,
                last_event_seq=incident.last_event_seq,
                user_id=request.user.pk,
                agency_id=getattr(request.user, "agency_id", None),
                query=request.build_absolute_uri(),
            )
            cached = cache.get(key)
            if cached is not None:
                return Response(cached)
        self._page_restricted = False
        response = super().list(request, *args, **kwargs)
        if key is not None and response.status_code == 200 and not self._page_restricted:
            cache.set(key, response.data, DECISION_PAGE_CACHE_SECONDS)
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
