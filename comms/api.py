"""REST endpoints of the comms app.

Rota part: rotas and who is on call, shifts and cover, contact methods, escalation policies and
responder groups. Every read goes through ``visible_to``; every write through ``comms.services``.

Activation part: send an activation, watch its board, answer it, and the caller's own in-app
alerts.
"""

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import authentication, mixins, serializers, status, views, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from coordination.models import User
from coordination.roles import Capability
from ctpn.api import validated
from ctpn.throttling import ScopedRateThrottle
from incidents.api import INCIDENT_PATH_PARAMETER, IncidentScopedViewSet

from .briefs import brief_changes, brief_generate, brief_issue, brief_update
from .exercises import exercise_control, exercise_create, scenario_delete, scenario_save
from .metrics import exercise_metrics
from .models import (
    Activation,
    AnsweredVia,
    Brief,
    Channel,
    ContactMethod,
    EscalationPolicy,
    ExerciseRun,
    Notification,
    PublicStatement,
    ResponderGroup,
    Rota,
    RotaOverride,
    Scenario,
    Shift,
)
from .rotas import on_call, on_call_next
from .serializers import (
    AcknowledgementSerializer,
    ActivationBoardSerializer,
    ActivationCreateSerializer,
    ActivationSerializer,
    AlertSerializer,
    AnswerSerializer,
    BriefChangesSerializer,
    BriefGenerateInputSerializer,
    BriefSerializer,
    BriefUpdateInputSerializer,
    ContactMethodForUserInputSerializer,
    ContactMethodInputSerializer,
    ContactMethodPatchSerializer,
    ContactMethodSecretSerializer,
    ContactMethodSerializer,
    ContactMethodWithOwnerSerializer,
    EscalationPolicySerializer,
    ExerciseCreateSerializer,
    ExerciseRunSerializer,
    OnCallQuerySerializer,
    OnCallSerializer,
    OverrideInputSerializer,
    OverrideSerializer,
    PublicStatementSerializer,
    ResponderGroupSerializer,
    RotaSerializer,
    ScenarioInputSerializer,
    ScenarioSerializer,
    ShiftInputSerializer,
    ShiftSerializer,
    SmsReceiptSerializer,
    StatementDraftInputSerializer,
    StatementReviewInputSerializer,
    StatementReviseInputSerializer,
    activation_rows,
)
from .services import (
    activation_acknowledge,
    activation_cancel,
    activation_send,
    contact_method_create,
    contact_method_delete,
    contact_method_rotate_secret,
    contact_method_update,
    notification_receipt,
    notification_seen,
    override_create,
    override_delete,
    rota_calendar_revoke,
    shift_create,
    shift_delete,
)
from .statements import (
    ApprovalsMissing,
    statement_approve,
    statement_draft,
    statement_publish,
    statement_request_changes,
    statement_revise,
    statement_withdraw,
    statements_prefetched,
)

ROTA_PATH_PARAMETER = OpenApiParameter(
    "rota_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The rota's id."
)


def _caller(request) -> User:
    user = request.user
    assert isinstance(user, User)  # DeclaredPermission refuses anonymous callers
    return user


class RotaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """On-call rotas of the agencies of the caller's city."""

    serializer_class = RotaSerializer
    filterset_fields = ["agency", "is_active"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "on_call": Capability.VIEW,
        "revoke_calendar": Capability.ROTA_MANAGE,
    }

    def check_permissions(self, request) -> None:
        # Visibility before capability: a rota of another city answers 404 to every method.
        if "pk" in self.kwargs and request.user.is_authenticated:
            self.get_object()
        super().check_permissions(request)

    def get_object(self) -> Rota:
        if not hasattr(self, "_object"):
            self._object = super().get_object()
        return self._object

    def get_queryset(self) -> QuerySet[Rota]:
        return (
            Rota.objects.visible_to(self.request.user)
            .select_related("agency__city")
            .order_by("agency__short_name", "name", "id")
        )

    @extend_schema(parameters=[OnCallQuerySerializer], responses=OnCallSerializer)
    @action(detail=True, methods=["get"], url_path="on-call")
    def on_call(self, request, pk: Any = None) -> Response:
        """Who is the primary and secondary duty officer at ``at`` (default now), and the next
        hand-overs after it."""
        rota = self.get_object()
        query = OnCallQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        at = query.validated_data.get("at") or timezone.now()
        answer = on_call(rota=rota, at=at)
        handovers = on_call_next(rota=rota, after=at, limit=query.validated_data["next"])
        body = {
            "rota": rota,
            "at": at,
            "primary": answer.primary,
            "secondary": answer.secondary,
            "next": handovers,
        }
        return Response(OnCallSerializer(body).data)

    @extend_schema(request=None, responses=RotaSerializer)
    @action(detail=True, methods=["post"], url_path="revoke-calendar")
    def revoke_calendar(self, request, pk: Any = None) -> Response:
        """Revoke every calendar feed URL of the rota; the answer carries the new one."""
        rota = rota_calendar_revoke(user=request.user, rota_id=self.get_object().pk)
        return Response(self.get_serializer(rota).data)


