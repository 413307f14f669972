"""Every list endpoint costs the same number of queries for 3 rows as for 33 (no N+1)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from coordination.models import User
from coordination.roles import Role
from coordination.services import action_create, action_update, decision_record
from incidents.services import incident_open, methane_submit, timeline_add

from .factories import AgencyFactory, UserFactory, decision_fields

pytestmark = pytest.mark.django_db

FEW, MORE = 3, 30


def fresh_client(api, user):
    """A client for a freshly loaded user, as every real request has (roles not cached yet)."""
    return api(User.objects.get(pk=user.pk))


def get_rows(client, url: str, expected_rows: int) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.data
    assert len(response.data["results"]) == expected_rows


def assert_constant(api, django_assert_max_num_queries, user, url, add, base_rows):
    """Measure with FEW rows, add MORE, and require the same cost for FEW + MORE rows."""
    for n in range(FEW):
        add(n)
    client = fresh_client(api, user)
    with CaptureQueriesContext(connection) as queries:
        get_rows(client, url, base_rows + FEW)
    at_few = len(queries)

    for n in range(FEW, FEW + MORE):
        add(n)
    client = fresh_client(api, user)
    with django_assert_max_num_queries(at_few):
        get_rows(client, url, base_rows + FEW + MORE)


def test_incident_list(api, django_assert_max_num_queries, commander, police, fire, transport):
    chair = UserFactory(agency=fire, roles=[Role.NEUTRAL_COMMANDER])

    def add(n):
        incident_open(
            user=commander,
            title=f"Incident {n}",
            type="other",
            level=2,
            lead_agency=police if n % 2 else fire,
            participating_agencies=[fire, transport],
            neutral_commander=chair,
            latitude="59.3",
            longitude="18.0",
        )

    assert_constant(
        api, django_assert_max_num_queries, commander, "/api/v1/incidents/?page_size=100", add, 0
    )


def test_decision_list_with_positions(
    api, django_assert_max_num_queries, liaison, incident, police, fire
):
    def add(n):
        previous = incident.decisions.order_by("-sequence").first()
        decision_record(
            incident_id=incident.pk,
            author=liaison,
            agreed_by=[fire],
            dissents=[(police, f"Dissent {n}")],
            review_by=timezone.now() + timedelta(hours=1),
            supersedes=previous if n % 3 == 1 else None,
            **decision_fields(decision=f"Decision {n}"),
        )

    assert_constant(
        api,
        django_assert_max_num_queries,
        liaison,
        f"/api/v1/incidents/{incident.pk}/decisions/",
        add,
        0,
    )


def test_methane_list(api, django_assert_max_num_queries, liaison, incident):
    def add(n):
        methane_submit(
            incident_id=incident.pk,
            user=liaison,
            major_incident_declared=bool(n % 2),
            exact_location=f"Location {n}",
            incident_type="Armed attack",
            hazards="Attacker at large",
            access="From the north",
            emergency_services_present="Police",
            emergency_services_required="Ambulance",
            casualties_p1=n,
        )

    assert_constant(
        api,
        django_assert_max_num_queries,
        liaison,
        f"/api/v1/incidents/{incident.pk}/methane/",
        add,
        0,
    )


def test_action_list(
    api, django_assert_max_num_queries, liaison, commander, incident, police, fire
):
    decision = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())

    def add(n):
        action = action_create(
            incident_id=incident.pk,
            user=liaison,
            title=f"Action {n}",
            owner_agency=police if n % 2 else fire,
            owner=commander if n % 2 else liaison,
            due_at=timezone.now() + timedelta(minutes=n),
            decision=decision,
        )
        if n % 3 == 0:
            action_update(action_id=action.pk, user=liaison, status="done")

    assert_constant(
        api,
        django_assert_max_num_queries,
        liaison,
        f"/api/v1/incidents/{incident.pk}/actions/?page_size=100",
        add,
        0,
    )


def test_timeline_list(api, django_assert_max_num_queries, liaison, commander, incident):
    def add(n):
        timeline_add(
            incident_id=incident.pk, user=commander if n % 2 else liaison, text=f"Entry {n}"
        )

    assert_constant(
        api,
        django_assert_max_num_queries,
        liaison,
        f"/api/v1/incidents/{incident.pk}/timeline/",
        add,
        0,
    )


def test_event_list(api, django_assert_max_num_queries, liaison, commander, incident, fire):
    def add(n):
        if n % 2:
            timeline_add(incident_id=incident.pk, user=commander, text=f"Entry {n}")
        else:
            action_create(incident_id=incident.pk, user=liaison, title=f"A{n}", owner_agency=fire)

    # The incident already has its "incident.opened" event.
    assert_constant(
        api,
        django_assert_max_num_queries,
        liaison,
        f"/api/v1/incidents/{incident.pk}/events/",
        add,
        1,
    )


def test_user_list(api, django_assert_max_num_queries, administrator, police, fire):
    def add(n):
        UserFactory(agency=police if n % 2 else fire, roles=[Role.OBSERVER, Role.LOGGIST])

    # The administrator is listed too.
    assert_constant(
        api, django_assert_max_num_queries, administrator, "/api/v1/users/?page_size=100", add, 1
    )


def test_agency_list(api, django_assert_max_num_queries, administrator, city):
    def add(n):
        AgencyFactory(city=city)

    # The administrator's own agency is listed too.
    assert_constant(
        api, django_assert_max_num_queries, administrator, "/api/v1/agencies/?page_size=100", add, 1
    )
