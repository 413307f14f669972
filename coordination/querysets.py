"""Reads of the coordination app, each through ``visible_to(user)``."""

from django.apps import apps
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from incidents.querysets import IncidentItemQuerySet, named_q

from .markings import OPEN_TO_PARTICIPANTS
from .roles import Capability, Role, user_can


class AgencyQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AgencyQuerySet":
        """Agencies of the user's city (superusers: all)."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self.all()
        if not user.agency_id:
            return self.none()
        return self.filter(city_id=user.agency.city_id)


class UserQuerySet(models.QuerySet):
    def visible_to(self, user) -> "UserQuerySet":
        """The people of the user's city: the directory partners coordinate through."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self.all()
        if not user.agency_id:
            return self.filter(pk=user.pk)
        return self.filter(Q(agency__city_id=user.agency.city_id) | Q(pk=user.pk))


class DecisionQuerySet(IncidentItemQuerySet):
    def with_current_marking(self) -> "DecisionQuerySet":
        """Annotate ``marking_now`` (the marking in force) and ``marking_change_id`` (the latest
        marking change, whose recipient lists then apply; None: the entry's own lists apply)."""
        Change = apps.get_model("coordination", "DecisionMarkingChange")
        latest = Change.objects.filter(decision_id=OuterRef("pk")).order_by("-pk")
        return self.annotate(
            marking_change_id=Subquery(latest.values("pk")[:1]),
            marking_now=Coalesce(Subquery(latest.values("marking")[:1]), F("marking")),
        )

    def marked_for(self, user) -> "DecisionQuerySet":
        # The entry is append-only, so a raised or lowered marking lives in its latest marking
        # change: the rule reads the marking in force, never the one recorded first.
        Decision = self.model
        Change = apps.get_model("coordination", "DecisionMarkingChange")
        unchanged = Q(marking_change_id__isnull=True) & named_q(
            Decision, user, marking="marking_now"
        )
        changed = Q(marking_change_id__isnull=False) & named_q(
            Change, user, owner="marking_change_id", marking="marking_now"
        )
        return self.with_current_marking().filter(
            Q(marking_now__in=OPEN_TO_PARTICIPANTS) | unchanged | changed
        )


class ActionQuerySet(IncidentItemQuerySet):
    pass


class MeetingQuerySet(IncidentItemQuerySet):
    pass


class AuditEntryQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AuditEntryQuerySet":
        """The audit log is for administrators: those of a city see their city's entries,
        platform superusers every entry. Everybody else sees nothing."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self.all()
        if not user.agency_id or not user.has_role(Role.ADMINISTRATOR):
            return self.none()
        return self.filter(city_id=user.agency.city_id)


def _oversees_city_q(user, city_field: str) -> Q:
    """The oversight committee follows every lesson and debrief of its city, as a city's
    administrators see every incident of it; markings still apply to lessons."""
    if user.agency_id and user_can(user, Capability.LESSON_OVERSEE):
        return Q(**{city_field: user.agency.city_id})
    return Q(pk__in=[])


class DebriefQuerySet(models.QuerySet):
    def visible_to(self, user) -> "DebriefQuerySet":
        """Debriefs of the incidents the user sees (AMBER), and of the city for its oversight
        committee."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self.all()
        if not user.agency_id:
            return self.none()
        Incident = apps.get_model("incidents", "Incident")
        return self.filter(
            Q(incident__in=Incident.objects.visible_to(user).values("pk"))
            | _oversees_city_q(user, "incident__city_id")
        )


class LessonQuerySet(models.QuerySet):
    def visible_to(self, user) -> "LessonQuerySet":
        """Lessons of the incidents the user sees whose marking admits them; for the oversight
        committee, those of every incident of its city under the same marking rule; and the
        lessons imported into the user's city (GREEN or CLEAR, no incident: the whole city)."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        marked = self.filter(Q(marking__in=OPEN_TO_PARTICIPANTS) | named_q(self.model, user))
        if user.is_superuser:
            return marked
        if not user.agency_id:
            return self.none()
        Incident = apps.get_model("incidents", "Incident")
        city_id = user.agency.city_id
        return marked.filter(
            Q(incident__in=Incident.objects.visible_to(user).values("pk"))
            | (Q(incident__isnull=False) & _oversees_city_q(user, "city_id"))
            | Q(incident__isnull=True, city_id=city_id)
        )

    def open(self) -> "LessonQuerySet":
        from .models import LESSON_OPEN_STATUSES

        return self.filter(status__in=LESSON_OPEN_STATUSES)
