"""The need-to-know matrix: every route x role x marking x participation, searched for leaks.

The routes come from the URL resolver, so a route added later is requested here or, if it has no
rule in ``RULES``, fails the test until somebody decides how it is exercised. One incident holds
an item of every kind (decision, M/ETHANE report, timeline entry, action) under every marking,
each with its own secret string; every response of every route, for every person, is searched
for every secret, and a secret may appear only where its reader is allowed to see it. The live
WebSocket and the replay are exercised the same way.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from comms.consumers import CLOSE_NOT_VISIBLE
from coordination.lessons import lesson_create
from coordination.markings import Marking
from coordination.meetings import meeting_schedule
from coordination.models import AgencyType
from coordination.roles import Role
from coordination.services import action_create, decision_record
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open, methane_submit, timeline_add

from .auth import signed_in_client
from .factories import AgencyFactory, CityFactory, UserFactory, decision_fields, methane_fields
from .live import connect, headers_for

MARKINGS = list(Marking.values)
KINDS = ("decision", "methane", "timeline", "action", "lesson", "meeting")
# Item routes are requested for these markings only (the open ones behave alike); every other
# route is requested once per person and searched for the secrets of all markings at once.
ITEM_ROUTE_MARKINGS = (Marking.GREEN, Marking.AMBER_STRICT, Marking.RED)
ITEM_MODELS = {
    "decision",
    "action",
    "methanereport",
    "timelineentry",
    "incidentevent",
    "lesson",
    "meeting",
}


# --- the people -----------------------------------------------------------------------------------

# Who may read which marking. The incident: police leads, fire and ambulance take part, transport
# (same city) does not. The author is a fire liaison; AMBER+STRICT items name police, RED items
# name the police commander.
READS = {
    "author": set(MARKINGS),
    "named_commander": set(MARKINGS),
    "police_observer": set(MARKINGS) - {Marking.RED},
    "ambulance_liaison": {Marking.CLEAR, Marking.GREEN, Marking.AMBER},
    "city_administrator": {Marking.CLEAR, Marking.GREEN, Marking.AMBER},
    "superuser": {Marking.CLEAR, Marking.GREEN, Marking.AMBER},
    "non_participant": set(),
}


@dataclass
class World:
    incident: Any
    people: dict[str, Any]
    items: dict[tuple[str, str], Any] = field(default_factory=dict)  # (kind, marking) -> item
    prefix: str = "SECRET"

    def secret(self, kind: str, marking: str) -> str:
        return f"{self.prefix}-{kind}-{marking}-{self.incident.pk}"

    def secrets(self) -> dict[str, str]:
        """secret string -> marking"""
        return {self.secret(k, m): m for k in KINDS for m in MARKINGS}


def build_world() -> World:
    city = CityFactory(name="Leak City", code="LKC", time_zone="Europe/London")
    police = AgencyFactory(city=city, name="Police", short_name="POL", type=AgencyType.POLICE)
    fire = AgencyFactory(city=city, name="Fire", short_name="FRS", type=AgencyType.FIRE_RESCUE)
    ambulance = AgencyFactory(city=city, name="Ambulance", short_name="AMB")
    transport = AgencyFactory(city=city, name="Transport", short_name="TRN")
    people = {
        "author": UserFactory(username="m-author", agency=fire, roles=[Role.LIAISON_OFFICER]),
        "named_commander": UserFactory(
            username="m-gold", agency=police, roles=[Role.STRATEGIC_COMMANDER]
        ),
        "police_observer": UserFactory(username="m-observer", agency=police, roles=[Role.OBSERVER]),
        "ambulance_liaison": UserFactory(
            username="m-ambulance", agency=ambulance, roles=[Role.LIAISON_OFFICER]
        ),
        "city_administrator": UserFactory(
            username="m-admin", agency=transport, roles=[Role.ADMINISTRATOR]
        ),
        "superuser": UserFactory(
            username="m-root", agency=None, is_superuser=True, is_staff=True, roles=[]
        ),
        "non_participant": UserFactory(
            username="m-outsider", agency=transport, roles=[Role.LIAISON_OFFICER]
        ),
    }
    incident = incident_open(
        user=people["named_commander"],
        title="Matrix incident",
        type=IncidentType.IED,
        level=IncidentLevel.LEVEL_3,
        lead_agency=police,
        participating_agencies=[fire, ambulance],
    )
    world = World(incident=incident, people=people)
    for marking in MARKINGS:
        world_add_items(world, marking, police)
    return world


def world_add_items(world: World, marking: str, police) -> None:
    author = world.people["author"]
    recipients: dict[str, Any] = {}
    if marking == Marking.AMBER_STRICT:
        recipients["recipient_agencies"] = [police]
    if marking == Marking.RED:
        recipients["recipient_people"] = [world.people["named_commander"]]
    incident_id = world.incident.pk
    world.items["decision", marking] = decision_record(
        incident_id=incident_id,
        author=author,
        marking=marking,
        **recipients,
        **decision_fields(decision=world.secret("decision", marking)),
    )
    world.items["methane", marking] = methane_submit(
        incident_id=incident_id,
        user=author,
        marking=marking,
        **recipients,
        **methane_fields(hazards=world.secret("methane", marking)),
    )
    world.items["timeline", marking] = timeline_add(
        incident_id=incident_id,
        user=author,
        marking=marking,
        text=world.secret("timeline", marking),
        **recipients,
    )
    world.items["meeting", marking] = meeting_schedule(
        incident_id=incident_id,
        user=author,
        marking=marking,
        title=world.secret("meeting", marking),
        scheduled_at=timezone.now() + timedelta(hours=1),
        **recipients,
    )
    world.items["action", marking] = action_create(
        incident_id=incident_id,
        user=author,
        marking=marking,
        title=world.secret("action", marking),
        owner_agency=author.agency,
        **recipients,
    )
    world.items["lesson", marking] = lesson_create(
        incident_id=incident_id,
        user=author,
        marking=marking,
        title=world.secret("lesson", marking),
        description="A lesson identified.",
        owner_agency=author.agency,
        **recipients,
    )


# --- the routes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How a route is exercised: ``scope`` says which objects fill its URL; ``methods`` which
    requests are made (a POST carries an empty body: refused, so nothing changes); ``shows``
    names the item kind an allowed reader must find there (proof that the search can fail).
    ``skip`` explains a route that is classified but not requested."""

    scope: str = "none"  # none | incident | item:<kind> | panel | admin | export
    methods: tuple[str, ...] = ("get",)
    shows: str = ""
    skip: str = ""


