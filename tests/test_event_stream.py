"""The incident event stream (invariant 2): gap-free numbers, written with the change, broadcast
after commit, never for a change that rolled back; and the WebSocket that carries it live."""

import json
import threading
from contextlib import asynccontextmanager

import pytest
import redis
import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections, transaction

from coordination.roles import Role
from coordination.services import action_create
from ctpn.realtime import incident_topic, topic_channel
from incidents.events import event_append
from incidents.models import IncidentEvent
from incidents.services import methane_submit, timeline_add

from .factories import UserFactory, methane_fields
from .live import connect, headers_for, next_of_type, receive

# Services are synchronous; async tests call them the way consumers do.
timeline_add_async = database_sync_to_async(timeline_add)


def seqs(incident) -> list[int]:
    return list(IncidentEvent.objects.filter(incident=incident).values_list("seq", flat=True))


@pytest.mark.django_db
def test_opening_an_incident_is_its_first_event(incident):
    event = IncidentEvent.objects.get(incident=incident)
    assert (event.seq, event.kind, event.subject_type) == (1, "incident.opened", "incident")
    assert event.payload["reference"] == incident.reference
    incident.refresh_from_db()
    assert incident.last_event_seq == 1


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around it
def test_an_event_cannot_be_appended_outside_the_changes_transaction(incident):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        event_append(incident=incident, kind="test", payload={})


@pytest.mark.django_db
def test_a_rolled_back_change_gives_its_number_back(incident, liaison):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        timeline_add(incident_id=incident.pk, user=liaison, text="Will be rolled back")
        raise Abort

    timeline_add(incident_id=incident.pk, user=liaison, text="Kept")
    assert seqs(incident) == [1, 2]
    assert IncidentEvent.objects.get(incident=incident, seq=2).payload["text"] == "Kept"


@pytest.mark.django_db(transaction=True)
def test_numbers_stay_gap_free_under_concurrent_writers(incident, fire, police):
    """Different kinds of writes from separate connections all queue on the incident row."""
    writers = [UserFactory(agency=fire, roles=[Role.LIAISON_OFFICER]) for _ in range(3)]
    writers.append(UserFactory(agency=police, roles=[Role.LOGGIST]))
    barrier = threading.Barrier(len(writers))
    failures: list[BaseException] = []

    def write(index: int, user) -> None:
        try:
            barrier.wait()
            for n in range(6):
                if (index + n) % 3 == 0:
                    methane_submit(incident_id=incident.pk, user=user, **methane_fields())
                elif (index + n) % 3 == 1:
                    action_create(
                        incident_id=incident.pk, user=user, title=f"a{n}", owner_agency=fire
                    )
                else:
                    timeline_add(incident_id=incident.pk, user=user, text=f"{index}/{n}")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=pair) for pair in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures
    expected = 1 + len(writers) * 6
    assert seqs(incident) == list(range(1, expected + 1))
    versions = list(incident.methane_reports.order_by("version").values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))


@asynccontextmanager
async def _subscribed(incident_id: int):
    """A raw Redis subscriber on the incident's live topic, as every web process has one."""
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(topic_channel(incident_topic(incident_id)))
    await pubsub.get_message(timeout=5)  # the subscription's confirmation
    try:
        yield pubsub
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _next_published(pubsub) -> dict:
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None, "nothing was published"
    return json.loads(message["data"])


@pytest.mark.django_db
def test_changes_are_published_in_order_when_their_transaction_commits(
    incident, liaison, django_capture_on_commit_callbacks
):
    subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(topic_channel(incident_topic(incident.pk)))
    subscriber.get_message(timeout=5)  # the subscription's confirmation
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            for text in ("Cordon", "Evacuation", "All clear"):
                timeline_add(incident_id=incident.pk, user=liaison, text=text)
            assert subscriber.get_message(timeout=0.3) is None  # nothing before the commit
        # Leaving the block runs the commit's callbacks, as a real commit would.
        published = [json.loads(subscriber.get_message(timeout=5)["data"]) for _ in callbacks]
    finally:
        subscriber.close()

    assert [(m["type"], m["event"]["seq"]) for m in published] == [
        ("event", 2),
        ("event", 3),
        ("event", 4),
    ]
    assert published[2]["event"]["payload"]["text"] == "All clear"


@pytest.mark.django_db(transaction=True)
async def test_a_committed_change_is_broadcast_through_redis(incident, liaison):
    async with _subscribed(incident.pk) as pubsub:
        await timeline_add_async(incident_id=incident.pk, user=liaison, text="Broadcast me")
        message = await _next_published(pubsub)

    assert message["type"] == "event"
    assert message["event"]["seq"] == 2
    assert message["event"]["kind"] == "timeline.added"
    assert message["event"]["payload"]["text"] == "Broadcast me"


@pytest.mark.django_db(transaction=True)
async def test_a_rolled_back_change_is_never_broadcast(incident, liaison):
    def change_then_fail() -> None:
        with transaction.atomic():
            timeline_add(incident_id=incident.pk, user=liaison, text="Never happened")
            transaction.set_rollback(True)

    async with _subscribed(incident.pk) as pubsub:
        await database_sync_to_async(change_then_fail)()
        await timeline_add_async(incident_id=incident.pk, user=liaison, text="Happened")
        message = await _next_published(pubsub)

    assert message["event"]["payload"]["text"] == "Happened"
    assert message["event"]["seq"] == 2


@pytest.mark.django_db(transaction=True)
async def test_a_participant_receives_changes_live_over_the_websocket(
    incident, liaison, live_runtime
):
    path = f"/ws/incidents/{incident.pk}/"
    communicator, connected = await connect(path, await headers_for(liaison))
    assert connected
    try:
        hello = await receive(communicator)
        assert hello == {"type": "hello", "incident": incident.pk, "last_seq": 1}
        await timeline_add_async(incident_id=incident.pk, user=liaison, text="Live")
        message = await next_of_type(communicator, "event")
        assert (message["event"]["seq"], message["event"]["kind"]) == (2, "timeline.added")
        assert message["event"]["payload"]["text"] == "Live"
    finally:
        await communicator.disconnect()
