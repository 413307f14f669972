"""The stock Channels configuration the platform does not use, for comparison only: one consumer
per socket joining one group, and ``group_send`` through a channel layer.

Served by ``benchmarks.stock_asgi:application`` under uvicorn or daphne; the layer is chosen by
``BENCH_CHANNEL_LAYER`` (``core``: ``RedisChannelLayer``, ``pubsub``: ``RedisPubSubChannelLayer``).
Never part of the platform's URLs or settings.
"""

import os

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "bench"


def channel_layers(url: str, layer: str) -> dict:
    backend = {
        "core": "channels_redis.core.RedisChannelLayer",
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }[layer]
    return {"default": {"BACKEND": backend, "CONFIG": {"hosts": [url]}}}


def layer_from_environment() -> dict:
    return channel_layers(os.environ["REDIS_URL"], os.environ.get("BENCH_CHANNEL_LAYER", "core"))


class BroadcastConsumer(AsyncWebsocketConsumer):
    """Joins the group, says hello, forwards every group message as it comes."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        await self.send(text_data='{"type":"hello"}')

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bench_message(self, event: dict) -> None:
        await self.send(text_data=event["text"])