NOT_INCIDENT_MATERIAL = "serves no incident item (rotas, alerting, accounts); nothing to leak"
RULES: dict[str, Rule] = {
    # API: incidents and their items
    "incident-list": Rule(),
    "incident-detail": Rule("incident"),
    "incident-transition": Rule("incident", ("post",)),
    "incident-decision-list": Rule("incident", shows="decision"),
    "incident-decision-verify": Rule("incident"),
    "incident-decision-detail": Rule("item:decision", shows="decision"),
    "incident-decision-marking": Rule("item:decision", ("post",)),
    "incident-decision-positions": Rule("item:decision", ("post",)),
    "incident-methane-list": Rule("incident", shows="methane"),
    "incident-methane-detail": Rule("item:methane", shows="methane"),
    "incident-methane-marking": Rule("item:methane", ("post",)),
    "incident-action-list": Rule("incident", shows="action"),
    "incident-action-detail": Rule("item:action", ("get", "patch"), shows="action"),
    "incident-action-marking": Rule("item:action", ("post",)),
    "incident-timeline-list": Rule("incident", shows="timeline"),
    "incident-timeline-detail": Rule("item:timeline", shows="timeline"),
    "incident-timeline-marking": Rule("item:timeline", ("post",)),
    "incident-event-list": Rule("incident", shows="timeline"),  # the replay
    # API: directory and the rest
    "api-me": Rule(),
    "agency-list": Rule(),
    "user-list": Rule(),
    "alert-list": Rule(),
    "activation-list": Rule(),
    "api-schema": Rule(),
    "api-docs": Rule(),
    # Pages
    "home": Rule(),
    "pages:incident-list": Rule(),
    "pages:incident-dashboard": Rule("incident", shows="decision"),
    "pages:incident-wall": Rule("incident", shows="timeline"),
    "pages:incident-panel": Rule("panel", shows="lesson"),
    "pages:incident-decision-new": Rule("incident"),
    "pages:incident-methane-new": Rule("incident"),
    "pages:incident-action-new": Rule("incident"),
    "pages:incident-timeline-new": Rule("incident"),
    "pages:incident-transition": Rule("incident", ("get", "post")),
    "pages:incident-decision-position": Rule("item:decision", ("get", "post")),
    "pages:incident-action-status": Rule("item:action", ("post",)),
    "alerts": Rule(),
    "activations": Rule(),
    "activation-new": Rule(),
    "rotas": Rule(),
    "contact-methods": Rule(),
    # The audit log: the matrix's own restricted reads are in it by the time it is requested.
    "audit-log": Rule(),
    "audit-export": Rule(),
    "health": Rule(skip="reports whether the platform runs (503 without a worker); no items"),
    # Debriefs and lessons
    "lesson-api-list": Rule(shows="lesson"),
    "lesson-api-counts": Rule(),
    "lesson-api-detail": Rule("item:lesson", ("get", "patch"), shows="lesson"),
    "lesson-api-transition": Rule("item:lesson", ("post",)),
    "lesson-api-assign": Rule("item:lesson", ("post",)),
    "lesson-api-export": Rule(),
    "lesson-api-import": Rule(methods=("post",)),
    "incident-debrief-list": Rule("incident"),
    "lessons": Rule(shows="lesson"),
    "lesson": Rule("item:lesson", shows="lesson"),
    "lesson-transition": Rule("item:lesson", ("post",)),
    "lesson-assign": Rule("item:lesson", ("post",)),
    "debriefs": Rule("incident"),
    # Meetings of the strategic cell, and the exports of an incident's record
    "incident-meeting-list": Rule("incident", shows="meeting"),
    "incident-meeting-detail": Rule("item:meeting", ("get", "patch"), shows="meeting"),
    "incident-meeting-transition": Rule("item:meeting", ("post",)),
    "incident-meeting-attendance": Rule("item:meeting", ("post",)),
    "incident-meeting-marking": Rule("item:meeting", ("post",)),
    "pages:incident-meetings": Rule("incident", shows="meeting"),
    "pages:incident-meeting-new": Rule("incident"),
    "pages:incident-meeting": Rule("item:meeting", shows="meeting"),
    "pages:incident-meeting-edit": Rule("item:meeting", ("get", "post")),
    "pages:incident-meeting-minutes": Rule("item:meeting", ("post",)),
    "pages:incident-meeting-attendance": Rule("item:meeting", ("post",)),
    "pages:incident-meeting-transition": Rule("item:meeting", ("post",)),
    # The PDF's text is compressed, so searching it proves nothing: tests/test_exports.py reads
    # it back. The CSV files are searched here.
    "incident-export-pdf": Rule("incident"),
    "pages:incident-export-pdf": Rule("incident"),
    "incident-export-decisions": Rule("incident", shows="decision"),
    "incident-export-timeline": Rule("incident", shows="timeline"),
    "incident-export-actions": Rule("incident", shows="action"),
    "pages:incident-export-csv": Rule("export", shows="decision"),
    # Public statements and situation briefs (open markings only: CLEAR, GREEN, AMBER)
    "incident-statement-list": Rule("incident"),
    "incident-brief-list": Rule("incident"),
    "public-line-panel": Rule("incident"),
    "statement-new": Rule("incident"),
    "briefs": Rule("incident"),
    # Exercises: the lists are requested; one exercise's routes are checked by
    # tests/test_exercise_access.py (the matrix's incident is not an exercise).
    "scenario-list": Rule(),
    "exercise-list": Rule(),
    "exercises": Rule(),
    "exercise-scenarios": Rule(),
}
DEBRIEF_ITEM = (
    "a debrief is AMBER for the incident's readers; tests/test_debriefs.py covers outsiders"
)
for _name in [
    "incident-debrief-detail",
    "incident-debrief-close",
    "incident-debrief-observations",
    "incident-debrief-observation-lesson",
    "debrief",
    "debrief-observation",
    "debrief-close",
    "observation-lesson",
]:
    RULES.setdefault(_name, Rule(skip=DEBRIEF_ITEM))