class RotaScopedViewSet(viewsets.GenericViewSet):
    """Base of ``/rotas/{rota_pk}/...``: the rota through the access rule first (404), then the
    capability (403), then the items through their own ``visible_to``."""

    model: Any = Shift

    def get_rota(self) -> Rota:
        if not hasattr(self, "_rota"):
            self._rota = get_object_or_404(
                Rota.objects.visible_to(self.request.user).select_related("agency__city"),
                pk=self.kwargs["rota_pk"],
            )
        return self._rota

    def check_permissions(self, request) -> None:
        if request.user.is_authenticated:
            self.get_rota()
        super().check_permissions(request)

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no rota
            return self.model.objects.none()
        return (
            self.model.objects.visible_to(self.request.user)
            .filter(rota=self.get_rota())
            .select_related("user", "rota__agency__city")
        )

    def created(self, item) -> Response:
        return Response(
            self.get_serializer(self.get_queryset().get(pk=item.pk)).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema(parameters=[ROTA_PATH_PARAMETER])
class ShiftViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    RotaScopedViewSet,
):
    """The rota's shifts, as planned (times on the city's wall clock)."""

    model = Shift
    serializer_class = ShiftSerializer
    filterset_fields = ["tier", "user", "recurrence"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.ROTA_MANAGE,
        "destroy": Capability.ROTA_MANAGE,
    }

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().order_by("start_date", "start_time", "id")

    @extend_schema(request=ShiftInputSerializer, responses={201: ShiftSerializer})
    def create(self, request, rota_pk: Any = None) -> Response:
        data = validated(ShiftInputSerializer, request)
        shift = shift_create(
            user=request.user, rota_id=self.get_rota().pk, officer=data.pop("user"), **data
        )
        return self.created(shift)

    def perform_destroy(self, instance: Shift) -> None:
        shift_delete(user=_caller(self.request), shift_id=instance.pk)


@extend_schema(parameters=[ROTA_PATH_PARAMETER])
class OverrideViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    RotaScopedViewSet,
):
    """Cover on the rota: who takes a tier for an interval, whatever the shifts say."""

    model = RotaOverride
    serializer_class = OverrideSerializer
    filterset_fields = ["tier", "user"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.ROTA_MANAGE,
        "destroy": Capability.ROTA_MANAGE,
    }

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().order_by("starts_at", "id")

    @extend_schema(request=OverrideInputSerializer, responses={201: OverrideSerializer})
    def create(self, request, rota_pk: Any = None) -> Response:
        data = validated(OverrideInputSerializer, request)
        override = override_create(
            user=request.user, rota_id=self.get_rota().pk, officer=data.pop("user"), **data
        )
        return self.created(override)

    def perform_destroy(self, instance: RotaOverride) -> None:
        override_delete(user=_caller(self.request), override_id=instance.pk)


