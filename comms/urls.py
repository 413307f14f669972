"""Page URLs of the comms app (the API is wired in ``ctpn.urls``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("rotas/", views.rota_list, name="rotas"),
    path("rotas/<int:pk>/", views.rota_detail, name="rota"),
    path("rotas/<int:pk>/shifts/", views.rota_shift_add, name="rota-shift-add"),
    path(
        "rotas/<int:pk>/shifts/<int:shift_id>/delete/",
        views.rota_shift_delete,
        name="rota-shift-delete",
    ),
    path("rotas/<int:pk>/cover/", views.rota_override_add, name="rota-override-add"),
    path(
        "rotas/<int:pk>/cover/<int:override_id>/delete/",
        views.rota_override_delete,
        name="rota-override-delete",
    ),
    path(
        "rotas/<int:pk>/calendar/revoke/",
        views.rota_calendar_revoke_view,
        name="rota-calendar-revoke",
    ),
    path("rotas/<int:pk>/calendar.ics", views.rota_calendar_feed, name="rota-calendar"),
]
