"""What the live-update tests share: signed-in WebSocket clients, in-process and over the network.

In-process clients are Channels' ``WebsocketCommunicator`` against ``ctpn.asgi.application``;
network clients are ``websockets`` connections to a real uvicorn (``tests.servers``), with the
session cookie and the ``Origin`` header a browser would send.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from comms.fanout import stop_hub
from comms.presence import stop_presence
from ctpn.asgi import application

from .auth import SignedInClient


def session_cookie(user) -> str:
    client = SignedInClient()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def session_headers(user, origin: bytes = b"http://testserver") -> list[tuple[bytes, bytes]]:
    return [
        (b"cookie", session_cookie(user).encode()),
        (b"origin", origin),
        (b"host", b"testserver"),
    ]


async def headers_for(user, origin: bytes = b"http://testserver") -> list[tuple[bytes, bytes]]:
    return await database_sync_to_async(session_headers)(user, origin)


async def connect(path: str, headers) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def receive(communicator: WebsocketCommunicator, timeout: float = 5) -> dict[str, Any]:
    return await communicator.receive_json_from(timeout=timeout)


async def next_of_type(
    communicator: WebsocketCommunicator, kind: str, timeout: float = 5
) -> dict[str, Any]:
    """The next message of ``kind``, skipping others (presence lists come with every connect)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await receive(communicator, timeout=max(0.01, deadline - loop.time()))
        if message["type"] == kind:
            return message


async def presence_until(
    communicator: WebsocketCommunicator, condition, timeout: float = 5
) -> list[dict[str, Any]]:
    """Presence lists until one satisfies ``condition``; that list."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await next_of_type(
            communicator, "presence", timeout=max(0.01, deadline - loop.time())
        )
        if condition(message["present"]):
            return message["present"]


async def nothing_more(communicator: WebsocketCommunicator, timeout: float = 0.3) -> bool:
    """True if nothing but presence lists arrives within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        if await communicator.receive_nothing(timeout=left):
            return True
        message = json.loads((await communicator.receive_output())["text"])
        if message["type"] != "presence":
            return False
    return True


@pytest.fixture
async def live_runtime() -> AsyncIterator[None]:
    """Stops the test loop's subscription and presence task, and forgets its presence entries."""
    yield
    await stop_presence()
    await stop_hub()
