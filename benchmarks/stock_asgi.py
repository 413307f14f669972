"""ASGI application of the stock Channels comparison (``benchmarks.stock_channels``)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from benchmarks.stock_channels import BroadcastConsumer, layer_from_environment  # noqa: E402

settings.CHANNEL_LAYERS = layer_from_environment()

application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/bench/", BroadcastConsumer.as_asgi())])}
)