class _ContactMethodViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ContactMethodSerializer
    filterset_fields = ["kind", "is_active"]
    input_serializer: type[serializers.Serializer] = ContactMethodInputSerializer

    def owner_for_create(self, data: dict) -> User:
        raise NotImplementedError

    @extend_schema(
        request=ContactMethodInputSerializer, responses={201: ContactMethodSecretSerializer}
    )
    def create(self, request):
        data = validated(self.input_serializer, request)
        owner = self.owner_for_create(data)
        method = contact_method_create(user=_caller(request), owner=owner, **data)
        return Response(ContactMethodSecretSerializer(method).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ContactMethodPatchSerializer, responses=ContactMethodSerializer)
    def partial_update(self, request, pk: Any = None):
        method = self.get_object()
        data = validated(ContactMethodPatchSerializer, request)
        if not data:
            return Response(
                {"non_field_errors": ["Give label or is_active."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        method = contact_method_update(user=_caller(request), method_id=method.pk, **data)
        return Response(self.get_serializer(method).data)

    @extend_schema(request=None, responses=ContactMethodSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk: Any = None):
        """Replace a webhook's signing secret; the answer shows the new one, once."""
        method = contact_method_rotate_secret(user=_caller(request), method_id=self.get_object().pk)
        return Response(ContactMethodSecretSerializer(method).data)

    def perform_destroy(self, instance: ContactMethod) -> None:
        contact_method_delete(user=_caller(self.request), method_id=instance.pk)


class MyContactMethodViewSet(_ContactMethodViewSet):
    """The caller's own ways to be reached with alerts. In-app notification is always on.

    A webhook's signing secret (HMAC-SHA256 key) is shown once, in the answer that creates it or
    replaces it.
    """

    pagination_class = None
    input_serializer = ContactMethodInputSerializer
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.VIEW,
        "partial_update": Capability.VIEW,
        "destroy": Capability.VIEW,
        "rotate_secret": Capability.VIEW,
    }

    def get_queryset(self) -> QuerySet[ContactMethod]:
        # Own methods only, even for an administrator who may see the city's.
        return (
            ContactMethod.objects.visible_to(self.request.user)
            .filter(user_id=self.request.user.pk)
            .order_by("kind", "id")
        )

    def owner_for_create(self, data: dict) -> User:
        return _caller(self.request)


@extend_schema(
    parameters=[
        OpenApiParameter("user", OpenApiTypes.INT, description="Only this person's methods.")
    ]
)
class ContactMethodViewSet(_ContactMethodViewSet):
    """Contact methods of the people of the caller's city, for administrators who look after
    them (people manage their own under ``/me/contact-methods/``)."""

    serializer_class = ContactMethodWithOwnerSerializer
    filterset_fields = ["kind", "is_active", "user"]
    input_serializer = ContactMethodForUserInputSerializer
    required_capabilities = {
        "list": Capability.DIRECTORY_MANAGE,
        "retrieve": Capability.DIRECTORY_MANAGE,
        "create": Capability.DIRECTORY_MANAGE,
        "partial_update": Capability.DIRECTORY_MANAGE,
        "destroy": Capability.DIRECTORY_MANAGE,
        "rotate_secret": Capability.DIRECTORY_MANAGE,
    }

    def get_queryset(self) -> QuerySet[ContactMethod]:
        return (
            ContactMethod.objects.visible_to(self.request.user)
            .select_related("user")
            .order_by("user__username", "kind", "id")
        )

    def owner_for_create(self, data: dict) -> User:
        return data.pop("user")

    @extend_schema(
        request=ContactMethodForUserInputSerializer,
        responses={201: ContactMethodSecretSerializer},
    )
    def create(self, request):
        return super().create(request)


class EscalationPolicyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """How each agency of the caller's city escalates an unacknowledged activation.

    Administrators change policies in the admin; this is read-only.
    """

    serializer_class = EscalationPolicySerializer
    filterset_fields = ["agency", "is_default"]
    required_capabilities = {"list": Capability.VIEW, "retrieve": Capability.VIEW}

    def get_queryset(self) -> QuerySet[EscalationPolicy]:
        return (
            EscalationPolicy.objects.visible_to(self.request.user)
            .select_related("agency")
            .prefetch_related("steps__group")
            .order_by("agency__short_name", "name", "id")
        )


class ResponderGroupViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Named groups of an agency's people that escalation steps notify."""

    serializer_class = ResponderGroupSerializer
    filterset_fields = ["agency"]
    required_capabilities = {"list": Capability.VIEW, "retrieve": Capability.VIEW}

    def get_queryset(self) -> QuerySet[ResponderGroup]:
        return (
            ResponderGroup.objects.visible_to(self.request.user)
            .prefetch_related("members")
            .order_by("agency__short_name", "name", "id")
        )


# ================================================================================================
# Activation alerting
# ================================================================================================


class ActivationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Activations that call the caller's agency or that it sent, newest first.

    Creating one (commanders and the duty desk) alerts the target agencies' duty officers at once
    and escalates along each agency's policy until the quorum is met.
    """

    serializer_class = ActivationSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["status", "is_exercise", "incident"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "board": Capability.VIEW,
        "acknowledge": Capability.VIEW,
        "create": Capability.ACTIVATION_SEND,
        "cancel": Capability.ACTIVATION_SEND,
    }

    def check_permissions(self, request) -> None:
        # Visibility before capability: whoever may not see an activation learns neither that it
        # exists nor what they could do to it (404, never 403).
        if "pk" in self.kwargs and request.user.is_authenticated:
            self.get_object()
        super().check_permissions(request)

    def get_object(self) -> Activation:
        if not hasattr(self, "_object"):
            self._object = super().get_object()
        return self._object

    def get_queryset(self) -> QuerySet[Activation]:
        return activation_rows().filter(
            pk__in=Activation.objects.visible_to(self.request.user).values("pk")
        )

    @extend_schema(request=ActivationCreateSerializer, responses={201: ActivationBoardSerializer})
    def create(self, request):
        data = validated(ActivationCreateSerializer, request)
        activation = activation_send(user=request.user, **data)
        board = ActivationBoardSerializer(self.get_queryset().get(pk=activation.pk))
        return Response(board.data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ActivationBoardSerializer)
    @action(detail=True, methods=["get"])
    def board(self, request, pk=None):
        """Per agency: who was notified through what, delivered, answered, ETA, and how long
        each took. Live updates arrive on the WebSocket ``/ws/activations/<id>/``."""
        return Response(ActivationBoardSerializer(self.get_object()).data)

    @extend_schema(request=AnswerSerializer, responses={200: AcknowledgementSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Answer an activation that alerted you. Answering again returns the first answer."""
        activation = self.get_object()
        data = validated(AnswerSerializer, request)
        via = AnsweredVia.IN_APP if request.auth is None else AnsweredVia.API
        answer, created = activation_acknowledge(
            activation_id=activation.pk, user=request.user, via=via, **data
        )
        body = {**AcknowledgementSerializer(answer).data, "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=ActivationSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stand the activation down: escalation stops; nothing more is sent."""
        activation = self.get_object()
        activation_cancel(activation_id=activation.pk, user=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=activation.pk)).data)


class AlertViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's own in-app alerts, newest first."""

    serializer_class = AlertSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["state"]
    required_capabilities = {"list": Capability.VIEW, "seen": Capability.VIEW}

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Notification.objects.none()
        return (
            Notification.objects.visible_to(self.request.user)
            .filter(recipient=self.request.user, channel=Channel.IN_APP)
            .select_related("recipient", "target", "activation")
            .order_by("-created_at", "-id")
        )

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def seen(self, request, pk=None):
        """The page showed the alert: records it as delivered."""
        notification = notification_seen(notification_id=int(pk), user=request.user)
        return Response(self.get_serializer(notification).data)


SMS_PROVIDER = "sms-provider"


class SmsProviderAuthentication(authentication.BaseAuthentication):
    """The SMS provider, recognised by its bearer token (``SMS_PROVIDER_TOKEN``). With no token
    configured nobody is recognised, so receipts are refused."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = settings.SMS_PROVIDER_TOKEN
        if not token or not hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
            raise AuthenticationFailed("Wrong provider token.")
        return (AnonymousUser(), SMS_PROVIDER)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="sms-receipts"'


class SmsProviderAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the schema documents the provider's token."""

    target_class = SmsProviderAuthentication
    name = "smsProviderToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The SMS provider's token (SMS_PROVIDER_TOKEN).",
        }


