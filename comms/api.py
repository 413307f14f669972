"""REST endpoints of activation alerting: send an activation, watch its board, answer it, and the
caller's own in-app alerts."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from coordination.roles import Capability
from ctpn.api import validated

from .models import Activation, AnsweredVia, Channel, Notification
from .serializers import (
    AcknowledgementSerializer,
    ActivationBoardSerializer,
    ActivationCreateSerializer,
    ActivationSerializer,
    AnswerSerializer,
    NotificationSerializer,
    activation_rows,
)
from .services import activation_acknowledge, activation_cancel, activation_send, notification_seen


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

    serializer_class = NotificationSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["state"]
    required_capabilities = {"list": Capability.VIEW, "seen": Capability.VIEW}

    def get_queryset(self) -> QuerySet[Notification]:
        return (
            Notification.objects.visible_to(self.request.user)
            .filter(recipient=self.request.user, channel=Channel.IN_APP)
            .select_related("recipient", "target")
            .order_by("-created_at", "-id")
        )

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def seen(self, request, pk=None):
        """The page showed the alert: records it as delivered."""
        notification = notification_seen(notification_id=int(pk), user=request.user)
        return Response(self.get_serializer(notification).data)
