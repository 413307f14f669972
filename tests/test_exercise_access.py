"""Who sees and controls an exercise: its routes for the director, a player, an administrator of
the city whose agency does not take part, and a non-participant. Players never read the script
(scenarios, injects still to come); a non-participant learns nothing (404)."""

import pytest

from comms.exercises import exercise_control
from comms.models import ExerciseStatus

from .auth import signed_in_client
from .exercising import director_of, message, run_of

pytestmark = pytest.mark.django_db

SECRET = "Second location rumour"


@pytest.fixture
def director(police):
    return director_of(police)


@pytest.fixture
def run(director, fire):
    return run_of(director, [message(3600, SECRET, "Shots at the mall")], [fire])


def routes(run) -> list[str]:
    return [
        f"/api/v1/exercises/{run.pk}/",
        f"/api/v1/exercises/{run.pk}/report/",
        f"/exercises/{run.pk}/",
        f"/exercises/{run.pk}/report/",
        f"/exercises/{run.pk}/report.csv",
        f"/exercises/{run.pk}/report.json",
    ]


def test_the_director_reads_the_script_and_controls_the_exercise(run, director):
    client = signed_in_client(director)
    for url in routes(run):
        assert client.get(url).status_code == 200, url
    assert SECRET in client.get(f"/exercises/{run.pk}/").content.decode()
    assert SECRET in client.get("/exercises/scenarios/").content.decode()
    assert client.get(f"/api/v1/scenarios/{run.scenario_id}/").status_code == 200
    started = client.post(f"/exercises/{run.pk}/control/", {"control": "start"})
    assert started.status_code == 302
    run.refresh_from_db()
    assert run.status == ExerciseStatus.RUNNING


def test_a_player_follows_the_exercise_but_never_reads_what_is_to_come(run, director, liaison):
    exercise_control(run_id=run.pk, user=director, control="start")
    client = signed_in_client(liaison)
    for url in routes(run):
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url
    assert client.get("/exercises/scenarios/").status_code == 403
    assert client.get(f"/api/v1/scenarios/{run.scenario_id}/").status_code == 403
    assert client.get("/api/v1/scenarios/").status_code == 403
    assert client.post(f"/exercises/{run.pk}/control/", {"control": "end"}).status_code == 403
    assert client.post(f"/api/v1/exercises/{run.pk}/end/").status_code == 403
    listed = client.get("/exercises/").content.decode()
    assert run.incident.reference in listed
    assert "Create an exercise" not in listed
    run.refresh_from_db()
    assert run.status == ExerciseStatus.RUNNING


def test_directing_staff_of_an_agency_not_taking_part_cannot_control_it(run, administrator):
    client = signed_in_client(administrator)
    # The city's administrators see every incident of the city, so the answer is 403, not 404.
    assert client.get(f"/exercises/{run.pk}/").status_code == 200
    refused = client.post(f"/api/v1/exercises/{run.pk}/start/")
    assert refused.status_code == 403
    assert "taking part" in refused.json()["detail"]
    assert client.post(f"/exercises/{run.pk}/control/", {"control": "start"}).status_code == 403
    run.refresh_from_db()
    assert run.status == ExerciseStatus.READY


def test_a_non_participant_learns_nothing(run, outsider):
    client = signed_in_client(outsider)
    for url in routes(run):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/api/v1/exercises/{run.pk}/start/").status_code == 404
    assert client.post(f"/exercises/{run.pk}/control/", {"control": "start"}).status_code == 404
    assert run.incident.reference not in client.get("/exercises/").content.decode()
    assert client.get("/api/v1/exercises/").json()["results"] == []


def test_a_refused_control_on_the_page_says_why(run, director):
    client = signed_in_client(director)
    refused = client.post(f"/exercises/{run.pk}/control/", {"control": "resume"})
    assert refused.status_code == 409
    assert "Cannot resume this exercise: it has not started yet." in refused.content.decode()
    unknown = client.post(f"/exercises/{run.pk}/control/", {"control": "explode"})
    assert unknown.status_code == 400
