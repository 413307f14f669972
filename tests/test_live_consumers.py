"""The live WebSockets as a client sees them: who may connect, hello, events in order, hidden
markings, presence, the user's own topic, and what happens when Redis goes away."""

import asyncio
import json

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.sessions.models import Session
from django.db import transaction
from rest_framework.test import APIClient

from comms import fanout
from comms.consumers import CLOSE_NOT_VISIBLE, CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHENTICATED
from comms.fanout import get_hub
from comms.presence import Presence
from coordination.markings import Marking
from coordination.services import action_create
from ctpn import realtime
from incidents.events import event_append
from incidents.models import Incident
from incidents.services import timeline_add

from .live import connect, headers_for, next_of_type, nothing_more, presence_until, receive

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_runtime")]

timeline_add_async = database_sync_to_async(timeline_add)
publish_async = sync_to_async(realtime.publish)


def incident_path(incident) -> str:
    return f"/ws/incidents/{incident.pk}/"


async def open_dashboard(incident, user):
    """A connected dashboard of ``user`` whose hello has been read."""
    communicator, connected = await connect(incident_path(incident), await headers_for(user))
    assert connected
    hello = await receive(communicator)
    assert hello["type"] == "hello"
    return communicator


async def close_code(communicator) -> int | None:
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output.get("code")


# --- who may connect --------------------------------------------------------------------------


async def test_a_connection_without_a_session_is_refused(incident):
    communicator, _ = await connect(incident_path(incident), [(b"origin", b"http://testserver")])
    assert await close_code(communicator) == CLOSE_UNAUTHENTICATED

    communicator, _ = await connect("/ws/me/", [(b"origin", b"http://testserver")])
    assert await close_code(communicator) == CLOSE_UNAUTHENTICATED


async def test_a_foreign_origin_is_refused_at_the_handshake(incident, liaison):
    headers = await headers_for(liaison, origin=b"https://evil.example")
    _, connected = await connect(incident_path(incident), headers)
    assert not connected
    _, connected = await connect("/ws/me/", headers)
    assert not connected


async def test_a_non_participant_learns_nothing(incident, outsider):
    communicator, _ = await connect(incident_path(incident), await headers_for(outsider))
    assert await close_code(communicator) == CLOSE_NOT_VISIBLE
    assert await communicator.receive_nothing(timeout=0.2)


@pytest.mark.parametrize("incident_id", ["999999", "99999999999999999999999"])
async def test_an_unknown_incident_is_refused_like_an_invisible_one(liaison, incident_id):
    communicator, _ = await connect(f"/ws/incidents/{incident_id}/", await headers_for(liaison))
    assert await close_code(communicator) == CLOSE_NOT_VISIBLE


async def test_an_unknown_path_is_refused(liaison):
    communicator, _ = await connect("/ws/incidents/abc/", await headers_for(liaison))
    assert await close_code(communicator) == CLOSE_NOT_VISIBLE


async def test_no_channel_is_created_per_connection_even_with_a_channel_layer(
    incident, liaison, settings
):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    communicator = await open_dashboard(incident, liaison)
    await publish_async(realtime.incident_topic(incident.pk), {"type": "ping"})
    assert await next_of_type(communicator, "ping") == {"type": "ping"}
    assert layer.channels == {}
    await communicator.disconnect()


# --- hello and events -------------------------------------------------------------------------


async def test_hello_carries_the_last_sequence_number(incident, liaison):
    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Before connecting")
    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Also before")

    communicator, _ = await connect(incident_path(incident), await headers_for(liaison))
    assert await receive(communicator) == {"type": "hello", "incident": incident.pk, "last_seq": 3}
    await communicator.disconnect()


async def test_events_arrive_in_order_in_the_same_shape_as_the_replay(incident, liaison, fire):
    communicator = await open_dashboard(incident, liaison)

    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Cordon in place")
    await database_sync_to_async(action_create)(
        incident_id=incident.pk, user=liaison, title="Close the station", owner_agency=fire
    )
    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Casualty clearing")

    live = [(await next_of_type(communicator, "event"))["event"] for _ in range(3)]
    assert [(e["seq"], e["kind"]) for e in live] == [
        (2, "timeline.added"),
        (3, "action.created"),
        (4, "timeline.added"),
    ]
    assert live[2]["payload"]["text"] == "Casualty clearing"

    replay = await replay_events(incident, liaison, after=1)
    assert replay == live
    await communicator.disconnect()


