"""URLs of activation alerting: pages (mounted at the site root) and API routes (under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views
from .api import ActivationViewSet, AlertViewSet

app_name = "comms"

urlpatterns = [
    path("ack/<str:token>/", views.ack_link, name="ack"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:activation_id>/answer/", views.alert_answer, name="alert-answer"),
    path("activations/", views.activation_list, name="activations"),
    path("activations/new/", views.activation_new, name="activation-new"),
    path("activations/<int:activation_id>/", views.activation_board, name="activation"),
    path("health/", views.health, name="health"),
]

router = SimpleRouter()
router.register("activations", ActivationViewSet, basename="activation")
router.register("alerts", AlertViewSet, basename="alert")

# Included by ctpn.urls under /api/v1/, next to the other apps' routes.
api_urlpatterns = router.urls