class IsSmsProvider(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.auth == SMS_PROVIDER


class SmsReceiptView(views.APIView):
    """Delivery receipts from the SMS provider, sent with its bearer token: 204 recorded, 404 not
    one of our messages, 401 without the right token, 400 naming a bad field."""

    authentication_classes = [SmsProviderAuthentication]
    permission_classes = [IsSmsProvider]
    # The provider is not a signed-in person: its bursts get their own rate, not the anonymous one.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "sms-receipts"

    @extend_schema(request=SmsReceiptSerializer, responses={204: None})
    def post(self, request):
        data = validated(SmsReceiptSerializer, request)
        found = notification_receipt(
            idempotency_key=str(data["idempotency_key"]),
            delivered=data["status"] == "delivered",
            reason=data["reason"],
        )
        if not found:
            raise NotFound("No such message.")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Public statements and situation briefs -------------------------------------------------------

StatementOut = PublicStatementSerializer


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class PublicStatementViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet
):
    """Public statements of the incident (drafts, the current line, superseded and withdrawn
    ones), newest first. Communications leads draft, approve for their agency, and publish."""

    model = PublicStatement
    serializer_class = PublicStatementSerializer
    filterset_fields = ["status"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.STATEMENT_WRITE,
        "revise": Capability.STATEMENT_WRITE,
        "approve": Capability.STATEMENT_WRITE,
        "request_changes": Capability.STATEMENT_WRITE,
        "publish": Capability.STATEMENT_WRITE,
        "withdraw": Capability.STATEMENT_WRITE,
    }

    def item_queryset(self, queryset):
        return statements_prefetched(queryset).order_by("-created_at", "-pk")

    def _answer(self, statement_id: int) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=statement_id)).data)

    @extend_schema(request=StatementDraftInputSerializer, responses={201: StatementOut})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(StatementDraftInputSerializer, request)
        statement = statement_draft(incident_id=incident.pk, user=_caller(request), **data)
        return self.created(statement)

    @extend_schema(request=StatementReviseInputSerializer, responses={200: StatementOut})
    @action(detail=True, methods=["post"])
    def revise(self, request, incident_pk=None, pk=None):
        """A new version of the draft's wording; every named partner approves it afresh."""
        statement = self.get_object()
        data = validated(StatementReviseInputSerializer, request)
        statement_revise(statement_id=statement.pk, user=_caller(request), **data)
        return self._answer(statement.pk)

    @extend_schema(request=StatementReviewInputSerializer, responses={200: StatementOut})
    @action(detail=True, methods=["post"])
    def approve(self, request, incident_pk=None, pk=None):
        """Approve the current version for the caller's agency (one of those named)."""
        statement = self.get_object()
        data = validated(StatementReviewInputSerializer, request)
        statement_approve(statement_id=statement.pk, user=_caller(request), **data)
        return self._answer(statement.pk)

    @extend_schema(request=StatementReviewInputSerializer, responses={200: StatementOut})
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request, incident_pk=None, pk=None):
        """Send the current version back; ``comment`` says which changes are needed."""
        statement = self.get_object()
        data = validated(StatementReviewInputSerializer, request)
        statement_request_changes(
            statement_id=statement.pk, user=_caller(request), comment=data.get("comment", "")
        )
        return self._answer(statement.pk)

    @extend_schema(request=None, responses={200: StatementOut})
    @action(detail=True, methods=["post"])
    def publish(self, request, incident_pk=None, pk=None):
        """Publish as the incident's public line (the owning agency's communications leads).

        409 while a named partner has not approved the current version, naming them in
        ``missing_agencies``."""
        statement = self.get_object()
        try:
            statement_publish(statement_id=statement.pk, user=_caller(request))
        except ApprovalsMissing as exc:
            return Response(
                {
                    "detail": exc.message,
                    "missing_agencies": [
                        {"id": a.pk, "short_name": a.short_name, "name": a.name}
                        for a in exc.missing
                    ],
                },
                status=status.HTTP_409_CONFLICT,
            )
        return self._answer(statement.pk)

    @extend_schema(request=None, responses={200: StatementOut})
    @action(detail=True, methods=["post"])
    def withdraw(self, request, incident_pk=None, pk=None):
        """Withdraw a draft (the owning agency's communications leads)."""
        statement = self.get_object()
        statement_withdraw(statement_id=statement.pk, user=_caller(request))
        return self._answer(statement.pk)


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class BriefViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Situation briefs (IIMARCH) of the incident, newest first: drafts and issued ones."""

    model = Brief
    serializer_class = BriefSerializer
    filterset_fields = ["status"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "partial_update": Capability.LOG_WRITE,
        "issue": Capability.LOG_WRITE,
        "changes": Capability.VIEW,
    }

    def item_queryset(self, queryset):
        return queryset.select_related("previous").order_by("-created_at", "-pk")

    @extend_schema(request=BriefGenerateInputSerializer, responses={201: BriefSerializer})
    def create(self, request, incident_pk=None):
        """Generate a draft brief from the incident's state at ``as_of`` (default now), from
        the caller's view and only items at least as openly marked as the brief."""
        incident = self.get_incident()
        data = validated(BriefGenerateInputSerializer, request)
        brief = brief_generate(incident_id=incident.pk, user=_caller(request), **data)
        return self.created(brief)

    @extend_schema(request=BriefUpdateInputSerializer, responses={200: BriefSerializer})
    def partial_update(self, request, incident_pk=None, pk=None):
        """Edit a draft's sections; an issued brief is frozen (409)."""
        brief = self.get_object()
        data = validated(BriefUpdateInputSerializer, request)
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give at least one section to change."]}
            )
        brief_update(brief_id=brief.pk, user=_caller(request), **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=brief.pk)).data)

    @extend_schema(request=None, responses={200: BriefSerializer})
    @action(detail=True, methods=["post"])
    def issue(self, request, incident_pk=None, pk=None):
        """Issue the draft: it is numbered and frozen."""
        brief = self.get_object()
        brief_issue(brief_id=brief.pk, user=_caller(request))
        return Response(self.get_serializer(self.get_queryset().get(pk=brief.pk)).data)

    @extend_schema(responses={200: BriefChangesSerializer})
    @action(detail=True, methods=["get"])
    def changes(self, request, incident_pk=None, pk=None):
        """What changed since the previous issued brief."""
        brief = self.get_object()
        return Response(BriefChangesSerializer(brief_changes(brief)).data)