def add_secret_event(incident_id: int, text: str) -> int:
    """An event with a marking no participant may read today (RED needs a recipient list)."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        event = event_append(
            incident=incident, kind="test.secret", payload={"text": text}, marking=Marking.RED
        )
    return event.seq


@database_sync_to_async
def replay_events(incident, user, after: int = 0) -> list[dict]:
    client = APIClient()
    client.force_authenticate(user=user)
    response = client.get(f"/api/v1/incidents/{incident.pk}/events/", {"after": after})
    assert response.status_code == 200, response.content
    return json.loads(response.content)["results"]


async def test_an_unreadable_marking_comes_as_a_placeholder_live_and_in_replay(incident, liaison):
    communicator = await open_dashboard(incident, liaison)

    seq = await database_sync_to_async(add_secret_event)(incident.pk, "Source codename KESTREL")
    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Readable")

    hidden = await next_of_type(communicator, "event")
    assert hidden == {"type": "event", "event": {"seq": seq, "kind": "hidden"}}
    readable = await next_of_type(communicator, "event")
    assert readable["event"]["seq"] == seq + 1

    replay = await replay_events(incident, liaison)
    assert [e["seq"] for e in replay] == [1, seq, seq + 1]
    assert replay[1] == {"seq": seq, "kind": "hidden"}
    assert "KESTREL" not in json.dumps(replay)
    await communicator.disconnect()


async def test_a_replay_page_counts_hidden_events(incident, liaison):
    for n in range(3):
        await database_sync_to_async(add_secret_event)(incident.pk, f"secret {n}")

    client = APIClient()
    client.force_authenticate(user=liaison)
    url = f"/api/v1/incidents/{incident.pk}/events/"
    first = await sync_to_async(client.get)(url, {"after": 0, "limit": 2})
    body = first.json()
    assert body["results"] == [
        {"seq": 1, "kind": "incident.opened", **body["results"][0]},
        {"seq": 2, "kind": "hidden"},
    ]
    assert "after=2" in body["next"]
    bad = await sync_to_async(client.get)(url, {"after": "x"})
    assert bad.status_code == 400
    assert "after" in bad.json()


# --- presence ---------------------------------------------------------------------------------


def names(present: list[dict]) -> set[int]:
    return {person["user_id"] for person in present}


async def presence_lists(communicator, seconds: float) -> list[list[dict]]:
    """Every presence list that arrives within ``seconds``."""
    lists = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        # receive_nothing, not a receive that times out: that would stop the application.
        if await communicator.receive_nothing(timeout=left):
            break
        message = await receive(communicator)
        if message["type"] == "presence":
            lists.append(message["present"])
    return lists


async def test_presence_lists_who_joins_and_who_leaves(incident, liaison, commander):
    fire_screen = await open_dashboard(incident, liaison)
    present = await presence_until(fire_screen, lambda p: names(p) == {liaison.pk})
    assert present == [
        {
            "user_id": liaison.pk,
            "name": str(liaison),
            "agency_id": liaison.agency_id,
            "agency": "FRS",
        }
    ]

    gold_screen = await open_dashboard(incident, commander)
    await presence_until(fire_screen, lambda p: names(p) == {liaison.pk, commander.pk})
    await presence_until(gold_screen, lambda p: names(p) == {liaison.pk, commander.pk})

    await gold_screen.disconnect()
    await presence_until(fire_screen, lambda p: names(p) == {liaison.pk})
    await fire_screen.disconnect()


async def test_a_person_with_two_screens_is_listed_once(incident, liaison, commander):
    first = await open_dashboard(incident, liaison)
    second = await open_dashboard(incident, liaison)
    gold = await open_dashboard(incident, commander)

    present = await presence_until(gold, lambda p: names(p) == {liaison.pk, commander.pk})
    assert len(present) == 2

    await first.disconnect()
    # The leave is broadcast, and the liaison is still present on the other screen.
    lists = await presence_lists(gold, seconds=1.0)
    assert lists
    assert all(names(present) == {liaison.pk, commander.pk} for present in lists)

    await second.disconnect()
    await presence_until(gold, lambda p: names(p) == {commander.pk})
    await gold.disconnect()


async def test_presence_of_a_process_that_died_expires(incident, liaison, commander, settings):
    settings.LIVE_PRESENCE_TTL_SECONDS = 1
    screen = await open_dashboard(incident, liaison)

    # Another web process counts the commander in, then dies without saying goodbye.
    other_process = Presence()
    other_process.join(realtime.incident_topic(incident.pk), {"user_id": commander.pk, "name": "G"})
    await presence_until(screen, lambda p: names(p) == {liaison.pk, commander.pk})
    await other_process.stop(forget=False)

    # Swept once its entry is past its time; this process's own entries are kept alive.
    await presence_until(screen, lambda p: names(p) == {liaison.pk}, timeout=5)
    await asyncio.sleep(1.5)  # longer than the TTL: the liaison's own entry must not expire
    gold = await open_dashboard(incident, commander)
    await presence_until(gold, lambda p: names(p) == {liaison.pk, commander.pk})
    await gold.disconnect()
    await screen.disconnect()


# --- the user's own topic ---------------------------------------------------------------------


async def test_a_message_to_a_user_reaches_only_that_users_pages(incident, liaison, commander):
    liaison_dashboard = await open_dashboard(incident, liaison)
    liaison_alerts, connected = await connect("/ws/me/", await headers_for(liaison))
    assert connected
    assert await receive(liaison_alerts) == {"type": "hello"}
    commander_dashboard = await open_dashboard(incident, commander)
    commander_alerts, _ = await connect("/ws/me/", await headers_for(commander))
    assert await receive(commander_alerts) == {"type": "hello"}

    alert = {"type": "alert", "alert": {"id": 7, "title": "Stand up the SCG", "ack_url": "/a/7"}}
    await publish_async(realtime.user_topic(liaison.pk), alert)

    assert await next_of_type(liaison_dashboard, "alert") == alert
    assert await receive(liaison_alerts) == alert
    assert await nothing_more(commander_dashboard)
    assert await commander_alerts.receive_nothing(timeout=0.2)

    for communicator in (liaison_dashboard, liaison_alerts, commander_dashboard, commander_alerts):
        await communicator.disconnect()


async def test_incident_events_do_not_reach_the_user_page(incident, liaison):
    alerts, _ = await connect("/ws/me/", await headers_for(liaison))
    assert await receive(alerts) == {"type": "hello"}
    await timeline_add_async(incident_id=incident.pk, user=liaison, text="Not for /ws/me/")
    assert await alerts.receive_nothing(timeout=0.3)
    await alerts.disconnect()


# --- when Redis goes away ---------------------------------------------------------------------


async def test_without_redis_a_client_is_told_to_come_back_later(incident, liaison, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    settings.LIVE_SUBSCRIBE_TIMEOUT_SECONDS = 1
    communicator, connected = await connect(incident_path(incident), await headers_for(liaison))
    assert connected
    assert await close_code(communicator) == CLOSE_TRY_AGAIN_LATER


async def test_without_redis_a_change_is_still_committed(incident, liaison, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    entry = await timeline_add_async(incident_id=incident.pk, user=liaison, text="Kept anyway")
    assert entry.pk is not None
    assert f"could not publish live message to incident:{incident.pk}" in caplog.text
    refreshed = await database_sync_to_async(Incident.objects.get)(pk=incident.pk)
    assert refreshed.last_event_seq == 2


async def test_after_the_subscription_drops_clients_are_told_to_resynchronise(
    incident, liaison, settings
):
    communicator = await open_dashboard(incident, liaison)
    await presence_until(communicator, lambda p: names(p) == {liaison.pk})

    # Drop every pub/sub connection, as a Redis restart or a network cut would.
    killer = redis.Redis.from_url(settings.REDIS_URL)
    killed = await sync_to_async(killer.client_kill_filter)(_type="pubsub")
    killer.close()
    assert killed >= 1

    # Whatever was published during the cut is lost: once subscribed again, the process says
    # hello again, so the client compares numbers and replays.
    hello = await next_of_type(communicator, "hello", timeout=10)
    assert hello == {"type": "hello", "incident": incident.pk, "last_seq": 1}
    assert get_hub().ready.is_set()

    await timeline_add_async(incident_id=incident.pk, user=liaison, text="After the cut")
    assert (await next_of_type(communicator, "event"))["event"]["seq"] == 2
    await communicator.disconnect()


# --- access checked again while connected -----------------------------------------------------


async def close_code_after_other_messages(communicator, timeout: float = 5) -> int | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        output = await communicator.receive_output(timeout=max(0.01, deadline - loop.time()))
        if output["type"] == "websocket.close":
            return output.get("code")


async def test_a_connection_is_closed_when_its_agency_leaves_the_incident(
    incident, liaison, fire, commander, settings
):
    settings.LIVE_REVALIDATE_SECONDS = 1
    fire_screen = await open_dashboard(incident, liaison)
    gold_screen = await open_dashboard(incident, commander)

    await database_sync_to_async(incident.participating_agencies.remove)(fire)

    assert await close_code_after_other_messages(fire_screen) == CLOSE_NOT_VISIBLE
    # The commander's agency still takes part: their screen stays and keeps receiving.
    await timeline_add_async(incident_id=incident.pk, user=commander, text="Fire stood down")
    assert (await next_of_type(gold_screen, "event"))["event"]["seq"] == 2
    await gold_screen.disconnect()


async def test_a_connection_is_closed_when_its_session_ends(incident, liaison, settings):
    settings.LIVE_REVALIDATE_SECONDS = 1
    screen = await open_dashboard(incident, liaison)

    await database_sync_to_async(Session.objects.all().delete)()  # signed out everywhere

    assert await close_code_after_other_messages(screen) == CLOSE_UNAUTHENTICATED


async def test_a_redis_that_stops_answering_is_noticed_and_clients_resynchronise(
    incident, liaison, settings, monkeypatch
):
    monkeypatch.setattr(fanout, "PING_SECONDS", 0.2)
    communicator = await open_dashboard(incident, liaison)

    # Redis holds every client's commands unanswered for 2 s, like a host that went silent.
    pauser = redis.Redis.from_url(settings.REDIS_URL)
    await sync_to_async(pauser.execute_command)("CLIENT", "PAUSE", 2000, "ALL")
    pauser.close()

    hello = await next_of_type(communicator, "hello", timeout=10)
    assert hello == {"type": "hello", "incident": incident.pk, "last_seq": 1}
    await communicator.disconnect()
