"""The built-in scenario: loaded by ``seed_demo`` once, checked like any scenario, and runnable
by the demo's neutral commander from first report to recovery; scenarios in the admin are
checked like the API's."""

import io

import pytest
from django.core.management import call_command

from comms.exercises import exercise_create
from comms.models import InjectKind, Scenario
from comms.scenario_data import STADIUM_ATTACK
from coordination.models import Agency, User

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_the_stadium_scenario_once():
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    assert f"Loaded the exercise scenario {STADIUM_ATTACK['name']!r}" in output.getvalue()
    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert f"Kept the exercise scenario {STADIUM_ATTACK['name']!r}" in again.getvalue()

    scenario = Scenario.objects.get(builtin_key=STADIUM_ATTACK["key"])
    injects = list(scenario.injects.order_by("offset_seconds"))
    assert 10 <= len(injects) <= 15
    assert injects[-1].offset_seconds == 3600
    kinds = {inject.kind for inject in injects}
    assert kinds == set(InjectKind.values)
    declared = [i for i in injects if i.kind == InjectKind.METHANE]
    assert [i.content["major_incident_declared"] for i in declared] == [False, True, True, True]
    assert [i.content["casualties_fatal"] for i in declared] == [None, 2, 4, 4]

    chair = User.objects.get(username="chair")
    others = Agency.objects.filter(city=scenario.city).exclude(pk=chair.agency_id)[:3]
    run = exercise_create(user=chair, scenario_id=scenario.pk, participating_agencies=list(others))
    assert run.incident.is_exercise
    assert run.injects.count() == len(injects)


def test_the_admin_checks_an_inject_like_the_api(client, police, city):
    superuser = User.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(superuser)
    response = client.post(
        "/admin/comms/scenario/add/",
        {
            "city": city.pk,
            "name": "Admin drill",
            "incident_title": "Drill",
            "incident_type": "marauding_terrorist_attack",
            "incident_level": 3,
            "injects-TOTAL_FORMS": 1,
            "injects-INITIAL_FORMS": 0,
            "injects-0-offset_seconds": 30,
            "injects-0-kind": "message",
            "injects-0-title": "Empty message",
            "injects-0-content": "{}",
        },
    )
    assert response.status_code == 200
    assert "text may not be blank" in response.content.decode()
    assert not Scenario.objects.filter(name="Admin drill").exists()
