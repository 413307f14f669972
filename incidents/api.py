"""REST endpoints for incidents, M/ETHANE reports, the timeline and the event stream."""

import copy
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import mixins, pagination, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from coordination.audit import audit_read
from coordination.markings import RESTRICTED
from coordination.roles import Capability
from coordination.serializers import MarkingChangeSerializer
from ctpn.api import validated

from .events import event_message, event_placeholder
from .models import Incident, IncidentEvent, MethaneReport, TimelineEntry
from .serializers import (
    IncidentCreateSerializer,
    IncidentEventSerializer,
    IncidentSerializer,
    MethaneInputSerializer,
    MethaneReportSerializer,
    TimelineEntrySerializer,
    TimelineInputSerializer,
    TransitionSerializer,
)
from .services import (
    incident_open,
    incident_transition,
    item_marking_change,
    methane_submit,
    timeline_add,
)

INCIDENT_PATH_PARAMETER = OpenApiParameter(
    "incident_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The incident's id."
)


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Incidents the caller's agency participates in."""

    serializer_class = IncidentSerializer
    filterset_fields = ["status", "type", "level", "is_exercise"]
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.INCIDENT_OPEN,
        "transition": Capability.INCIDENT_TRANSITION,
    }

    def check_permissions(self, request) -> None:
        # Membership before capability: a user whose agency does not take part learns neither that
        # the incident exists nor what they could do to it. 404, never 403, for any method.
        if "pk" in self.kwargs and request.user.is_authenticated:
            self.get_object()
        super().check_permissions(request)

    def get_object(self) -> Incident:
        # Looked up once per request: by the membership check above, then reused by the action.
        if not hasattr(self, "_object"):
            self._object = super().get_object()
        return self._object

    def get_queryset(self) -> QuerySet[Incident]:
        return (
            Incident.objects.visible_to(self.request.user)
            .select_related("city", "lead_agency", "neutral_commander")
            .prefetch_related("participating_agencies")
        )

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # As on the pages, real incidents and exercises never share one list: the list holds
        # real incidents unless the caller asks for exercises with ?is_exercise=true.
        queryset = super().filter_queryset(queryset)
        if self.action == "list" and "is_exercise" not in self.request.query_params:
            queryset = queryset.filter(is_exercise=False)
        return queryset

    @extend_schema(request=IncidentCreateSerializer, responses={201: IncidentSerializer})
    def create(self, request):
        data = validated(IncidentCreateSerializer, request)
        incident = incident_open(user=request.user, **data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=incident.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=TransitionSerializer, responses={200: IncidentSerializer})
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        incident = self.get_object()
        data = validated(TransitionSerializer, request)
        incident_transition(incident_id=incident.pk, user=request.user, to=data["to"])
        return Response(self.get_serializer(self.get_queryset().get(pk=incident.pk)).data)


class IncidentScopedViewSet(viewsets.GenericViewSet):
    """Base of every ``/incidents/{incident_pk}/...`` endpoint.

    The incident is looked up through the access rule first (404 if invisible), then the items
    through their own ``visible_to``.
    """

    model: Any = IncidentEvent  # overridden by each subclass

    def get_incident(self) -> Incident:
        if not hasattr(self, "_incident"):
            self._incident = get_object_or_404(
                Incident.objects.visible_to(self.request.user), pk=self.kwargs["incident_pk"]
            )
        return self._incident

    def check_permissions(self, request) -> None:
        # The incident first (404 if invisible), then the capability (403): a non-member must not
        # tell an incident that exists from one that does not by the answer to a write.
        if request.user.is_authenticated:
            self.get_incident()
        super().check_permissions(request)

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no incident
            return self.model.objects.none()
        return self.item_queryset(
            self.model.objects.visible_to(self.request.user).filter(incident=self.get_incident())
        )

    def item_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset

    def get_serializer(self, *args, **kwargs):
        # Every read of RED or AMBER+STRICT items is audited, list and detail alike (writes
        # answer with the item too, but the writer is not reading someone else's material).
        if args and self.request.method in ("GET", "HEAD"):
            items = args[0] if kwargs.get("many") else [args[0]]
            restricted_read_audit(self.request, items)
        return super().get_serializer(*args, **kwargs)

    def created(self, item) -> Response:
        """201 with the new item as a read would show it (through the access rule)."""
        return Response(
            self.get_serializer(self.get_queryset().get(pk=item.pk)).data,
            status=status.HTTP_201_CREATED,
        )


def restricted_read_audit(request, items) -> None:
    """Record in the audit log each RED or AMBER+STRICT item in ``items`` that ``request`` reads."""
    restricted = []
    for item in items:
        marking = getattr(item, "marking_now", None) or item.marking
        if marking not in RESTRICTED:
            continue
        if marking != item.marking:
            # A decision re-marked since it was recorded: the log records the marking in force.
            # A copy, never saved (the entry itself is append-only).
            item = copy.copy(item)
            item.marking = marking
        restricted.append(item)
    if restricted:
        audit_read(user=request.user, request=request, items=restricted)


