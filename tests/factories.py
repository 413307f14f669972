"""factory_boy factories for the domain. Writes that have services go through them."""

from datetime import time, timedelta

import factory
from django.utils import timezone

from coordination.models import (
    Action,
    Agency,
    AgencyType,
    City,
    Debrief,
    Decision,
    DecisionMarkingChange,
    DecisionPosition,
    Lesson,
    LessonTransition,
    Observation,
    RoleAssignment,
    User,
)
from coordination.roles import Role
from coordination.services import user_set_roles
from incidents.models import Incident, IncidentEvent, MethaneReport, TimelineEntry


class CityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = City
        django_get_or_create = ("code",)

    name = factory.Sequence(lambda n: f"City {n}")
    code = factory.Sequence(lambda n: f"C{chr(65 + n // 26 % 26)}{chr(65 + n % 26)}")
    time_zone = "Europe/Stockholm"


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency

    city = factory.SubFactory(CityFactory)
    name = factory.Sequence(lambda n: f"Agency {n}")
    short_name = factory.Sequence(lambda n: f"AG{n}")
    type = AgencyType.POLICE


class UserFactory(factory.django.DjangoModelFactory):
    """A user with roles: ``UserFactory(roles=[Role.LOGGIST])``; default liaison officer."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    agency = factory.SubFactory(AgencyFactory)
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create:
            user_set_roles(target=self, roles=list(extracted or [Role.LIAISON_OFFICER]))


def decision_fields(**overrides):
    """Keyword arguments for ``decision_record`` with every JDM section filled in."""
    fields = {
        "information": "Reports of an armed attacker at the central station.",
        "threat_assessment": "Threat is ongoing; risk to public high.",
        "working_strategy": "Save life, contain the threat, protect the public.",
        "powers_policies": "Civil Contingencies Act; joint operating principles.",
        "options": [
            {"option": "Evacuate the station", "chosen": True, "reason": "Removes the public."},
            {"option": "Shelter in place", "chosen": False, "reason": "Attacker still mobile."},
        ],
        "decision": "Evacuate the central station and close it to the public.",
        "rationale": "Protects life while the threat is located.",
        "decided_at": timezone.now() - timedelta(minutes=1),
    }
    fields.update(overrides)
    return fields


def methane_fields(**overrides):
    """Keyword arguments for ``methane_submit`` (and a valid API body) with every section filled."""
    fields = {
        "major_incident_declared": True,
        "exact_location": "Central station",
        "incident_type": "Armed attack",
        "hazards": "Attacker at large",
        "access": "From the north",
        "emergency_services_present": "Police",
        "emergency_services_required": "Ambulance",
    }
    fields.update(overrides)
    return fields


def row_counts() -> dict[str, int]:
    """How many rows each written model holds: equal before and after means nothing was written."""
    models = [
        Incident,
        IncidentEvent,
        Decision,
        DecisionPosition,
        DecisionMarkingChange,
        Action,
        MethaneReport,
        TimelineEntry,
        Agency,
        User,
        RoleAssignment,
        Debrief,
        Observation,
        Lesson,
        LessonTransition,
    ]
    return {model.__name__: model.objects.count() for model in models}


# --- comms: rotas, contact methods, escalation ------------------------------------------------


class RotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "comms.Rota"

    agency = factory.SubFactory(AgencyFactory)
    name = factory.Sequence(lambda n: f"Duty officer rota {n}")


class ShiftFactory(factory.django.DjangoModelFactory):
    """A shift as stored: local wall-clock start and length. Default: a one-off 8-hour shift."""

    class Meta:
        model = "comms.Shift"

    rota = factory.SubFactory(RotaFactory)
    user = factory.SubFactory(
        UserFactory, agency=factory.SelfAttribute("..rota.agency"), roles=[Role.DUTY_OFFICER]
    )
    tier = "primary"
    start_date = factory.LazyFunction(lambda: timezone.localdate())
    start_time = time(8)
    duration = timedelta(hours=8)
    recurrence = "once"


class RotaOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "comms.RotaOverride"

    rota = factory.SubFactory(RotaFactory)
    user = factory.SubFactory(
        UserFactory, agency=factory.SelfAttribute("..rota.agency"), roles=[Role.DUTY_OFFICER]
    )
    tier = "primary"
    starts_at = factory.LazyFunction(timezone.now)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(hours=2))


class ResponderGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "comms.ResponderGroup"
        skip_postgeneration_save = True

    agency = factory.SubFactory(AgencyFactory)
    name = factory.Sequence(lambda n: f"Group {n}")

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            self.members.set(extracted)


# --- lessons ------------------------------------------------------------------------------------


def lesson_fields(**overrides):
    """Keyword arguments for ``lesson_create`` besides the incident, the user and the owner."""
    fields = {
        "title": "Radio interoperability failed at the rendezvous point",
        "description": "Fire and police could not talk on a shared channel for 20 minutes.",
        "recommended_action": "Exercise the shared talk group monthly.",
    }
    fields.update(overrides)
    return fields
