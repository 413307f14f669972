"""Need to know, deny by default (invariant 4), as the REST API applies it.

The incident-scoped URLs are read from ``ctpn.urls``, so an endpoint added later is covered here
without anybody remembering to list it.
"""

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework import viewsets
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from comms.briefs import brief_generate
from comms.statements import statement_draft
from coordination.lessons import debrief_create, observation_add
from coordination.meetings import meeting_schedule
from coordination.models import Action, Decision
from coordination.roles import Capability, Role
from coordination.services import action_create, decision_record
from ctpn.permissions import DeclaredPermission
from incidents.api import IncidentViewSet
from incidents.models import Incident
from incidents.services import incident_open, methane_submit, timeline_add

from .factories import (
    AgencyFactory,
    CityFactory,
    UserFactory,
    decision_fields,
    methane_fields,
    row_counts,
)

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete", "options"]
# Every incident-scoped endpoint known today; the URL walk must find at least these.
KNOWN_INCIDENT_URL_NAMES = {
    "incident-detail",
    "incident-transition",
    "incident-decision-list",
    "incident-decision-detail",
    "incident-decision-verify",
    "incident-methane-list",
    "incident-methane-detail",
    "incident-action-list",
    "incident-action-detail",
    "incident-timeline-list",
    "incident-timeline-detail",
    "incident-event-list",
    "incident-debrief-list",
    "incident-debrief-detail",
    "incident-debrief-close",
    "incident-debrief-observations",
    "incident-debrief-observation-lesson",
}
# Writes that take no body: a member's empty POST does what they say.
NO_BODY = {"incident-debrief-close", "incident-debrief-observation-lesson"}


def api_v1_patterns() -> list[URLPattern]:
    """Every URL pattern mounted under /api/v1/ in ctpn.urls."""

    def flatten(entries):
        for entry in entries:
            if isinstance(entry, URLResolver):
                yield from flatten(entry.url_patterns)
            else:
                yield entry

    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and str(entry.pattern) == "api/v1/":
            return list(flatten(entry.url_patterns))
    raise AssertionError("ctpn.urls mounts nothing at api/v1/")


def view_class(pattern: URLPattern):
    return getattr(pattern.callback, "cls", None) or pattern.callback.view_class


def groups(pattern: URLPattern) -> set[str]:
    return set(pattern.pattern.regex.groupindex)


# Write-only steps that take no body: publishing or withdrawing a statement, issuing a brief;
# answering a statement is for communications leads (the commander gets 403).
BODILESS_STEPS = {
    "incident-statement-publish",
    "incident-statement-withdraw",
    "incident-statement-approve",
    "incident-statement-request-changes",
    "incident-statement-revise",
    "incident-brief-issue",
}


def is_incident_scoped(pattern: URLPattern) -> bool:
    return "incident_pk" in groups(pattern) or (
        issubclass(view_class(pattern), IncidentViewSet) and "pk" in groups(pattern)
    )


def incident_scoped_urls(incident) -> list[tuple[str, str, URLPattern]]:
    """(url name, url, pattern) of every incident-scoped endpoint, with real ids filled in."""
    urls = []
    for pattern in api_v1_patterns():
        if not is_incident_scoped(pattern):
            continue
        assert pattern.name, f"{pattern.pattern} has no name"
        kwargs = {}
        if "incident_pk" in groups(pattern):
            kwargs["incident_pk"] = incident.pk
            if "pk" in groups(pattern):
                model = view_class(pattern).model
                item = model.objects.filter(incident=incident).first()
                assert item is not None, f"populated_incident needs a {model.__name__}"
                kwargs["pk"] = item.pk
                if "observation_id" in groups(pattern):
                    kwargs["observation_id"] = item.observations.get().pk
        else:
            kwargs["pk"] = incident.pk
        urls.append((pattern.name, reverse(pattern.name, kwargs=kwargs), pattern))
    return urls