# Pages of the comms app are not namespaced but take ``incident_id`` like the incident pages.
INCIDENT_ID_ROUTES = {"public-line-panel", "statement-new", "briefs", "debriefs"}
STATEMENT_OR_BRIEF = (
    "a statement or brief only ever carries an open marking and draws on none that is "
    "restricted; need to know on them is tested in tests/test_statements.py and test_briefs.py"
)
for _name in [
    "incident-statement-detail",
    "incident-statement-revise",
    "incident-statement-approve",
    "incident-statement-request-changes",
    "incident-statement-publish",
    "incident-statement-withdraw",
    "incident-brief-detail",
    "incident-brief-issue",
    "incident-brief-changes",
    "statement",
    "statement-revise",
    "statement-review",
    "statement-publish",
    "statement-withdraw",
    "brief",
    "brief-issue",
    "brief-changes",
]:
    RULES.setdefault(_name, Rule(skip=STATEMENT_OR_BRIEF))
for _name in ["public-statements", "public-statements-feed"]:
    RULES.setdefault(
        _name,
        Rule(
            skip="public, no sign-in, only CLEAR published statements of real incidents; "
            "searched for planted secrets in tests/test_statements_public.py"
        ),
    )
for _name in [
    "scenario-detail",
    "exercise-detail",
    "exercise-start",
    "exercise-pause",
    "exercise-resume",
    "exercise-end",
    "exercise-report",
    "exercise",
    "exercise-control",
    "exercise-report-export",
]:
    RULES[_name] = Rule(skip="one exercise's routes; tests/test_exercise_access.py checks them")
