"""The one access rule (invariant 4): every read that leaves the server goes through ``visible_to``.

A user sees the incidents their agency participates in (administrators: every incident of their
city; superusers: every city), and within those the items whose marking admits them: CLEAR, GREEN
and AMBER admit every reader of the incident; AMBER+STRICT the agencies named (the author's among
them); RED the people named (the author among them). No role, not even superuser, reads a
restricted item it is not named on.
"""

from django.apps import apps
from django.db import models
from django.db.models import Exists, OuterRef, Q

from coordination.markings import OPEN_TO_PARTICIPANTS, Marking
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


def named_q(model, user, *, owner: str = "pk", marking: str = "marking") -> Q:
    """Whether the marking admits ``user``, for rows of ``model`` that carry recipient lists.

    ``owner`` is the expression holding the id of the row whose ``recipient_agencies`` /
    ``recipient_people`` apply (``pk``, or an annotation naming another row of ``model``).
    """
    name = model._meta.model_name
    agencies = model.recipient_agencies.through.objects.filter(
        **{f"{name}_id": OuterRef(owner), "agency_id": user.agency_id or 0}
    )
    people = model.recipient_people.through.objects.filter(
        **{f"{name}_id": OuterRef(owner), "user_id": user.pk}
    )
    return (Q(**{marking: Marking.AMBER_STRICT}) & Exists(agencies)) | (
        Q(**{marking: Marking.RED}) & Exists(people)
    )


class IncidentItemQuerySet(models.QuerySet):
    """Items that belong to an incident and carry a marking: decisions, reports, actions, events."""

    def visible_to(self, user) -> "IncidentItemQuerySet":
        if not _is_reader(user):
            return self.none()
        Incident = apps.get_model("incidents", "Incident")
        qs = self.marked_for(user)
        if user.is_superuser:
            return qs
        return qs.filter(incident__in=Incident.objects.visible_to(user).values("pk"))

    def marked_for(self, user) -> "IncidentItemQuerySet":
        """The rows whose marking admits ``user`` (participation aside)."""
        return self.filter(Q(marking__in=OPEN_TO_PARTICIPANTS) | named_q(self.model, user))