@pytest.fixture
def populated_incident(incident, commander, liaison, fire):
    """The incident with one item of every kind an incident-scoped URL can address."""
    decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    methane_submit(incident_id=incident.pk, user=liaison, **methane_fields())
    action_create(incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=fire)
    timeline_add(incident_id=incident.pk, user=liaison, text="Shots fired")
    debrief = debrief_create(
        incident_id=incident.pk, user=commander, title="Hot debrief", held_at=incident.opened_at
    )
    observation_add(debrief_id=debrief.pk, user=liaison, category="other", text="Radios failed")
    meeting_schedule(
        incident_id=incident.pk,
        user=liaison,
        title="Strategic coordinating group",
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    spokesperson = UserFactory(agency=commander.agency, roles=[Role.COMMUNICATIONS_LEAD])
    statement_draft(incident_id=incident.pk, user=spokesperson, headline="Closed", body="Avoid.")
    brief_generate(incident_id=incident.pk, user=commander)
    return incident


def test_the_url_walk_finds_every_incident_scoped_endpoint(populated_incident):
    names = {name for name, _, _ in incident_scoped_urls(populated_incident)}

    assert names >= KNOWN_INCIDENT_URL_NAMES
    assert "incident-list" not in names and "agency-list" not in names


def test_a_member_reaches_every_incident_scoped_url(api, commander, populated_incident):
    """The URLs built from the router are real: a member gets answers, not 404s."""
    client = api(commander)
    for name, url, pattern in incident_scoped_urls(populated_incident):
        if "get" in pattern.callback.actions:
            response = client.get(url)
            assert response.status_code == 200, (name, url, response.status_code)
        elif name in NO_BODY:
            response = client.post(url, {})
            assert response.status_code in (200, 201), (name, url, response.status_code)
        elif name in BODILESS_STEPS:  # the step itself (or the role's refusal), not a 404
            response = client.post(url, {})
            assert response.status_code in (200, 403, 409), (name, url, response.status_code)
        else:  # write-only, like transition: an empty body reaches the view's validation
            response = client.post(url, {})
            assert response.status_code == 400, (name, url, response.status_code)


@pytest.mark.parametrize(
    "role", [Role.STRATEGIC_COMMANDER, Role.OBSERVER, Role.DUTY_OFFICER, Role.LOGGIST]
)
def test_a_non_participating_agency_gets_404_on_every_incident_scoped_url(
    api, populated_incident, transport, role
):
    outsider = UserFactory(agency=transport, roles=[role])
    client = api(outsider)
    before = row_counts()

    for name, url, _ in incident_scoped_urls(populated_incident):
        for method in METHODS:
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 404, (name, method, url, response.status_code)

    assert row_counts() == before


def test_the_outsider_fixture_gets_404_not_403_on_every_incident_scoped_url(
    api, outsider, populated_incident
):
    client = api(outsider)
    for name, url, _ in incident_scoped_urls(populated_incident):
        for method in METHODS:
            body = {} if method == "get" else {"to": "activated", "status": "done"}
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == 404, (name, method, response.status_code)
    assert Incident.objects.get(pk=populated_incident.pk).status == "reported"


def test_a_missing_incident_looks_exactly_like_an_invisible_one(api, outsider, populated_incident):
    client = api(outsider)
    invisible = client.get(f"/api/v1/incidents/{populated_incident.pk}/decisions/")
    missing = client.get(f"/api/v1/incidents/{populated_incident.pk + 1000}/decisions/")

    assert invisible.status_code == missing.status_code == 404
    assert invisible.data == missing.data


def test_the_incident_list_leaves_out_incidents_of_other_agencies(
    api, outsider, liaison, incident, transport, commander
):
    own = incident_open(
        user=commander, title="Transport's own", type="other", level=1, lead_agency=transport
    )

    listed = api(outsider).get("/api/v1/incidents/").data
    member_listed = api(liaison).get("/api/v1/incidents/").data

    assert [row["id"] for row in listed["results"]] == [own.pk]
    assert listed["count"] == 1
    assert incident.pk in {row["id"] for row in member_listed["results"]}
    assert own.pk not in {row["id"] for row in member_listed["results"]}


def test_items_do_not_leak_through_another_incident(api, outsider, populated_incident, commander):
    """An outsider's own incident id does not open another incident's items."""
    own = incident_open(
        user=commander,
        title="Transport's own",
        type="other",
        level=1,
        lead_agency=outsider.agency,
    )
    decision = Decision.objects.get(incident=populated_incident)
    action = Action.objects.get(incident=populated_incident)
    client = api(outsider)

    assert client.get(f"/api/v1/incidents/{own.pk}/decisions/{decision.pk}/").status_code == 404
    assert client.get(f"/api/v1/incidents/{own.pk}/actions/{action.pk}/").status_code == 404
    response = client.patch(f"/api/v1/incidents/{own.pk}/actions/{action.pk}/", {"status": "done"})
    assert response.status_code == 404
    assert Action.objects.get(pk=action.pk).status == "open"
    assert client.get(f"/api/v1/incidents/{own.pk}/decisions/").data["results"] == []


def test_an_administrator_of_the_city_sees_the_incident(api, administrator, populated_incident):
    client = api(administrator)

    listed = client.get("/api/v1/incidents/").data["results"]
    assert [row["id"] for row in listed] == [populated_incident.pk]
    for name, url, pattern in incident_scoped_urls(populated_incident):
        if "get" in pattern.callback.actions:
            assert client.get(url).status_code == 200, name


def test_an_administrator_of_another_city_does_not(api, populated_incident):
    oslo = CityFactory(name="Oslo", code="OSL", time_zone="Europe/Oslo")
    oslo_admin = UserFactory(agency=AgencyFactory(city=oslo), roles=[Role.ADMINISTRATOR])
    client = api(oslo_admin)

    assert client.get("/api/v1/incidents/").data["results"] == []
    for name, url, _ in incident_scoped_urls(populated_incident):
        assert client.get(url).status_code == 404, name


def test_a_superuser_sees_every_city(api, populated_incident):
    oslo = CityFactory(name="Oslo", code="OSL", time_zone="Europe/Oslo")
    oslo_police = AgencyFactory(city=oslo)
    oslo_gold = UserFactory(agency=oslo_police, roles=[Role.STRATEGIC_COMMANDER])
    oslo_incident = incident_open(
        user=oslo_gold, title="Oslo", type="other", level=1, lead_agency=oslo_police
    )
    root = UserFactory(agency=None, is_superuser=True, is_staff=True)
    client = api(root)

    listed = {row["id"] for row in client.get("/api/v1/incidents/").data["results"]}
    assert listed == {populated_incident.pk, oslo_incident.pk}
    for name, url, pattern in incident_scoped_urls(populated_incident):
        if "get" in pattern.callback.actions:
            assert client.get(url).status_code == 200, name


def test_without_login_everything_is_refused_but_the_token_and_the_docs(api, populated_incident):
    client = api()
    for pattern in api_v1_patterns():
        kwargs = {name: populated_incident.pk for name in groups(pattern)}
        url = reverse(pattern.name, kwargs=kwargs)
        for method in METHODS:
            response = getattr(client, method)(url, {}, format="json")
            if pattern.name == "api-token":
                # Open to everybody: it is where credentials are exchanged for a token.
                assert response.status_code == (400 if method == "post" else 405) or (
                    method == "options" and response.status_code == 200
                ), (url, method, response.status_code)
            else:
                assert response.status_code in (401, 403), (url, method, response.status_code)

    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_a_bad_token_is_refused(api, populated_incident):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/v1/incidents/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.data["detail"].code == "authentication_failed"


def test_a_member_using_a_method_an_endpoint_lacks_gets_405(api, liaison, populated_incident):
    client = api(liaison)
    detail_url = f"/api/v1/incidents/{populated_incident.pk}/"

    assert client.post(detail_url, {}, format="json").status_code == 405
    assert client.delete(detail_url).status_code == 405
    assert client.put(f"{detail_url}events/", {}, format="json").status_code == 405


def test_an_inactive_user_is_refused_even_with_a_token(api, liaison, populated_incident):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=liaison)
    liaison.is_active = False
    liaison.save(update_fields=["is_active"])
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert client.get(f"/api/v1/incidents/{populated_incident.pk}/").status_code in (401, 403)