for _name in [
    "agency-detail",
    "user-detail",
    "rota-list",
    "rota-detail",
    "rota-on-call",
    "rota-revoke-calendar",
    "rota-shift-list",
    "rota-shift-detail",
    "rota-override-list",
    "rota-override-detail",
    "my-contact-method-list",
    "my-contact-method-detail",
    "my-contact-method-rotate-secret",
    "contact-method-list",
    "contact-method-detail",
    "contact-method-rotate-secret",
    "escalation-policy-list",
    "escalation-policy-detail",
    "responder-group-list",
    "responder-group-detail",
    "activation-detail",
    "activation-acknowledge",
    "activation-board",
    "activation-cancel",
    "alert-seen",
    "sms-receipt",
    "api-token",
    "rota",
    "rota-shift-add",
    "rota-shift-delete",
    "rota-override-add",
    "rota-override-delete",
    "rota-calendar-revoke",
    "rota-calendar",
    "ack",
    "alert-answer",
    "activation",
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "mfa-verify",
    "mfa-enrol",
    "mfa-backup-codes",
    "mfa-settings",
    "contact-method-change",
    "user-deactivate",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
]:
    RULES.setdefault(_name, Rule(skip=NOT_INCIDENT_MATERIAL))


def admin_rule(name: str) -> Rule | None:
    """The admin's routes: the change list and change page of every model carrying a marking are
    requested; any other admin route must be about a model that carries none."""
    if not name.startswith("admin:"):
        return None
    route = name.removeprefix("admin:")
    for model in ITEM_MODELS:
        for app in ("coordination", "incidents"):
            if route == f"{app}_{model}_changelist":
                return Rule("admin")
            if route == f"{app}_{model}_change":
                return Rule("admin-item")
            if route.startswith(f"{app}_{model}_"):
                return Rule(skip="adds, deletes or shows history only; the admin is read-only")
    return Rule(skip="admin of a model that carries no marking")


