"""Page routes: the incident list, each incident's dashboard, panels, wall screen and forms.

The home page (``views.home``, the same list) is routed by ``ctpn.urls``.
"""

from django.urls import path

from . import views

# Namespaced: the API router names its routes incident-list, incident-transition, and so on.
app_name = "pages"

urlpatterns = [
    path("incidents/", views.incident_list, name="incident-list"),
    path("incidents/<int:incident_id>/", views.incident_dashboard, name="incident-dashboard"),
    path("incidents/<int:incident_id>/wall/", views.incident_wall, name="incident-wall"),
    path(
        "incidents/<int:incident_id>/panels/<slug:name>/",
        views.incident_panel,
        name="incident-panel",
    ),
    path(
        "incidents/<int:incident_id>/decisions/new/",
        views.decision_create,
        name="incident-decision-new",
    ),
    path(
        "incidents/<int:incident_id>/decisions/<int:decision_id>/position/",
        views.decision_position,
        name="incident-decision-position",
    ),
    path(
        "incidents/<int:incident_id>/methane/new/",
        views.methane_create,
        name="incident-methane-new",
    ),
    path("incidents/<int:incident_id>/actions/new/", views.action_new, name="incident-action-new"),
    path(
        "incidents/<int:incident_id>/actions/<int:action_id>/status/",
        views.action_status,
        name="incident-action-status",
    ),
    path(
        "incidents/<int:incident_id>/timeline/new/",
        views.timeline_new,
        name="incident-timeline-new",
    ),
    path(
        "incidents/<int:incident_id>/transition/",
        views.incident_transition_view,
        name="incident-transition",
    ),
]
