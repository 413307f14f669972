"""EXERCISE on every channel: an activation inject's e-mail (SMTP), SMS and webhook (HTTP) and
in-app alert, the exercise's pages, its API representations and its incident events."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from comms.exercises import exercise_control, exercise_sweep
from comms.models import Channel, InjectKind, Notification
from comms.services import notification_deliver
from coordination.roles import Role
from incidents.events import event_message
from incidents.models import IncidentEvent

from .auth import signed_in_client
from .exercising import director_of, message, run_of
from .factories import UserFactory
from .workers import contact, rota_on_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def director(police):
    return director_of(police)


@pytest.fixture
def officer(fire, settings, http_sink):
    settings.SMS_PROVIDER_URL = f"{http_sink.url}/sms"
    settings.SMS_PROVIDER_TOKEN = "provider-token"
    settings.PUBLIC_BASE_URL = "https://ctpn.example"
    user = UserFactory(username="fire-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    rota_on_call(fire, primary=user)
    contact(user, "email", "duty@example.org")
    contact(user, "sms", "+46700000001")
    contact(user, "webhook", f"{http_sink.url}/hook", secret="hook-secret")
    http_sink.secrets["/hook"] = "hook-secret"
    return user


@pytest.fixture
def released(director, fire, officer, alerting_broker, django_capture_on_commit_callbacks):
    """An exercise whose activation inject (to fire) and message inject were released."""
    activation = {
        "offset_seconds": 0,
        "kind": InjectKind.ACTIVATION,
        "title": "Stand up the cell",
        "content": {"message": "Cell to City Hall", "agencies": ["FRS"]},
    }
    run = run_of(director, [activation, message(5, "Media enquiry")], [fire])
    # In the recent past, so what the release queued is due when the test delivers it.
    with time_machine.travel(timezone.now() - timedelta(seconds=30), tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            exercise_control(run_id=run.pk, user=director, control="start")
        clock.shift(timedelta(seconds=6))
        assert exercise_sweep() == 2
    return run


def test_activation_inject_alerts_say_exercise_on_every_channel(
    released, officer, smtp_sink, http_sink
):
    activation = released.incident.activations.get()
    assert activation.is_exercise
    for channel in (Channel.EMAIL, Channel.SMS, Channel.WEBHOOK, Channel.IN_APP):
        row = Notification.objects.get(activation=activation, channel=channel)
        assert notification_deliver(notification_id=row.pk) in ("sent", "delivered")

    [email] = smtp_sink.received()
    assert email.subject.startswith("EXERCISE EXERCISE EXERCISE.")
    assert email.body.startswith("EXERCISE EXERCISE EXERCISE.")
    assert email.body.rstrip().endswith("EXERCISE EXERCISE EXERCISE")
    [sms] = http_sink.received("/sms")
    assert sms.json()["text"].startswith("EXERCISE EXERCISE EXERCISE.")
    [hook] = http_sink.received("/hook")
    assert hook.signature_ok is True
    body = hook.json()
    assert body["is_exercise"] is True
    assert body["title"].startswith("EXERCISE")
    assert body["text"].startswith("EXERCISE")

    client = signed_in_client(officer)
    [alert] = client.get("/api/v1/alerts/").json()["results"]
    assert alert["is_exercise"] is True
    assert alert["title"].startswith("EXERCISE")
    page = client.get("/alerts/").content.decode()
    assert "EXERCISE" in page


def test_pages_of_an_exercise_say_exercise(released, director, liaison):
    incident = released.incident
    for user in (director, liaison):
        client = signed_in_client(user)
        for url in (
            f"/incidents/{incident.pk}/",
            f"/incidents/{incident.pk}/wall/",
            f"/exercises/{released.pk}/",
            f"/exercises/{released.pk}/report/",
            "/exercises/",
            "/incidents/?show=exercises",
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            assert "EXERCISE · EXERCISE · EXERCISE" in response.content.decode() or (
                '<span class="exercise">EXERCISE</span>' in response.content.decode()
            ), url
        dashboard = client.get(f"/incidents/{incident.pk}/").content.decode()
        assert "exercise-banner" in dashboard
        assert "Exercise injects" in dashboard
        assert "Media enquiry" in dashboard
    assert "EXERCISE" in signed_in_client(director).get("/exercises/scenarios/").content.decode()


def test_api_representations_and_events_carry_is_exercise(released, director, api):
    incident = released.incident
    client = api(director)
    assert client.get(f"/api/v1/incidents/{incident.pk}/").data["is_exercise"] is True
    assert client.get(f"/api/v1/exercises/{released.pk}/").data["is_exercise"] is True
    assert client.get(f"/api/v1/exercises/{released.pk}/report/").data["is_exercise"] is True
    [activation] = client.get(f"/api/v1/activations/?incident={incident.pk}").data["results"]
    assert activation["is_exercise"] is True

    replay = client.get(f"/api/v1/incidents/{incident.pk}/events/").data["results"]
    kinds = {event["kind"]: event for event in replay}
    assert kinds["incident.opened"]["payload"]["is_exercise"] is True
    assert kinds["activation.sent"]["payload"]["is_exercise"] is True
    assert kinds["exercise.started"]["payload"]["is_exercise"] is True
    assert kinds["exercise.inject"]["payload"]["is_exercise"] is True
    # What the WebSocket sends live is built by the same function as the replay.
    live = event_message(IncidentEvent.objects.filter(incident=incident, kind="exercise.inject")[0])
    assert live["payload"]["is_exercise"] is True
