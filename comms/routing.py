"""WebSocket URL routes, mounted by ``ctpn.asgi``."""

from django.urls import path, re_path

from .consumers import ActivationConsumer, IncidentConsumer, NotFoundConsumer, UserConsumer

websocket_urlpatterns = [
    path("ws/incidents/<int:incident_id>/", IncidentConsumer.as_asgi()),
    path("ws/me/", UserConsumer.as_asgi()),
    path("ws/activations/<int:activation_id>/", ActivationConsumer.as_asgi()),
    # Last: a clear close code instead of an exception for a path nothing serves.
    re_path(r"", NotFoundConsumer.as_asgi()),
]
