"""The one access rule (invariant 4): every read that leaves the server goes through ``visible_to``.

A user sees the incidents their agency participates in (administrators: every incident of their
city; superusers: every city), and within those the items whose marking is open to participants.
"""

from django.apps import apps
from django.db import models
from django.db.models import Exists, OuterRef, Q

from coordination.markings import OPEN_TO_PARTICIPANTS
from coordination.roles import Role


def _is_reader(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


class IncidentQuerySet(models.QuerySet):
    def visible_to(self, user) -> "IncidentQuerySet":
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        if not user.agency_id:
            return self.none()
        through = self.model.participating_agencies.through  # type: ignore[attr-defined]
        participates = Exists(
            through.objects.filter(incident_id=OuterRef("pk"), agency_id=user.agency_id)
        )
        if user.has_role(Role.ADMINISTRATOR):
            return self.filter(participates | Q(city_id=user.agency.city_id))
        return self.filter(participates)


class IncidentItemQuerySet(models.QuerySet):
    """Items that belong to an incident and carry a marking: decisions, reports, actions, events."""

    def visible_to(self, user) -> "IncidentItemQuerySet":
        if not _is_reader(user):
            return self.none()
        Incident = apps.get_model("incidents", "Incident")
        qs = self.filter(marking__in=OPEN_TO_PARTICIPANTS)
        if user.is_superuser:
            return qs
        return qs.filter(incident__in=Incident.objects.visible_to(user).values("pk"))
