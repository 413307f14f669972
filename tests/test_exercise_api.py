"""The exercise API: scenarios written by directing staff, exercises created from them, the
director's controls with refused transitions answering 409 and why, bad input 400 naming the
field; and the incident list keeping exercises apart from real incidents."""

import pytest

from comms.models import ExerciseRun, ExerciseStatus, Scenario
from coordination.roles import Role
from incidents.models import Incident

from .exercising import director_of, message, run_of, three_injects
from .factories import UserFactory, row_counts

pytestmark = pytest.mark.django_db

SCENARIOS = "/api/v1/scenarios/"
EXERCISES = "/api/v1/exercises/"


@pytest.fixture
def director(police):
    return director_of(police)


def scenario_body(**overrides):
    body = {
        "name": "Stadium drill",
        "incident_title": "Attack at the stadium",
        "injects": three_injects(),
    }
    body.update(overrides)
    return body


def test_directing_staff_write_scenarios_and_replace_their_injects(api, director):
    created = api(director).post(SCENARIOS, scenario_body(), format="json")
    assert created.status_code == 201, created.data
    assert [i["offset_seconds"] for i in created.data["injects"]] == [60, 120, 180]
    assert created.data["duration_seconds"] == 180

    url = f"{SCENARIOS}{created.data['id']}/"
    replaced = api(director).put(
        url, scenario_body(name="Renamed", injects=[message(5, "Only")]), format="json"
    )
    assert replaced.status_code == 200, replaced.data
    assert replaced.data["name"] == "Renamed"
    assert [i["title"] for i in replaced.data["injects"]] == ["Only"]
    assert api(director).get(SCENARIOS).data["results"][0]["name"] == "Renamed"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"name": ""}, "name", "blank"),
        ({"incident_level": 9}, "incident_level", ""),
        ({"injects": [{"offset_seconds": -1, "kind": "message", "title": "x"}]}, "injects", ""),
        ({"injects": [{"offset_seconds": 1, "kind": "rumour", "title": "x"}]}, "injects", ""),
        (
            {"injects": [{"offset_seconds": 1, "kind": "message", "title": "x", "content": {}}]},
            "injects",
            "Inject 1: text may not be blank",
        ),
        (
            {
                "injects": [
                    {
                        "offset_seconds": 1,
                        "kind": "methane",
                        "title": "x",
                        "content": {"exact_location": "Here", "casualties_p1": -3},
                    }
                ]
            },
            "injects",
            "casualties_p1 must be a whole number",
        ),
        (
            {
                "injects": [
                    {
                        "offset_seconds": 1,
                        "kind": "activation",
                        "title": "x",
                        "content": {"message": "Go", "urgency": "whenever"},
                    }
                ]
            },
            "injects",
            "urgency must be one of",
        ),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_field_and_writes_nothing(
    api, director, change, field, says
):
    before = Scenario.objects.count()
    response = api(director).post(SCENARIOS, scenario_body(**change), format="json")
    assert response.status_code == 400
    assert field in response.data
    assert says in str(response.data[field])
    assert Scenario.objects.count() == before


def test_players_may_not_read_or_write_scenarios(api, director, liaison):
    scenario = api(director).post(SCENARIOS, scenario_body(), format="json").data
    assert api(liaison).get(SCENARIOS).status_code == 403
    assert api(liaison).get(f"{SCENARIOS}{scenario['id']}/").status_code == 403
    assert api(liaison).post(SCENARIOS, scenario_body(name="Mine"), format="json").status_code == (
        403
    )


def test_a_scenario_that_was_run_is_kept(api, director, fire):
    run = run_of(director, three_injects(), [fire])
    response = api(director).delete(f"{SCENARIOS}{run.scenario_id}/")
    assert response.status_code == 409
    assert "kept for the record" in response.data["detail"]


