"""Live updates against uvicorn as deployed, with real WebSocket clients over TCP: a storm of
connects, a client that stops reading, and two web processes sharing events through Redis."""

import asyncio
import json
import socket
from urllib.parse import urlsplit

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from incidents.services import timeline_add

from .live import session_cookie
from .servers import AsgiServer, start_asgi_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

timeline_add_async = database_sync_to_async(timeline_add)
cookie_of = database_sync_to_async(session_cookie)


async def open_client(server: AsgiServer, path: str, cookie: str, **options):
    """A browser-like client: the session cookie and the page's own origin."""
    return await websockets.connect(
        f"{server.ws_url}{path}",
        additional_headers={"Cookie": cookie, "Origin": server.url},
        open_timeout=30,
        **options,
    )


async def next_of_type(client, kind: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await client.recv())
            if message["type"] == kind:
                return message


async def presence_until(client, condition, timeout: float = 10) -> list[dict]:
    async with asyncio.timeout(timeout):
        while True:
            present = (await next_of_type(client, "presence", timeout))["present"]
            if condition(present):
                return present


async def test_a_storm_of_connects_is_all_accepted_and_all_receive(asgi_server, incident, liaison):
    cookie = await database_sync_to_async(session_cookie)(liaison)
    path = f"/ws/incidents/{incident.pk}/"
    count = 400

    results = await asyncio.gather(
        *(open_client(asgi_server, path, cookie) for _ in range(count)), return_exceptions=True
    )
    clients = [c for c in results if not isinstance(c, BaseException)]
    failures = [repr(e) for e in results if isinstance(e, BaseException)]
    try:
        assert failures == []
        # Hello comes first, before any presence list or event.
        hellos = [json.loads(m) for m in await asyncio.gather(*(c.recv() for c in clients))]
        assert {(h["type"], h["last_seq"]) for h in hellos} == {("hello", 1)}

        await timeline_add_async(incident_id=incident.pk, user=liaison, text="To every screen")
        events = await asyncio.gather(*(next_of_type(c, "event") for c in clients))
        assert [e["event"]["seq"] for e in events] == [2] * count
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def stalled_socket(server: AsgiServer) -> socket.socket:
    """A TCP connection with a small receive buffer, so unread data backs up into the server."""
    address = urlsplit(server.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address.hostname, address.port))
    return sock


async def test_a_client_that_stops_reading_is_cut_off_and_nobody_else_waits(incident, liaison):
    server = start_asgi_server(LIVE_SEND_BUFFER_LIMIT_BYTES=str(256 * 1024))
    cookie = await database_sync_to_async(session_cookie)(liaison)
    path = f"/ws/incidents/{incident.pk}/"
    readers = []
    stuck = None
    try:
        readers = [await open_client(server, path, cookie) for _ in range(5)]
        for reader in readers:
            await next_of_type(reader, "hello")
        # It reads its hello, then never again: max_queue=1 makes it stop reading the socket.
        stuck = await open_client(
            server, path, cookie, sock=stalled_socket(server), max_queue=1, ping_interval=None
        )
        await next_of_type(stuck, "hello")

        received: dict[int, list[int]] = {i: [] for i in range(len(readers))}

        async def read_all(index: int, client, last: int) -> None:
            while not received[index] or received[index][-1] < last:
                message = await next_of_type(client, "event", timeout=30)
                received[index].append(message["event"]["seq"])

        # About 8 MB to each socket: past what loopback buffers in the kernel (a few MB) + the cap.
        events, text = 80, "x" * 100_000
        last = 1 + events
        reading = [asyncio.create_task(read_all(i, r, last)) for i, r in enumerate(readers)]
        for n in range(events):
            await timeline_add_async(incident_id=incident.pk, user=liaison, text=f"{n} {text}")
        await asyncio.gather(*reading)

        # Everyone who reads got every event, in order.
        for seqs in received.values():
            assert seqs == list(range(2, last + 1))

        # The stuck client was cut off: it finds its connection gone, short of the last event.
        seen: list[int] = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    message = json.loads(await stuck.recv())
                    if message["type"] == "event":
                        seen.append(message["event"]["seq"])
        assert closed.value.rcvd is None  # no close frame: the server aborted the connection
        assert last not in seen
    finally:
        for client in [*readers, stuck]:
            if client is not None:
                await client.close()
        stop_server(server.process)


async def test_two_web_processes_share_events_and_presence(incident, liaison, commander):
    first = start_asgi_server(LIVE_PRESENCE_TTL_SECONDS="2")
    second = start_asgi_server(LIVE_PRESENCE_TTL_SECONDS="2")
    path = f"/ws/incidents/{incident.pk}/"
    clients = []
    try:
        fire_cookie = await database_sync_to_async(session_cookie)(liaison)
        gold_cookie = await database_sync_to_async(session_cookie)(commander)
        on_first = await open_client(first, path, fire_cookie)
        on_second = await open_client(second, path, gold_cookie)
        clients = [on_first, on_second]
        for client in clients:
            await next_of_type(client, "hello")

        # Each sees who is on the other process.
        both = {liaison.pk, commander.pk}
        for client in clients:
            await presence_until(client, lambda p: {x["user_id"] for x in p} == both)

        for n in range(3):
            await timeline_add_async(incident_id=incident.pk, user=liaison, text=f"Update {n}")
        for client in clients:
            seqs = [(await next_of_type(client, "event"))["event"]["seq"] for _ in range(3)]
            assert seqs == [2, 3, 4]

        # The second process dies without closing its sockets: its presence expires.
        second.process.kill()
        second.process.wait()
        await presence_until(on_first, lambda p: [x["user_id"] for x in p] == [liaison.pk])
    finally:
        for client in clients:
            await client.close()
        stop_server(first.process)
        stop_server(second.process)


async def test_a_process_shut_down_gracefully_takes_its_screens_out_of_presence_at_once(
    asgi_server, incident, liaison, commander
):
    leaving = start_asgi_server()  # the default presence TTL: 45 s
    clients = []
    try:
        on_staying = await open_client(
            asgi_server, f"/ws/incidents/{incident.pk}/", await cookie_of(liaison)
        )
        on_leaving = await open_client(
            leaving, f"/ws/incidents/{incident.pk}/", await cookie_of(commander)
        )
        clients = [on_staying, on_leaving]
        both = {liaison.pk, commander.pk}
        await presence_until(on_staying, lambda p: {x["user_id"] for x in p} == both)

        stop_server(leaving.process)  # SIGTERM, as a deploy does

        await presence_until(on_staying, lambda p: [x["user_id"] for x in p] == [liaison.pk], 10)
    finally:
        for client in clients:
            await client.close()
        stop_server(leaving.process)