def all_routes() -> list[tuple[str, URLPattern]]:
    def walk(entries, namespace):
        for entry in entries:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, entry.namespace or namespace)
            elif entry.name:
                yield (f"{namespace}:{entry.name}" if namespace else entry.name), entry

    return list(walk(get_resolver().url_patterns, None))


def rule_for(name: str) -> Rule | None:
    return RULES.get(name) or admin_rule(name)


def test_every_route_has_a_rule():
    unclassified = sorted({name for name, _ in all_routes() if rule_for(name) is None})
    assert unclassified == [], (
        f"Routes without a rule in the need-to-know matrix (add them to RULES): {unclassified}"
    )


# --- requests -------------------------------------------------------------------------------------

PANELS = (
    "header",
    "methane",
    "decisions",
    "actions",
    "timeline",
    "agencies",
    "lessons",
    "meetings",
)
ADMIN_MODELS = {
    "decision": "coordination_decision",
    "action": "coordination_action",
    "methane": "incidents_methanereport",
    "timeline": "incidents_timelineentry",
    "lesson": "coordination_lesson",
}


def requests_for(name: str, rule: Rule, world: World) -> list[tuple[str, str, str]]:
    """(method, url, what) for every request ``rule`` makes of route ``name``."""
    incident = world.incident.pk
    out: list[tuple[str, str, str]] = []
    if rule.scope == "none":
        urls = [(reverse(name), "")]
    elif rule.scope == "incident":
        key = (
            "incident_id"
            if name.startswith("pages:") or name in INCIDENT_ID_ROUTES
            else "incident_pk"
        )
        if name in ("incident-detail", "incident-transition"):
            key = "pk"
        urls = [(reverse(name, kwargs={key: incident}), "")]
    elif rule.scope == "export":
        urls = [
            (reverse(name, kwargs={"incident_id": incident, "kind": kind}), kind)
            for kind in ("decisions", "timeline", "actions")
        ]
    elif rule.scope == "panel":
        urls = [(reverse(name, kwargs={"incident_id": incident, "name": p}), p) for p in PANELS]
    elif rule.scope.startswith("item:"):
        kind = rule.scope.removeprefix("item:")
        urls = []
        for marking in ITEM_ROUTE_MARKINGS:
            item = world.items[kind, marking]
            if kind == "lesson":  # lessons have routes of their own, not under the incident
                kwargs = {"pk" if name.startswith("lesson-api") else "lesson_id": item.pk}
            elif name.startswith("pages:"):
                kwargs = {"incident_id": incident, f"{kind}_id": item.pk}
            else:
                kwargs = {"incident_pk": incident, "pk": item.pk}
            urls.append((reverse(name, kwargs=kwargs), marking))
    elif rule.scope == "admin":
        urls = [(reverse(name), "")]
    elif rule.scope == "admin-item":
        model = next(k for k, v in ADMIN_MODELS.items() if name == f"admin:{v}_change")
        urls = [(reverse(name, args=[world.items[model, m].pk]), m) for m in ITEM_ROUTE_MARKINGS]
    else:
        raise AssertionError(f"unknown scope {rule.scope}")
    for url, what in urls:
        for method in rule.methods:
            out.append((method, url, what))
    return out


def leaks(body: str, reader: str, world: World) -> list[str]:
    allowed = READS[reader]
    return [
        secret
        for secret, marking in world.secrets().items()
        if marking not in allowed and secret in body
    ]


