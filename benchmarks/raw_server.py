"""The raw baseline of the live fan-out: a minimal ``websockets`` broadcast server.

It subscribes to one Redis channel and writes every message published there to every connected
client with ``websockets.broadcast`` (one encoded frame, no per-client work beyond the write).
Each client gets ``{"type": "hello"}`` when it is registered, like the platform's consumers.

    python -m benchmarks.raw_server PORT REDIS_URL CHANNEL
"""

import asyncio
import sys

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    clients.add(websocket)
    try:
        await websocket.send('{"type":"hello"}')
        await websocket.wait_closed()
    finally:
        clients.discard(websocket)


async def relay(url: str, channel: str, ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    ready.set()
    async for message in pubsub.listen():
        if message["type"] == "message":
            broadcast(clients, message["data"].decode())


async def main(port: int, url: str, channel: str) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(relay(url, channel, ready))
    await ready.wait()
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
