"""The activation API: who may send, what bad input answers, who sees what, answering through
the API and in-app, and the live board pushed over ``/ws/activations/<id>/``."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from comms.consumers import CLOSE_NOT_VISIBLE
from comms.models import Activation, Channel, Notification, NotificationState, Response
from comms.services import activation_acknowledge, activation_send
from coordination.roles import Role

from .factories import UserFactory
from .live import connect, headers_for, next_of_type, receive
from .workers import contact, rota_on_call

URL = "/api/v1/activations/"


@pytest.fixture
def duty(police):
    officer = UserFactory(username="pol-duty", agency=police, roles=[Role.DUTY_OFFICER])
    contact(officer, "email", "pol-duty@example.org")
    rota_on_call(police, primary=officer)
    return officer


def body(*agencies, **extra):
    return {
        "message": "Strategic cell to City Hall at 14:00",
        "agencies": [a.pk for a in agencies],
        **extra,
    }


@pytest.mark.django_db
def test_a_commander_sends_an_activation_and_gets_its_board(api, commander, police, duty):
    deadline = (timezone.now() + timedelta(minutes=20)).isoformat()
    answer = api(commander).post(
        URL, body(police, urgency="urgent", response_deadline=deadline), format="json"
    )
    assert answer.status_code == 201, answer.data
    assert answer.data["urgency"] == "urgent"
    assert [t["agency_name"] for t in answer.data["targets"]] == ["POL"]
    channels = sorted(n["channel"] for n in answer.data["notifications"])
    assert channels == ["email", "in_app"]
    assert {n["state"] for n in answer.data["notifications"]} == {"queued"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": None}, "message"),
        ({"agencies": []}, "agencies"),
        ({"agencies": [999999]}, "agencies"),
        ({"agencies": "police"}, "agencies"),
        ({"urgency": "whenever"}, "urgency"),
        ({"quorum": "most"}, "quorum"),
        ({"quorum_per_agency": 0}, "quorum_per_agency"),
        ({"response_deadline": "tomorrow-ish"}, "response_deadline"),
        ({"response_deadline": "2020-01-01T00:00:00Z"}, "response_deadline"),
        ({"incident": 999999}, "incident"),
        ({"is_exercise": "perhaps"}, "is_exercise"),
    ],
)
def test_bad_input_answers_400_naming_the_field_and_writes_nothing(
    api, commander, police, duty, change, field
):
    answer = api(commander).post(URL, {**body(police), **change}, format="json")
    assert answer.status_code == 400
    assert field in answer.data
    assert not Activation.objects.exists()


@pytest.mark.django_db
def test_an_agency_of_another_city_is_not_found(api, commander, oslo_police):
    answer = api(commander).post(URL, body(oslo_police), format="json")
    assert answer.status_code == 400
    assert "agencies" in answer.data


@pytest.mark.django_db
def test_only_commanders_and_the_duty_desk_may_send(api, liaison, observer, fire, police):
    for user in (liaison, observer):
        assert api(user).post(URL, body(fire), format="json").status_code == 403
    assert api().post(URL, body(fire), format="json").status_code in (401, 403)
    assert not Activation.objects.exists()
    duty_desk = UserFactory(agency=police, roles=[Role.DUTY_OFFICER])
    assert api(duty_desk).post(URL, body(fire), format="json").status_code == 201


@pytest.mark.django_db
def test_an_agency_not_called_does_not_see_the_activation(api, commander, police, duty, outsider):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    assert api(outsider).get(URL).data["results"] == []
    assert api(outsider).get(f"{URL}{activation.pk}/").status_code == 404
    assert api(outsider).get(f"{URL}{activation.pk}/board/").status_code == 404
    assert api(duty).get(f"{URL}{activation.pk}/board/").status_code == 200


@pytest.mark.django_db
def test_a_recipient_answers_through_the_api_once(api, commander, police, duty):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    url = f"{URL}{activation.pk}/acknowledge/"

    first = api(duty).post(url, {"response": "attending", "eta_minutes": 20}, format="json")
    again = api(duty).post(url, {"response": "cannot_attend"}, format="json")

    assert first.status_code == 201 and first.data["summary"] == "Attending, ETA 20 min"
    assert again.status_code == 200 and again.data["created"] is False
    assert again.data["summary"] == "Attending, ETA 20 min"
    board = api(commander).get(f"{URL}{activation.pk}/board/").data
    assert board["status"] == "completed"
    assert [a["user"] for a in board["acknowledgements"]] == [duty.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"response": "attending"}, "eta_minutes"),
        ({"response": "attending", "eta_minutes": "soon"}, "eta_minutes"),
        ({"response": "attending", "eta_minutes": 100000}, "eta_minutes"),
        ({"response": "acknowledged", "eta_minutes": 5}, "eta_minutes"),
        ({"response": "yes"}, "response"),
        ({}, "response"),
    ],
)
def test_a_bad_answer_names_the_field(api, commander, police, duty, answer, field):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    reply = api(duty).post(f"{URL}{activation.pk}/acknowledge/", answer, format="json")
    assert reply.status_code == 400
    assert field in reply.data


@pytest.mark.django_db
def test_someone_not_alerted_cannot_answer(api, commander, police, duty, observer):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    reply = api(observer).post(
        f"{URL}{activation.pk}/acknowledge/", {"response": "acknowledged"}, format="json"
    )
    assert reply.status_code == 403


@pytest.mark.django_db
def test_in_app_alerts_list_and_seen_marks_delivery(api, commander, police, duty):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    [alert] = api(duty).get("/api/v1/alerts/").data["results"]
    assert (alert["activation"], alert["channel"]) == (activation.pk, "in_app")
    assert api(commander).post(f"/api/v1/alerts/{alert['id']}/seen/").status_code == 404

    seen = api(duty).post(f"/api/v1/alerts/{alert['id']}/seen/")

    assert seen.status_code == 200
    assert seen.data["state"] == NotificationState.DELIVERED
    assert seen.data["seconds_to_delivered"] is not None


@pytest.mark.django_db
def test_standing_down_stops_what_has_not_gone_out(api, commander, police, duty, liaison):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    assert api(liaison).post(f"{URL}{activation.pk}/cancel/").status_code == 404
    reply = api(commander).post(f"{URL}{activation.pk}/cancel/")
    assert reply.status_code == 200 and reply.data["status"] == "cancelled"
    states = set(Notification.objects.filter(activation=activation).values_list("state", flat=True))
    assert states == {NotificationState.CANCELLED}
    assert api(commander).post(f"{URL}{activation.pk}/cancel/").status_code == 409


@pytest.mark.django_db(transaction=True)
async def test_the_board_is_pushed_live_to_those_who_may_see_it(
    commander, police, duty, outsider, live_runtime
):
    activation = await database_sync_to_async(activation_send)(
        user=commander, message="Assemble", agencies=[police]
    )
    path = f"/ws/activations/{activation.pk}/"
    refused, _ = await connect(path, await headers_for(outsider))
    assert (await refused.receive_output(timeout=5))["code"] == CLOSE_NOT_VISIBLE

    communicator, connected = await connect(path, await headers_for(commander))
    assert connected
    try:
        assert await receive(communicator) == {"type": "hello", "activation": activation.pk}
        await database_sync_to_async(activation_acknowledge)(
            activation_id=activation.pk, user=duty, response=Response.ATTENDING, eta_minutes=10
        )
        message = await next_of_type(communicator, "activation.board")
        assert message["activation"]["status"] == "completed"
        assert [a["summary"] for a in message["acknowledgements"]] == ["Attending, ETA 10 min"]
        changed = {n["channel"]: n["state"] for n in message["notifications"]}
        assert changed == {Channel.EMAIL: "cancelled", Channel.IN_APP: "cancelled"}
    finally:
        await communicator.disconnect()