@pytest.mark.django_db
def test_no_route_shows_anyone_what_they_may_not_read(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    world = build_world()
    clients = {}
    for reader, user in world.people.items():
        client = signed_in_client(user)  # second factor passed where the person needs one
        clients[reader] = client

    found: list[str] = []
    shown: dict[tuple[str, str], bool] = {}
    requests = 0
    # The audit log last, once the reads and refusals above are recorded in it.
    for name, _pattern in sorted(all_routes(), key=lambda route: route[0].startswith("audit-")):
        rule = rule_for(name)
        assert rule is not None
        if rule.skip:
            continue
        admin = rule.scope.startswith("admin")
        if admin and name not in {
            *(f"admin:{v}_changelist" for v in ADMIN_MODELS.values()),
            *(f"admin:{v}_change" for v in ADMIN_MODELS.values()),
        }:
            continue  # the event admin: covered by the replay and the WebSocket below
        for method, url, _what in requests_for(name, rule, world):
            readers = ["superuser"] if admin else list(READS)
            for reader in readers:
                response = getattr(clients[reader], method)(url, content_type="application/json")
                requests += 1
                assert response.status_code < 500, (name, reader, url, response.status_code)
                raw = (
                    b"".join(response.streaming_content) if response.streaming else response.content
                )
                body = raw.decode("utf-8", errors="replace")
                for secret in leaks(body, reader, world):
                    found.append(f"{reader} {method.upper()} {url} ({name}): {secret}")
                if rule.shows and method == "get":
                    for marking in READS[reader]:
                        secret = world.secret(rule.shows, marking)
                        shown.setdefault((name, reader), False)
                        shown[name, reader] |= secret in body

    assert found == [], "\n".join(found)
    # The search can fail: every allowed reader finds what they may read on the routes that
    # list it (a route whose responses never contain a secret would pass the search vacuously).
    missing = [key for key, seen in shown.items() if not seen]
    assert missing == [], missing
    # Keep the matrix cheap: about a thousand requests (every new kind adds its routes).
    assert requests < 2000, requests


# --- the live feed --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_runtime")
async def test_the_live_feed_shows_each_reader_only_what_they_may_read(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    world = await database_sync_to_async(build_world)()
    police = await database_sync_to_async(lambda: world.people["named_commander"].agency)()
    path = f"/ws/incidents/{world.incident.pk}/"

    sockets: dict[str, Any] = {}
    for reader, user in world.people.items():
        communicator, connected = await connect(path, await headers_for(user))
        assert connected
        first = await communicator.receive_output(timeout=5)
        if reader == "non_participant":
            assert first["type"] == "websocket.close" and first["code"] == CLOSE_NOT_VISIBLE
            continue
        sockets[reader] = communicator

    # A second set of items, with secrets of their own, written while everyone is connected.
    later = World(incident=world.incident, people=world.people, prefix="LIVE")
    for marking in MARKINGS:
        await database_sync_to_async(world_add_items)(later, marking, police)

    expected_events = len(MARKINGS) * len(KINDS)
    for reader, communicator in sockets.items():
        texts = await events_of(communicator, expected_events)
        body = "\n".join(texts)
        assert [s for s, m in later.secrets().items() if m not in READS[reader] and s in body] == []
        assert "audience" not in body  # the recipient lists stay on the server
        for marking in READS[reader]:
            assert later.secret("timeline", marking) in body, (reader, marking)
        hidden = sum('"kind":"hidden"' in text for text in texts)
        assert hidden == len(KINDS) * (len(MARKINGS) - len(READS[reader])), reader
        await communicator.disconnect()


async def events_of(communicator, count: int) -> list[str]:
    """The raw text of the next ``count`` event messages (presence lists are skipped)."""
    texts: list[str] = []
    while len(texts) < count:
        output = await asyncio.wait_for(communicator.receive_output(), timeout=10)
        text = output.get("text", "")
        if text.startswith('{"type":"event"'):
            texts.append(text)
    return texts
