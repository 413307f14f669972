"""Reads of the comms app, each through ``visible_to(user)``.

Rotas, escalation policies and responder groups are the city's: every partner of the city may see
who is on call and how alerts escalate. Contact methods are personal: a user sees their own, and
an administrator of the city (directory managers) those of the city's people.
"""

from django.apps import apps
from django.db import models
from django.db.models import Exists, OuterRef, Q

from coordination.roles import Capability, user_can


def _is_reader(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def _city_id(user) -> int | None:
    return user.agency.city_id if user.agency_id else None


class _CityScopedQuerySet(models.QuerySet):
    # Path from the model to its agency's city, e.g. "agency__city_id".
    city_lookup = "agency__city_id"

    def visible_to(self, user):
        """Rows of the user's city (superusers: every city; users of no agency: none)."""
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        city_id = _city_id(user)
        if city_id is None:
            return self.none()
        return self.filter(**{self.city_lookup: city_id})


class RotaQuerySet(_CityScopedQuerySet):
    pass


class RotaItemQuerySet(_CityScopedQuerySet):
    """Shifts and overrides: visible with their rota."""

    city_lookup = "rota__agency__city_id"


class ResponderGroupQuerySet(_CityScopedQuerySet):
    pass


class EscalationPolicyQuerySet(_CityScopedQuerySet):
    pass


class ContactMethodQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ContactMethodQuerySet":
        """The user's own contact methods; for directory managers also those of their city."""
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        own = Q(user_id=user.pk)
        city_id = _city_id(user)
        if city_id is not None and user_can(user, Capability.DIRECTORY_MANAGE):
            return self.filter(own | Q(user__agency__city_id=city_id))
        return self.filter(own)


# --- Activations ----------------------------------------------------------------------------------


class ActivationQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ActivationQuerySet":
        """Activations of the user's city that call the user's agency or that it sent; a city's
        administrators see all of the city's; superusers every one."""
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        city_id = _city_id(user)
        if city_id is None:
            return self.none()
        mine = self.filter(city_id=city_id)
        if user_can(user, Capability.DIRECTORY_MANAGE):
            return mine
        targets = apps.get_model("comms", "ActivationTarget").objects.filter(
            activation_id=OuterRef("pk"), agency_id=user.agency_id
        )
        return mine.filter(Exists(targets) | Q(created_by__agency_id=user.agency_id))


class _ActivationItemQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Rows of the activations the user may see."""
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        activations = apps.get_model("comms", "Activation").objects.visible_to(user)
        return self.filter(activation__in=activations.values("pk"))


class NotificationQuerySet(_ActivationItemQuerySet):
    pass


class AcknowledgementQuerySet(_ActivationItemQuerySet):
    pass


# --- Public statements and situation briefs -------------------------------------------------------


class IncidentOpenItemQuerySet(models.QuerySet):
    """Statements, their versions and reviews, and briefs: items of an incident that only ever
    carry an open marking (CLEAR, GREEN or AMBER), so participation alone decides who reads them.

    ``incident_lookup`` is the path from the model to its incident, ``marking_lookup`` to the
    marking that applies.
    """

    incident_lookup = "incident"
    marking_lookup = "marking"

    def visible_to(self, user):
        if not _is_reader(user):
            return self.none()
        from coordination.markings import OPEN_TO_PARTICIPANTS

        Incident = apps.get_model("incidents", "Incident")
        qs = self.filter(**{f"{self.marking_lookup}__in": OPEN_TO_PARTICIPANTS})
        if user.is_superuser:
            return qs
        return qs.filter(
            **{f"{self.incident_lookup}__in": Incident.objects.visible_to(user).values("pk")}
        )


class PublicStatementQuerySet(IncidentOpenItemQuerySet):
    def published(self) -> "PublicStatementQuerySet":
        """What the public may read: statements once published (current or superseded), never
        of an exercise, newest first."""
        return self.filter(
            published_at__isnull=False, incident__is_exercise=False, marking="CLEAR"
        ).order_by("-published_at", "-pk")


class StatementItemQuerySet(IncidentOpenItemQuerySet):
    incident_lookup = "statement__incident"
    marking_lookup = "statement__marking"


class BriefQuerySet(IncidentOpenItemQuerySet):
    pass


# --- Exercises ---------------------------------------------------------------------------------


class ScenarioQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ScenarioQuerySet":
        """Scenarios of the user's city, for directing staff only: a scenario is the script of an
        exercise, and players who read it beforehand would train on nothing. Superusers: all."""
        if not _is_reader(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        city_id = _city_id(user)
        if city_id is None or not user_can(user, Capability.EXERCISE_DIRECT):
            return self.none()
        return self.filter(city_id=city_id)


class ScenarioInjectQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ScenarioInjectQuerySet":
        scenarios = apps.get_model("comms", "Scenario").objects.visible_to(user)
        return self.filter(scenario__in=scenarios.values("pk"))


class ExerciseRunQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExerciseRunQuerySet":
        """Exercises whose incident the user may see (the incidents' own access rule)."""
        if not _is_reader(user):
            return self.none()
        incidents = apps.get_model("incidents", "Incident").objects.visible_to(user)
        return self.filter(incident__in=incidents.values("pk"))


class ExerciseInjectQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExerciseInjectQuerySet":
        """Injects of visible exercises: every one for directing staff, released ones for the
        players (what is still to come stays a surprise)."""
        runs = apps.get_model("comms", "ExerciseRun").objects.visible_to(user)
        mine = self.filter(run__in=runs.values("pk"))
        if user.is_superuser or user_can(user, Capability.EXERCISE_DIRECT):
            return mine
        return mine.filter(state="released")