# --- Fail closed: no declared capability, no access ---------------------------------------------


class HalfDeclaredViewSet(viewsets.ViewSet):
    """Declares ``list`` only; ``create`` and ``destroy`` were forgotten."""

    required_capabilities = {"list": Capability.VIEW}

    def list(self, request):
        return Response([])

    def create(self, request):
        return Response({}, status=201)

    def destroy(self, request, pk=None):
        return Response(status=204)


class UndeclaredView(APIView):
    """Declares nothing at all."""

    def get(self, request):
        return Response({})


def test_an_action_without_a_declared_capability_is_refused(commander):
    root = UserFactory(agency=None, is_superuser=True)
    factory = APIRequestFactory()
    list_view = HalfDeclaredViewSet.as_view({"get": "list", "post": "create"})
    detail_view = HalfDeclaredViewSet.as_view({"delete": "destroy"})

    for user in (commander, root):
        request = factory.get("/throwaway/")
        force_authenticate(request, user=user)
        assert list_view(request).status_code == 200

        request = factory.post("/throwaway/", {}, format="json")
        force_authenticate(request, user=user)
        assert list_view(request).status_code == 403

        request = factory.delete("/throwaway/1/")
        force_authenticate(request, user=user)
        assert detail_view(request, pk=1).status_code == 403

        request = factory.get("/throwaway/")
        force_authenticate(request, user=user)
        assert UndeclaredView.as_view()(request).status_code == 403


def test_declared_permission_refuses_what_is_not_declared(commander):
    permission = DeclaredPermission()
    request = APIRequestFactory().post("/throwaway/")
    request.user = commander
    view = HalfDeclaredViewSet()

    view.action = "create"
    assert permission.has_permission(request, view) is False
    view.action = "list"
    assert permission.has_permission(request, view) is True
    view.required_capabilities = {"list": "capability.nobody.defined"}
    assert permission.has_permission(request, view) is False


def test_every_routed_api_action_declares_who_may_use_it():
    """Fail closed would leave an undeclared endpoint dead: each one must say who may use it."""
    for pattern in api_v1_patterns():
        cls = view_class(pattern)
        if not any(isinstance(p, DeclaredPermission) for p in cls().get_permissions()):
            continue  # open on purpose, like the token endpoint
        declared = getattr(cls, "required_capabilities", {})
        actions = getattr(pattern.callback, "actions", None)
        if actions is not None:
            used = set(actions.values())
        else:
            used = {method for method in cls.http_method_names if method != "options"}
            used = {method for method in used if hasattr(cls, method)} - {"head"}
        assert used <= set(declared), f"{pattern.name}: {sorted(used - set(declared))} undeclared"
        assert set(declared.values()) <= set(Capability.values), pattern.name
