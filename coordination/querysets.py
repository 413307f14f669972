"""Reads of the coordination app, each through ``visible_to(user)``."""

from django.db import models
from django.db.models import Q

from incidents.querysets import IncidentItemQuerySet

from .roles import Role


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
    pass


class ActionQuerySet(IncidentItemQuerySet):
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
