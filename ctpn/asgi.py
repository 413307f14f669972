"""ASGI entry point: HTTP through Django, WebSockets through Channels (``/ws/...``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")
# Under ASGI a kept database connection belongs to a thread that never serves another request:
# connections would pile up under load until PostgreSQL refuses new ones (see settings).
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
# Django must be set up before anything imports models (the WebSocket routes do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from comms.fanout import stop_hub  # noqa: E402
from comms.presence import stop_presence  # noqa: E402
from comms.routing import websocket_urlpatterns  # noqa: E402


async def lifespan(scope, receive, send) -> None:
    """On a graceful shutdown (a deploy), take this process's screens out of presence at once,
    after the server has closed them, instead of leaving them until their entries expire."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_presence()
            await stop_hub()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "lifespan": lifespan,
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
