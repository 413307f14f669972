"""Exercise metrics against a hand-built timeline: time to each agency's first acknowledgement
and to quorum, declaration to first joint decision, JDM sections filled; the report page with
its SVG charts and text tables, and its CSV and JSON exports. All from stored timestamps."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from comms.exercises import exercise_control
from comms.metrics import exercise_metrics
from comms.models import Response
from comms.services import activation_acknowledge, activation_send
from coordination.roles import Role
from coordination.services import decision_record
from incidents.services import incident_transition, methane_submit

from .auth import signed_in_client
from .exercising import director_of, message, run_of
from .factories import UserFactory, decision_fields, methane_fields
from .workers import rota_on_call

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 2, 18, 0, tzinfo=UTC)
ONE_OPTION = [{"option": "Evacuate", "chosen": True, "reason": "Only safe course."}]


@pytest.fixture
def run(police, fire, liaison):
    """An exercise with a hand-built timeline, in seconds after T0:

    60 activation to police and fire; 150 police acknowledges; 200 a fire officer cannot
    attend; 290 another fire officer attends (quorum met); 310 incident activated; 320 M/ETHANE
    without declaration; 350 decision 1 (one option, no review); 400 M/ETHANE declaring a major
    incident; 520 decision 2 (one option); 700 decision 3 (two options, review set); 800
    decision 4 corrects decision 2 (two options, no review).
    """
    director = director_of(police)
    police_duty = UserFactory(username="pol-duty", agency=police, roles=[Role.DUTY_OFFICER])
    fire_duty = UserFactory(username="frs-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    fire_second = UserFactory(username="frs-second", agency=fire, roles=[Role.DUTY_OFFICER])
    with time_machine.travel(T0, tick=False) as clock:
        rota_on_call(police, primary=police_duty)
        rota_on_call(fire, primary=fire_duty, secondary=fire_second)
        run = run_of(director, [message(3600, "Later")], [fire])
        exercise_control(run_id=run.pk, user=director, control="start")
        incident = run.incident

        def at(seconds):
            clock.move_to(T0 + timedelta(seconds=seconds))
            return T0 + timedelta(seconds=seconds)

        at(60)
        activation = activation_send(
            user=director, message="Cell to City Hall", agencies=[police, fire], incident=incident
        )
        at(150)
        activation_acknowledge(
            activation_id=activation.pk, user=police_duty, response=Response.ACKNOWLEDGED
        )
        at(200)
        activation_acknowledge(
            activation_id=activation.pk, user=fire_duty, response=Response.CANNOT_ATTEND
        )
        at(290)
        activation_acknowledge(
            activation_id=activation.pk,
            user=fire_second,
            response=Response.ATTENDING,
            eta_minutes=9,
        )
        at(310)
        incident_transition(incident_id=incident.pk, user=director, to="activated")
        at(320)
        methane_submit(
            incident_id=incident.pk, user=liaison, **methane_fields(major_incident_declared=False)
        )
        at(355)
        decision_record(
            incident_id=incident.pk,
            author=liaison,
            **decision_fields(decided_at=at(350), options=ONE_OPTION),
        )
        at(400)
        methane_submit(incident_id=incident.pk, user=liaison, **methane_fields())
        at(525)
        second = decision_record(
            incident_id=incident.pk,
            author=liaison,
            **decision_fields(decided_at=at(520), options=ONE_OPTION),
        )
        at(705)
        decision_record(
            incident_id=incident.pk,
            author=liaison,
            **decision_fields(decided_at=at(700), review_by=T0 + timedelta(hours=2)),
        )
        at(805)
        decision_record(
            incident_id=incident.pk,
            author=liaison,
            supersedes=second,
            **decision_fields(decided_at=at(800)),
        )
        at(900)
        exercise_control(run_id=run.pk, user=director, control="end")
    run.refresh_from_db()
    return run


def test_metrics_from_the_stored_timeline(run, liaison):
    # Read long after the exercise: nothing depends on the clock at the time of reading.
    metrics = exercise_metrics(run=run, user=liaison)

    [activation] = metrics.activations
    assert activation.sent_at == T0 + timedelta(seconds=60)
    assert [(r.agency, r.seconds_to_acknowledge) for r in activation.agencies] == [
        ("FRS", 230.0),  # "cannot attend" at 200 s does not count
        ("POL", 90.0),
    ]
    assert activation.seconds_to_quorum == 230.0
    assert metrics.declared_at == T0 + timedelta(seconds=400)
    assert metrics.declared_by == "methane"
    assert metrics.first_decision_at == T0 + timedelta(seconds=520)
    assert metrics.seconds_to_first_decision == 120.0
    assert metrics.decisions == 3  # the corrected decision no longer counts
    assert [(s.key, s.filled) for s in metrics.sections] == [
        ("information", 3),
        ("threat_strategy", 3),
        ("powers", 3),
        ("options", 2),
        ("action", 1),
    ]


def test_without_a_declaring_report_the_activation_of_the_incident_is_the_declaration(
    police, fire, liaison
):
    director = director_of(police)
    with time_machine.travel(T0, tick=False) as clock:
        run = run_of(director, [message(60, "x")], [fire])
        clock.move_to(T0 + timedelta(seconds=100))
        incident_transition(incident_id=run.incident_id, user=director, to="activated")
        clock.move_to(T0 + timedelta(seconds=200))
        decision_record(
            incident_id=run.incident_id,
            author=liaison,
            **decision_fields(decided_at=T0 + timedelta(seconds=175)),
        )
    metrics = exercise_metrics(run=run, user=liaison)
    assert (metrics.declared_by, metrics.seconds_to_first_decision) == ("activated", 75.0)
    assert metrics.activations == []


def test_the_report_page_draws_accessible_charts_beside_text_tables(run, liaison):
    page = signed_in_client(liaison).get(f"/exercises/{run.pk}/report/").content.decode()
    assert page.count("<svg") == 2  # one activation, and the JDM sections
    assert '<title id="chart-jdm-title">' in page
    assert 'role="img"' in page
    assert "<td>POL</td><td>20:02:30 CEST</td><td>90.0</td>" in page  # Stockholm time
    assert '<dd id="seconds-to-first-decision">120.0 s</dd>' in page
    assert '<tr data-section="action"><td>Take action and review' in page
    assert "<script" not in page.split("<main", 1)[-1].split("</main>")[0]


def test_the_report_exports_as_csv_and_json(run, liaison):
    client = signed_in_client(liaison)
    exported = client.get(f"/exercises/{run.pk}/report.csv")
    assert exported["Content-Type"].startswith("text/csv")
    assert "attachment" in exported["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["metric", "subject", "value"]
    assert rows[1][1] == "EXERCISE"
    figures = {(r[0], r[1]): r[2] for r in rows[1:]}
    activation = run.incident.activations.get().pk
    assert figures["seconds_to_first_acknowledgement", f"activation {activation} FRS"] == "230.0"
    assert figures["seconds_to_quorum", f"activation {activation}"] == "230.0"
    assert figures["seconds_to_first_decision", ""] == "120.0"
    assert figures["jdm_section_filled", "options"] == "2"

    body = client.get(f"/exercises/{run.pk}/report.json").json()
    assert body["is_exercise"] is True
    assert body["declaration"]["seconds_to_first_decision"] == 120.0
    assert body["activations"][0]["seconds_to_quorum"] == 230.0
    assert [s["decisions_filled"] for s in body["jdm_sections"]] == [3, 3, 3, 2, 1]
    assert client.get(f"/exercises/{run.pk}/report.xml").status_code == 404
