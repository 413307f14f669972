"""WebSocket URL routes, mounted by ``ctpn.asgi``."""

from django.urls import path

from .consumers import ActivationConsumer, IncidentConsumer, UserConsumer

websocket_urlpatterns = [
    path("ws/incidents/<int:incident_id>/", IncidentConsumer.as_asgi()),
    path("ws/me/", UserConsumer.as_asgi()),
    path("ws/activations/<int:activation_id>/", ActivationConsumer.as_asgi()),
]