# ================================================================================================
# Exercises
# ================================================================================================


class ScenarioViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Exercise scenarios of the caller's city (directing staff only: players must not read the
    script). ``PUT`` replaces a scenario's content, its injects included."""

    serializer_class = ScenarioSerializer
    lookup_value_regex = "[0-9]+"
    required_capabilities = {
        "list": Capability.EXERCISE_DIRECT,
        "retrieve": Capability.EXERCISE_DIRECT,
        "create": Capability.EXERCISE_DIRECT,
        "update": Capability.EXERCISE_DIRECT,
        "destroy": Capability.EXERCISE_DIRECT,
    }

    def get_queryset(self) -> QuerySet[Scenario]:
        return (
            Scenario.objects.visible_to(self.request.user)
            .prefetch_related("injects")
            .order_by("name", "id")
        )

    @extend_schema(request=ScenarioInputSerializer, responses={201: ScenarioSerializer})
    def create(self, request):
        data = validated(ScenarioInputSerializer, request)
        scenario = scenario_save(user=request.user, **data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=scenario.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=ScenarioInputSerializer, responses={200: ScenarioSerializer})
    def update(self, request, pk=None):
        scenario = self.get_object()
        data = validated(ScenarioInputSerializer, request)
        scenario_save(user=request.user, scenario_id=scenario.pk, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=scenario.pk)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        scenario = self.get_object()
        scenario_delete(user=request.user, scenario_id=scenario.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExerciseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Exercises whose incident the caller may see. Directing staff create one from a scenario
    (it opens an exercise incident) and start, pause, resume and end it; a control the state
    refuses answers 409 with the reason and ``allowed``."""

    serializer_class = ExerciseRunSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["status", "scenario", "incident"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "report": Capability.VIEW,
        "create": Capability.EXERCISE_DIRECT,
        "start": Capability.EXERCISE_DIRECT,
        "pause": Capability.EXERCISE_DIRECT,
        "resume": Capability.EXERCISE_DIRECT,
        "end": Capability.EXERCISE_DIRECT,
    }

    def check_permissions(self, request) -> None:
        # Visibility before capability: 404 for an exercise the caller may not see, never 403.
        if "pk" in self.kwargs and request.user.is_authenticated:
            self.get_object()
        super().check_permissions(request)

    def get_object(self) -> ExerciseRun:
        if not hasattr(self, "_object"):
            self._object = super().get_object()
        return self._object

    def get_queryset(self) -> QuerySet[ExerciseRun]:
        return (
            ExerciseRun.objects.visible_to(self.request.user)
            .select_related("incident", "scenario", "director")
            .order_by("-created_at", "-id")
        )

    @extend_schema(request=ExerciseCreateSerializer, responses={201: ExerciseRunSerializer})
    def create(self, request):
        data = validated(ExerciseCreateSerializer, request)
        run = exercise_create(
            user=request.user,
            scenario_id=data["scenario"].pk,
            participating_agencies=data.get("participating_agencies", []),
            lead_agency=data["lead_agency"],
            title=data["title"],
        )
        return Response(
            self.get_serializer(self.get_queryset().get(pk=run.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    def _control(self, request, control: str) -> Response:
        run = self.get_object()
        exercise_control(run_id=run.pk, user=request.user, control=control)
        return Response(self.get_serializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses=ExerciseRunSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Start: every inject becomes due at start + its offset."""
        return self._control(request, "start")

    @extend_schema(request=None, responses=ExerciseRunSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Pause: nothing is released until the exercise resumes."""
        return self._control(request, "pause")

    @extend_schema(request=None, responses=ExerciseRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume: pending injects become due later by the time spent paused."""
        return self._control(request, "resume")

    @extend_schema(request=None, responses=ExerciseRunSerializer)
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End: injects not yet released never will be. Final."""
        return self._control(request, "end")

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def report(self, request, pk=None):
        """The exercise's metrics (the same as the report page and its CSV)."""
        return Response(exercise_metrics(run=self.get_object(), user=request.user).as_dict())
