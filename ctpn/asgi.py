"""ASGI entry point: HTTP through Django, WebSockets through Channels (``/ws/...``)."""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")
# Django must be set up before anything imports models (the WebSocket routes do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.signals import request_finished  # noqa: E402
from django.db import connections  # noqa: E402

from comms.fanout import stop_hub  # noqa: E402
from comms.presence import stop_presence  # noqa: E402
from comms.routing import websocket_urlpatterns  # noqa: E402
from ctpn.db.base import disable_reuse, enable_reuse  # noqa: E402


def http_connections_close(**kwargs) -> None:
    """Close the database connections of an HTTP request that has finished.

    Django runs each request's sync code in a thread of its own under ASGI, and sends
    ``request_finished`` from that thread: a connection kept for reuse (``CONN_MAX_AGE``) would
    be kept for a thread that never serves another request, and such connections pile up under
    load until PostgreSQL refuses new ones. WebSocket consumers do not send the signal; their
    database calls share long-lived threads and keep their connections.

    In the server (after the lifespan startup), "closing" a healthy connection hands it to the
    process's next HTTP request instead (``ctpn.db.base``): a bounded stock, never a thread's.
    """
    connections.close_all()


# Only requests served by Django's ASGI handler (the sender): not the test client's, nor WSGI's.
request_finished.connect(http_connections_close, sender=ASGIHandler)


async def lifespan(scope, receive, send) -> None:
    """At startup, let finished HTTP requests' database connections serve the next ones.

    On a graceful shutdown (a deploy), take this process's screens out of presence at once,
    after the server has closed them, instead of leaving them until their entries expire, and
    close the idle database connections."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            enable_reuse()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_presence()
            await stop_hub()
            disable_reuse()
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
