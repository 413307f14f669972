"""The per-process fan-out: frames on the wire, one rendering per distinct frame, a subscription
through Redis, hello before anything else, and a slow connection cut off instead of waiting."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from comms.consumers import hide_unreadable_events
from comms.fanout import OUTBOX_CUT_OFF, OUTBOX_SEND, LiveConnection, get_hub, text_frame
from ctpn import realtime

pytestmark = pytest.mark.usefixtures("live_runtime")


def parse_server_frame(data: bytes) -> Frame:
    """Parse ``data`` the way a client does (a server frame must not be masked)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_frames_are_unmasked_text_frames_of_any_length(size):
    payload = b"x" * size
    frame = parse_server_frame(text_frame(payload))
    assert (frame.opcode, frame.fin, frame.rsv1, bytes(frame.data)) == (
        Opcode.TEXT,
        True,
        False,
        payload,
    )


def connection(topics=("incident:1",), message_filter=None, live=True) -> LiveConnection:
    """A connection written through the ASGI fallback: its frames land in its outbox."""
    conn = LiveConnection(
        send=lambda message: None,
        outbox=asyncio.Queue(),
        topics=topics,
        message_filter=message_filter,
        direct=False,
    )
    if live:
        conn.go_live()
    return conn


def sent_texts(conn: LiveConnection) -> list[str]:
    texts = []
    while not conn.outbox.empty():
        item = conn.outbox.get_nowait()
        texts.append(item["text"] if item["type"] == OUTBOX_SEND else item["type"])
    return texts


async def test_a_filter_shared_by_many_connections_runs_once_per_message():
    calls = []

    def counting_filter(message):
        calls.append(message["event"]["seq"])
        return hide_unreadable_events(message)

    hub = get_hub()
    readers = [connection(message_filter=counting_filter) for _ in range(50)]
    plain = connection()  # no filter: gets what was published
    for conn in [*readers, plain]:
        for topic in conn.topics:
            hub.topics.setdefault(topic, set()).add(conn)

    secret = {"type": "event", "event": {"seq": 5, "marking": "RED", "payload": {"x": "s3cret"}}}
    hub.dispatch("incident:1", realtime.encode(secret))

    assert calls == [5]
    placeholders = {text for conn in readers for text in sent_texts(conn)}
    assert [json.loads(text) for text in placeholders] == [
        {"type": "event", "event": {"seq": 5, "kind": "hidden"}}
    ]
    assert [json.loads(text) for text in sent_texts(plain)] == [secret]


async def test_a_message_reaches_only_the_connections_of_its_topic():
    hub = get_hub()
    mine, other = connection(topics=("user:1",)), connection(topics=("user:2",))
    for conn in (mine, other):
        hub.topics.setdefault(conn.topics[0], set()).add(conn)

    hub.dispatch("user:1", b'{"type":"alert","alert":{"id":1}}')
    hub.dispatch("user:3", b'{"type":"alert","alert":{"id":3}}')
    hub.dispatch("user:1", b"not json")

    assert sent_texts(mine) == ['{"type":"alert","alert":{"id":1}}']
    assert sent_texts(other) == []


async def test_frames_wait_for_hello_and_keep_their_order():
    conn = connection(live=False)
    conn.deliver("first", text_frame(b"first"))
    conn.deliver("second", text_frame(b"second"))
    assert sent_texts(conn) == []  # the consumer has not sent hello yet

    conn.go_live()
    conn.deliver("third", text_frame(b"third"))
    assert sent_texts(conn) == ["first", "second", "third"]


async def test_a_connection_that_falls_behind_is_cut_off(settings):
    settings.LIVE_SEND_BUFFER_LIMIT_BYTES = 1000
    slow, keeping_up = connection(), connection()
    hub = get_hub()
    for conn in (slow, keeping_up):
        hub.topics.setdefault("incident:1", set()).add(conn)
        conn.hub = hub

    for n in range(20):
        message = {"type": "event", "event": {"seq": n, "marking": "AMBER", "x": "y" * 90}}
        hub.dispatch("incident:1", json.dumps(message))
        for text in sent_texts(keeping_up):
            keeping_up.sent(len(text))  # this one's task writes as fast as messages come

    assert sent_texts(slow) == [OUTBOX_CUT_OFF]  # what was queued is dropped; then it is closed
    assert slow.cut_off and slow not in hub.topics["incident:1"]
    assert keeping_up in hub.topics["incident:1"] and not keeping_up.cut_off


async def test_a_published_message_arrives_through_redis():
    hub = get_hub()
    conn = connection(topics=("activation:9",), live=False)
    assert await hub.join(conn)
    conn.go_live()

    await sync_to_async(realtime.publish)("activation:9", {"type": "activation", "id": 9})

    async with asyncio.timeout(5):
        item = await conn.outbox.get()
    assert json.loads(item["text"]) == {"type": "activation", "id": 9}
    hub.leave(conn)
    assert "activation:9" not in hub.topics


async def test_one_message_larger_than_the_cap_still_reaches_a_client_that_keeps_up(settings):
    settings.LIVE_SEND_BUFFER_LIMIT_BYTES = 1000
    conn = connection()
    big = json.dumps({"type": "event", "event": {"seq": 1, "marking": "AMBER", "x": "y" * 5000}})

    conn.deliver(big, text_frame(big.encode()))
    assert sent_texts(conn) == [big]
    conn.sent(len(big))
    conn.deliver(big, text_frame(big.encode()))
    assert sent_texts(conn) == [big]
    assert not conn.cut_off
