"""Load demonstration data: Stockholm, eight agencies, a user for every role, and an exercise.

Idempotent: run it as often as you like; what exists is kept, and the exercise is created once.
Everything in the exercise is written through the services, exactly as the API would.

It lives in ``comms``, the app on top, because the demo spans every app (rotas and contact methods
included) and only ``comms`` may import all of them.
"""

from base64 import b32encode
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from comms.demo import COMMUNICATIONS_LEADS, seed_rotas, seed_scenarios, seed_statement
from coordination.mfa import mfa_required
from coordination.models import Agency, AgencyType, City, User
from coordination.roles import Role
from coordination.services import (
    action_create,
    action_update,
    decision_record,
    decision_supersede,
    user_set_roles,
)
from incidents.models import Incident, IncidentLevel, IncidentStatus, IncidentType
from incidents.services import incident_open, incident_transition, methane_submit, timeline_add

DEMO_PASSWORD = "ctpn-demo-2026"  # noqa: S105  (printed on purpose: demo data only)
# The demo users who must sign in with a second factor share one authenticator secret, printed
# with the logins: add it to an authenticator app (or `manage.py demo_code`). Demo only.
DEMO_TOTP_KEY = b"ctpn-demo-totp-2026!"  # 20 bytes, as authenticator apps expect
DEMO_TOTP_SECRET = b32encode(DEMO_TOTP_KEY).decode()
EXERCISE_TITLE = "Exercise NORDIC SHIELD: marauding attack at Stockholm Central Station"

AGENCIES = [
    ("POL", "Swedish Police Authority, Stockholm Region", AgencyType.POLICE),
    ("SSBF", "Greater Stockholm Fire Brigade", AgencyType.FIRE_RESCUE),
    ("AMB", "Region Stockholm Ambulance Service", AgencyType.AMBULANCE),
    ("HSV", "Region Stockholm Health Care", AgencyType.HEALTH),
    ("STAD", "City of Stockholm", AgencyType.LOCAL_AUTHORITY),
    ("SL", "Region Stockholm Public Transport", AgencyType.TRANSPORT),
    ("NET", "Stockholm Power Grid", AgencyType.UTILITIES),
    ("MIL", "Swedish Armed Forces, Central Military Region", AgencyType.MILITARY),
]

# username, first name, last name, agency, roles
USERS = [
    ("gold", "Astrid", "Lindqvist", "POL", [Role.STRATEGIC_COMMANDER]),
    ("silver", "Erik", "Nyberg", "SSBF", [Role.TACTICAL_COMMANDER]),
    ("chair", "Maria", "Ekström", "STAD", [Role.NEUTRAL_COMMANDER]),
    ("liaison-fire", "Johan", "Berg", "SSBF", [Role.LIAISON_OFFICER]),
    ("liaison-amb", "Sara", "Holm", "AMB", [Role.LIAISON_OFFICER]),
    ("liaison-sl", "Omar", "Haddad", "SL", [Role.LIAISON_OFFICER]),
    ("loggist", "Karin", "Sjöberg", "POL", [Role.LOGGIST]),
    ("duty", "Lars", "Persson", "POL", [Role.DUTY_OFFICER]),
    ("comms", "Elin", "Wallin", "STAD", [Role.COMMUNICATIONS_LEAD]),
    ("observer", "Nils", "Dahl", "HSV", [Role.OBSERVER]),
    ("cityadmin", "Ingrid", "Falk", "STAD", [Role.ADMINISTRATOR]),
]

# On-call rotas (comms.demo): two duty officers per agency who alternate weekly as primary and
# secondary. The police's first one is the "duty" user above.
DUTY_OFFICERS = [
    ("duty-pol-2", "Frida", "Lund", "POL"),
    ("duty-ssbf", "Anders", "Norén", "SSBF"),
    ("duty-ssbf-2", "Linnea", "Ström", "SSBF"),
    ("duty-amb", "Hanna", "Åberg", "AMB"),
    ("duty-amb-2", "Mikael", "Sund", "AMB"),
    ("duty-hsv", "Emma", "Björk", "HSV"),
    ("duty-hsv-2", "Oskar", "Lind", "HSV"),
    ("duty-stad", "Sofia", "Nordin", "STAD"),
    ("duty-stad-2", "Gustav", "Wikström", "STAD"),
    ("duty-sl", "Amir", "Karimi", "SL"),
    ("duty-sl-2", "Klara", "Engström", "SL"),
    ("duty-net", "Viktor", "Hedlund", "NET"),
    ("duty-net-2", "Maja", "Forsberg", "NET"),
    ("duty-mil", "Jonas", "Eklund", "MIL"),
    ("duty-mil-2", "Ida", "Sandberg", "MIL"),
]
DUTY_USERS = [
    (username, first, last, agency, [Role.DUTY_OFFICER])
    for username, first, last, agency in DUTY_OFFICERS
]
COMMS_USERS = [
    (username, first, last, agency, [Role.COMMUNICATIONS_LEAD])
    for username, first, last, agency in COMMUNICATIONS_LEADS
]


