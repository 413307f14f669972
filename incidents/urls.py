"""Page routes: the incident list, each incident's dashboard, panels, wall screen and forms.

The home page (``views.home``, the same list) is routed by ``ctpn.urls``.
"""

from django.urls import path

from coordination import export_views, meeting_views

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
    path(
        "incidents/<int:incident_id>/meetings/",
        meeting_views.meeting_list,
        name="incident-meetings",
    ),
    path(
        "incidents/<int:incident_id>/meetings/new/",
        meeting_views.meeting_new,
        name="incident-meeting-new",
    ),
    path(
        "incidents/<int:incident_id>/meetings/<int:meeting_id>/",
        meeting_views.meeting_detail,
        name="incident-meeting",
    ),
    path(
        "incidents/<int:incident_id>/meetings/<int:meeting_id>/edit/",
        meeting_views.meeting_edit,
        name="incident-meeting-edit",
    ),
    path(
        "incidents/<int:incident_id>/meetings/<int:meeting_id>/minutes/",
        meeting_views.meeting_minutes,
        name="incident-meeting-minutes",
    ),
    path(
        "incidents/<int:incident_id>/meetings/<int:meeting_id>/attendance/",
        meeting_views.meeting_attendance,
        name="incident-meeting-attendance",
    ),
    path(
        "incidents/<int:incident_id>/meetings/<int:meeting_id>/transition/",
        meeting_views.meeting_transition_view,
        name="incident-meeting-transition",
    ),
    path(
        "incidents/<int:incident_id>/export/log.pdf",
        export_views.incident_export_pdf,
        name="incident-export-pdf",
    ),
    path(
        "incidents/<int:incident_id>/export/<slug:kind>.csv",
        export_views.incident_export_csv,
        name="incident-export-csv",
    ),
]
