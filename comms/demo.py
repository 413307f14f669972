"""Demonstration rotas, contact methods and escalation policies, loaded by ``seed_demo``.

Everything is written through the services, as an administrator of the city would. Idempotent:
an agency that already has the demo rota is left as it is.
"""

from collections.abc import Mapping
from datetime import datetime, time, timedelta

from django.utils import timezone

from coordination.models import Agency, City, User
from coordination.roles import Role

from .exercises import scenario_builtin_load
from .models import ContactKind, ContactMethod, Rota, Scenario, StepTarget, Tier
from .scenario_data import BUILTIN_SCENARIOS
from .services import (
    StepSpec,
    contact_method_create,
    escalation_policy_save,
    responder_group_save,
    rota_create,
    shift_create,
)

ROTA_NAME = "Strategic duty officer"
# The range the Swedish regulator (PTS) reserves for fiction, 070-174 06 05 to 070-174 06 99:
# nobody real is ever texted by the demo.
FICTION_SMS_FIRST = 46701740605
FICTION_SMS_LAST = 46701740699


def seed_rotas(*, agencies: Mapping[str, Agency], users: Mapping[str, User], admin: User) -> None:
    """A rota per agency whose two duty officers alternate weekly as primary and secondary
    (hand-over Monday 08:00 local), an e-mail contact method for every user, SMS numbers for the
    duty officers, an "All duty officers" group and a default escalation policy per agency."""
    for person in users.values():
        if (
            person.email
            and not ContactMethod.objects.filter(user=person, kind=ContactKind.EMAIL).exists()
        ):
            contact_method_create(
                user=person, owner=person, kind=ContactKind.EMAIL, address=person.email
            )
    sms_number = FICTION_SMS_FIRST
    for short_name, agency in agencies.items():
        pair = [
            person
            for person in users.values()
            if person.agency_id == agency.pk and person.has_role(Role.DUTY_OFFICER)
        ][:2]
        numbers = [sms_number, sms_number + 1]
        sms_number += 2
        assert sms_number <= FICTION_SMS_LAST + 1
        if len(pair) < 2 or Rota.objects.filter(agency=agency, name=ROTA_NAME).exists():
            continue
        rota = rota_create(
            user=admin,
            agency=agency,
            name=ROTA_NAME,
            description=f"Answers activation alerts for {short_name}, 24/7.",
        )
        zone = agency.city.zone
        today = timezone.localdate(timezone=zone)
        monday = today - timedelta(days=today.weekday())
        for week, (primary, secondary) in enumerate([pair, pair[::-1]]):
            # Wall-clock Monday 08:00 to the next Monday 08:00, every other week.
            start = datetime.combine(monday + timedelta(weeks=week), time(8))
            for tier, officer in ((Tier.PRIMARY, primary), (Tier.SECONDARY, secondary)):
                shift_create(
                    user=admin,
                    rota_id=rota.pk,
                    officer=officer,
                    tier=tier,
                    starts_at=start.replace(tzinfo=zone),
                    ends_at=(start + timedelta(days=7)).replace(tzinfo=zone),
                    recurrence="weekly",
                    interval=2,
                )
        for officer, number in zip(pair, numbers, strict=True):
            contact_method_create(
                user=admin,
                owner=officer,
                kind=ContactKind.SMS,
                address=f"+{number}",
                label="duty phone",
            )
        group = responder_group_save(
            user=admin, agency=agency, name="All duty officers", members=pair
        )
        escalation_policy_save(
            user=admin,
            agency=agency,
            name="Standard activation",
            rota=rota,
            is_default=True,
            repeat_count=2,
            steps=[
                StepSpec(target=StepTarget.PRIMARY, wait_minutes=5),
                StepSpec(target=StepTarget.SECONDARY, wait_minutes=10),
                StepSpec(target=StepTarget.GROUP, group=group, wait_minutes=15),
            ],
        )


# --- Public statements ----------------------------------------------------------------------------

# A communications lead for every demo agency that has none ("comms" of STAD is one already).
COMMUNICATIONS_LEADS = [
    ("comms-pol", "Petra", "Olsson", "POL"),
    ("comms-ssbf", "Henrik", "Blom", "SSBF"),
    ("comms-amb", "Alva", "Strand", "AMB"),
    ("comms-hsv", "Tove", "Mattsson", "HSV"),
    ("comms-sl", "Felix", "Nyström", "SL"),
    ("comms-net", "Ebba", "Holmberg", "NET"),
    ("comms-mil", "Axel", "Jonsson", "MIL"),
]
DEMO_STATEMENT_HEADLINE = "Stockholm Central Station closed: avoid the area"


def seed_statement(*, incident, users: Mapping[str, User]) -> None:
    """One published public line on the demo incident, drafted by the police communications
    lead and approved by the fire brigade and the city (idempotent: only when it has none)."""
    from .models import PublicStatement
    from .statements import statement_approve, statement_draft, statement_publish

    if PublicStatement.objects.filter(incident=incident).exists():
        return
    police, fire, city = users["comms-pol"], users["comms-ssbf"], users["comms"]
    statement = statement_draft(
        incident_id=incident.pk,
        user=police,
        headline=DEMO_STATEMENT_HEADLINE,
        body="Emergency services are responding to an incident at Stockholm Central Station. "
        "The station and the streets around it are closed. Please avoid the area, follow the "
        "instructions of police officers, and do not share images of the scene. Trains are held "
        "outside the city centre. If you are worried about someone, call the information line "
        "at 113 13.",
        approver_agencies=[agency for agency in (fire.agency, city.agency) if agency],
    )
    statement_approve(statement_id=statement.pk, user=fire)
    statement_approve(statement_id=statement.pk, user=city)
    statement_publish(statement_id=statement.pk, user=police)


def seed_scenarios(*, city: City) -> list[tuple[Scenario, bool]]:
    """Load the scenarios the platform ships into ``city``; ones already there are kept."""
    return [scenario_builtin_load(city=city, data=data) for data in BUILTIN_SCENARIOS]