def test_the_director_creates_and_controls_an_exercise_and_refusals_say_why(
    api, director, fire, liaison
):
    scenario = api(director).post(SCENARIOS, scenario_body(), format="json").data
    created = api(director).post(
        EXERCISES, {"scenario": scenario["id"], "participating_agencies": [fire.pk]}, format="json"
    )
    assert created.status_code == 201, created.data
    assert created.data["is_exercise"] is True
    assert created.data["status"] == ExerciseStatus.READY
    assert created.data["allowed_controls"] == ["start", "end"]
    incident = Incident.objects.get(pk=created.data["incident"])
    assert incident.is_exercise
    assert set(incident.participating_agencies.values_list("short_name", flat=True)) == {
        "POL",
        "FRS",
    }
    url = f"{EXERCISES}{created.data['id']}/"

    refused = api(director).post(f"{url}pause/")
    assert refused.status_code == 409
    assert refused.data["detail"] == "Cannot pause this exercise: it has not started yet."
    assert refused.data["allowed"] == ["start", "end"]

    assert api(liaison).post(f"{url}start/").status_code == 403  # a player
    started = api(director).post(f"{url}start/")
    assert started.status_code == 200
    assert started.data["status"] == ExerciseStatus.RUNNING
    assert api(director).post(f"{url}resume/").data["detail"] == (
        "Cannot resume this exercise: it is running."
    )
    assert api(director).post(f"{url}pause/").data["status"] == ExerciseStatus.PAUSED
    assert api(director).post(f"{url}end/").data["status"] == ExerciseStatus.ENDED
    final = api(director).post(f"{url}start/")
    assert final.status_code == 409
    assert final.data["detail"] == (
        "Cannot start this exercise: it has ended; an ended exercise is final."
    )
    assert final.data["allowed"] == []


def test_bad_exercise_input_is_refused_naming_the_field(api, director, administrator, oslo_police):
    before = row_counts()
    assert "scenario" in api(director).post(EXERCISES, {}, format="json").data
    assert "scenario" in api(director).post(EXERCISES, {"scenario": 999}, format="json").data
    scenario = api(director).post(SCENARIOS, scenario_body(), format="json").data
    foreign = api(director).post(
        EXERCISES,
        {"scenario": scenario["id"], "participating_agencies": [oslo_police.pk]},
        format="json",
    )
    assert foreign.status_code == 400
    assert "participating_agencies" in foreign.data
    assert row_counts() == before
    assert not ExerciseRun.objects.exists()


def test_a_director_without_activation_rights_cannot_run_activation_injects(
    api, administrator, fire
):
    activation = {
        "offset_seconds": 0,
        "kind": "activation",
        "title": "Call",
        "content": {"message": "Assemble"},
    }
    scenario = api(administrator).post(
        SCENARIOS, scenario_body(injects=[activation]), format="json"
    )
    assert scenario.status_code == 201
    refused = api(administrator).post(EXERCISES, {"scenario": scenario.data["id"]}, format="json")
    assert refused.status_code == 400
    assert "activation.send" in str(refused.data["scenario"])


def test_the_incident_list_keeps_exercises_apart(api, director, fire, incident):
    run = run_of(director, three_injects(), [fire])
    listed = api(director).get("/api/v1/incidents/").data["results"]
    assert [i["id"] for i in listed] == [incident.pk]
    exercises = api(director).get("/api/v1/incidents/?is_exercise=true").data["results"]
    assert [(i["id"], i["is_exercise"]) for i in exercises] == [(run.incident_id, True)]
    detail = api(director).get(f"/api/v1/incidents/{run.incident_id}/").data
    assert detail["is_exercise"] is True


def test_an_observer_sees_the_exercise_but_only_released_injects(api, director, police, fire):
    run = run_of(director, three_injects(), [fire])
    observer = UserFactory(username="watcher", agency=police, roles=[Role.OBSERVER])
    seen = api(observer).get(f"{EXERCISES}{run.pk}/")
    assert seen.status_code == 200
    assert seen.data["injects"] == []
    assert len(api(director).get(f"{EXERCISES}{run.pk}/").data["injects"]) == 3