class Command(BaseCommand):
    help = "Load the Stockholm demonstration data (idempotent) and print the demo logins."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            city, _ = City.objects.get_or_create(
                code="STO", defaults={"name": "Stockholm", "time_zone": "Europe/Stockholm"}
            )
            agencies = {}
            for short_name, name, agency_type in AGENCIES:
                agencies[short_name], _ = Agency.objects.get_or_create(
                    city=city,
                    short_name=short_name,
                    defaults={"name": name, "type": agency_type},
                )
            users = {}
            for username, first, last, agency, roles in [*USERS, *DUTY_USERS, *COMMS_USERS]:
                users[username] = self._user(username, first, last, agencies[agency], roles)
            platform = self._user("platform", "Platform", "Administrator", None, [])
            if not platform.is_superuser:
                platform.is_superuser = platform.is_staff = True
                platform.save(update_fields=["is_superuser", "is_staff"])

            self._rotas(agencies, users)
            second_factor = [
                person for person in [*users.values(), platform] if mfa_required(person)
            ]
            for person in second_factor:
                self._authenticator(person)

            exercise = Incident.objects.filter(city=city, title=EXERCISE_TITLE).first()
            if exercise is None:
                exercise = self._exercise(agencies, users)
                self.stdout.write(f"Created {exercise.reference} ({EXERCISE_TITLE}).")
            else:
                self.stdout.write(f"Kept {exercise.reference}; demo data already loaded.")
            seed_statement(incident=exercise, users=users)
            for scenario, created in seed_scenarios(city=city):
                done = "Loaded" if created else "Kept"
                self.stdout.write(f"{done} the exercise scenario {scenario.name!r}.")

        self.stdout.write("\nDemo logins (every password is the same):")
        self.stdout.write(f"  {'username':<14} {'password':<16} {'agency':<6} roles")
        logins = [*USERS, *DUTY_USERS, *COMMS_USERS, ("platform", "", "", "-", [])]
        for username, _first, _last, agency, roles in logins:
            role_names = ", ".join(roles) or "superuser (every city, Django admin)"
            self.stdout.write(f"  {username:<14} {DEMO_PASSWORD:<16} {agency:<6} {role_names}")
        names = ", ".join(person.username for person in second_factor)
        self.stdout.write(
            f"\nTwo-factor sign-in for {names}: after the password, enter the 6-digit code of the"
            f"\ndemo authenticator secret {DEMO_TOTP_SECRET} (add it to an authenticator app, or"
            "\nrun: .venv/bin/python manage.py demo_code). Demo data only: real accounts each"
            "\nset up their own at /accounts/mfa/enrol/."
        )

    def _user(self, username, first, last, agency, roles) -> User:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "agency": agency,
                "email": f"{username}@demo.ctpn.invalid",
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            user_set_roles(target=user, roles=roles)
        return user

    def _authenticator(self, user: User) -> None:
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            TOTPDevice.objects.create(
                user=user, name="Demo authenticator", key=DEMO_TOTP_KEY.hex(), confirmed=True
            )

    def _exercise(self, agencies, users) -> Incident:
        now = timezone.now()
        gold, loggist = users["gold"], users["loggist"]
        incident = incident_open(
            user=gold,
            title=EXERCISE_TITLE,
            type=IncidentType.MARAUDING_TERRORIST_ATTACK,
            level=IncidentLevel.LEVEL_3,
            lead_agency=agencies["POL"],
            participating_agencies=list(agencies.values()),
            neutral_commander=users["chair"],
            latitude=Decimal("59.330231"),
            longitude=Decimal("18.058151"),
            location_description="Stockholm Central Station, main hall and Vasagatan entrance",
            is_exercise=True,
            opened_at=now - timedelta(minutes=40),
        )
        incident_transition(incident_id=incident.pk, user=gold, to=IncidentStatus.ACTIVATED)
        incident_transition(incident_id=incident.pk, user=gold, to=IncidentStatus.RESPONSE)

        for minutes, text in [
            (38, "Multiple calls: two attackers with knives in the main hall."),
            (34, "Armed police on scene; one attacker detained, one fled towards Klarabergsgatan."),
            (27, "Station evacuated; trains held outside the station."),
            (19, "Casualty clearing station set up at Vasaplan."),
            (11, "Strategic coordinating group convened at City Hall."),
        ]:
            timeline_add(
                incident_id=incident.pk,
                user=loggist,
                text=text,
                occurred_at=now - timedelta(minutes=minutes),
            )

        methane: dict[str, Any] = {
            "exact_location": "Stockholm Central Station, main hall; RVP Vasaplan",
            "incident_type": "Marauding terrorist attack, bladed weapons",
            "access": "Access from Vasagatan only; Klarabergsviadukten closed",
            "emergency_services_present": "Police (armed response), fire, two ambulances",
            "emergency_services_required": "Eight more ambulances, HART, transport police",
        }
        methane_submit(
            incident_id=incident.pk,
            user=loggist,
            major_incident_declared=True,
            hazards="Attacker at large; crowd crush at exits",
            casualties_p1=3,
            casualties_p2=5,
            casualties_p3=12,
            casualties_notes="Estimate from first crews",
            **methane,
        )
        methane_submit(
            incident_id=incident.pk,
            user=loggist,
            major_incident_declared=True,
            hazards="Second attacker detained; suspicious bag on platform 14",
            casualties_fatal=1,
            casualties_p1=4,
            casualties_p2=7,
            casualties_p3=15,
            casualties_notes="Confirmed by the casualty clearing station",
            **methane,
        )

        def jdm(decision: str, minutes_ago: int, **extra):
            fields = {
                "information": "Two attackers reported; one detained, one at large near the "
                "station. Crowds leaving by Vasagatan.",
                "threat_assessment": "Threat ongoing; high risk to the public in and around the "
                "station; moderate risk to responders in the warm zone.",
                "working_strategy": "Save life; neutralise the threat; keep the public away; "
                "support the injured and the families.",
                "powers_policies": "Police Act s.24; joint operating principles for MTA; "
                "fire brigade warm-zone procedure.",
                "options": [
                    {"option": decision, "chosen": True, "reason": "Best protects life now."},
                    {
                        "option": "Wait for more information",
                        "chosen": False,
                        "reason": "Delay puts the public at risk.",
                    },
                ],
                "decision": decision,
                "rationale": "Consistent with the working strategy; agreed by the partners.",
                "decided_at": now - timedelta(minutes=minutes_ago),
                "agreed_by": [agencies["POL"], agencies["SSBF"], agencies["AMB"]],
            }
            fields.update(extra)
            return fields

        decision_record(
            incident_id=incident.pk,
            author=loggist,
            **jdm("Declare a major incident and stand up the strategic coordinating group.", 12),
        )
        cordon = decision_record(
            incident_id=incident.pk,
            author=loggist,
            **jdm("Set an outer cordon of 200 m around the station.", 10),
        )
        decision_record(
            incident_id=incident.pk,
            author=loggist,
            **jdm(
                "Suspend all rail traffic through Stockholm Central.",
                8,
                dissents=[(agencies["SL"], "Suspend only the commuter lines; keep the metro.")],
                agreed_by=[agencies["POL"], agencies["SSBF"]],
            ),
        )
        decision_record(
            incident_id=incident.pk,
            author=loggist,
            **jdm("Open a survivor reception centre at City Hall.", 6),
        )
        decision_supersede(
            original=cordon,
            author=loggist,
            **jdm(
                "Widen the outer cordon to 400 m: suspicious bag found on platform 14.",
                4,
            ),
        )

        for title, owner, due_minutes, status in [
            ("Set up the 400 m cordon and traffic diversions", "POL", 15, "in_progress"),
            ("Deploy HART to the casualty clearing station", "AMB", -5, "open"),
            ("Open survivor reception centre at City Hall", "STAD", 30, "open"),
            ("Hold trains outside Stockholm Central", "SL", -20, "done"),
        ]:
            action = action_create(
                incident_id=incident.pk,
                user=gold,
                title=title,
                owner_agency=agencies[owner],
                due_at=now + timedelta(minutes=due_minutes),
            )
            if status != "open":
                action_update(action_id=action.pk, user=gold, status=status)
        return incident

    def _rotas(self, agencies, users) -> None:
        seed_rotas(agencies=agencies, users=users, admin=users["cityadmin"])