RECIPIENTS_PREFETCH = ("recipient_agencies", "recipient_people")


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class MethaneReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Versions of the incident's M/ETHANE report, oldest first; the last is current."""

    model = MethaneReport
    serializer_class = MethaneReportSerializer
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "marking": Capability.LOG_WRITE,
    }

    def item_queryset(self, queryset):
        return (
            queryset.select_related("submitted_by", "submitted_agency", "superseded_by")
            .prefetch_related(*RECIPIENTS_PREFETCH)
            .order_by("version")
        )

    @extend_schema(request=MethaneInputSerializer, responses={201: MethaneReportSerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(MethaneInputSerializer, request)
        report = methane_submit(incident_id=incident.pk, user=request.user, **data)
        return self.created(report)

    @extend_schema(request=MarkingChangeSerializer, responses={200: MethaneReportSerializer})
    @action(detail=True, methods=["post"])
    def marking(self, request, incident_pk=None, pk=None):
        """Raise or lower the report's marking (the submitting agency only; audited)."""
        report = self.get_object()
        data = validated(MarkingChangeSerializer, request)
        item_marking_change(model=MethaneReport, item_id=report.pk, user=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=report.pk)).data)


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class TimelineEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IncidentScopedViewSet):
    """Significant events of the incident, in the order they happened."""

    model = TimelineEntry
    serializer_class = TimelineEntrySerializer
    required_capabilities = {
        "list": Capability.VIEW,
        "retrieve": Capability.VIEW,
        "create": Capability.LOG_WRITE,
        "marking": Capability.LOG_WRITE,
    }

    def item_queryset(self, queryset):
        return (
            queryset.select_related("author", "author_agency")
            .prefetch_related(*RECIPIENTS_PREFETCH)
            .order_by("occurred_at", "id")
        )

    @extend_schema(request=TimelineInputSerializer, responses={201: TimelineEntrySerializer})
    def create(self, request, incident_pk=None):
        incident = self.get_incident()
        data = validated(TimelineInputSerializer, request)
        entry = timeline_add(incident_id=incident.pk, user=request.user, **data)
        return self.created(entry)

    @extend_schema(request=MarkingChangeSerializer, responses={200: TimelineEntrySerializer})
    @action(detail=True, methods=["post"])
    def marking(self, request, incident_pk=None, pk=None):
        """Raise or lower the entry's marking (the author's agency only; audited)."""
        entry = self.get_object()
        data = validated(MarkingChangeSerializer, request)
        item_marking_change(model=TimelineEntry, item_id=entry.pk, user=request.user, **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=entry.pk)).data)


class EventPagination(pagination.BasePagination):
    """Events after a sequence number, oldest first: how a client catches up after a gap."""

    default_limit = 200
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        try:
            self.after = int(request.query_params.get("after", 0))
            if self.after < 0:
                raise ValueError
        except ValueError:
            errors["after"] = ["Must be a whole number, 0 or more."]
        try:
            self.limit = int(request.query_params.get("limit", self.default_limit))
            if not 1 <= self.limit <= self.max_limit:
                raise ValueError
        except ValueError:
            errors["limit"] = [f"Must be a whole number from 1 to {self.max_limit}."]
        if errors:
            raise serializers.ValidationError(errors)
        self.request = request
        page = list(queryset.filter(seq__gt=self.after).order_by("seq")[: self.limit + 1])
        self.has_more = len(page) > self.limit
        self.page = page[: self.limit]
        return self.page

    def get_paginated_response(self, data):
        next_url = None
        if self.has_more:
            next_url = replace_query_param(
                self.request.build_absolute_uri(), "after", self.page[-1].seq
            )
        return Response({"next": next_url, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "Return events with a sequence number above this one.",
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"At most this many events (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
        ]


@extend_schema_field({"type": "string", "pattern": "^hidden$", "description": 'Always "hidden".'})
class HiddenKindField(serializers.CharField):
    """Only "hidden", so that a readable event never also fits the placeholder's schema."""


class HiddenEventSerializer(serializers.Serializer):
    """An event the caller may not read: its number only, so the numbering has no gap."""

    seq = serializers.IntegerField(read_only=True)
    kind = HiddenKindField(read_only=True)


REPLAYED_EVENT = PolymorphicProxySerializer(
    component_name="ReplayedEvent",
    serializers=[IncidentEventSerializer, HiddenEventSerializer],
    resource_type_field_name=None,
    many=True,
)


@extend_schema(parameters=[INCIDENT_PATH_PARAMETER])
class IncidentEventViewSet(mixins.ListModelMixin, IncidentScopedViewSet):
    """The incident's event stream, for replay after a gap or a reconnect.

    Every number is listed, so that a client sees no false gap; an event whose marking the caller
    may not read comes as ``{"seq": n, "kind": "hidden"}``, exactly as over the WebSocket.
    """

    model = IncidentEvent
    serializer_class = IncidentEventSerializer
    pagination_class = EventPagination
    filter_backends: list = []
    required_capabilities = {"list": Capability.VIEW}

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return IncidentEvent.objects.none()
        # All of the incident's numbers; whether each may be read is the access rule's answer.
        readable = IncidentEvent.objects.visible_to(self.request.user).filter(pk=OuterRef("pk"))
        return IncidentEvent.objects.filter(incident=self.get_incident()).annotate(
            readable=Exists(readable)
        )

    @extend_schema(responses=REPLAYED_EVENT)
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None
        restricted_read_audit(request, [event for event in page if event.readable])
        return self.get_paginated_response(
            [event_message(e) if e.readable else event_placeholder(e.seq) for e in page]
        )
