"""URLs of the comms app: pages (mounted at the site root), and the activation API routes that
``ctpn.urls`` mounts under /api/v1/ (the rota API is wired there directly)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views
from .api import (
    ActivationViewSet,
    AlertViewSet,
    BriefViewSet,
    ExerciseViewSet,
    PublicStatementViewSet,
    ScenarioViewSet,
    SmsReceiptView,
)

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
    path("me/contact-methods/", views.contact_methods, name="contact-methods"),
    path(
        "me/contact-methods/<int:method_id>/",
        views.contact_method_change,
        name="contact-method-change",
    ),
    # Activation alerting
    path("ack/<str:token>/", views.ack_link, name="ack"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:activation_id>/answer/", views.alert_answer, name="alert-answer"),
    path("activations/", views.activation_list, name="activations"),
    path("activations/new/", views.activation_new, name="activation-new"),
    path("activations/<int:activation_id>/", views.activation_board, name="activation"),
    path("health/", views.health, name="health"),
    # Public statements and situation briefs of an incident
    path(
        "incidents/<int:incident_id>/public-line/",
        views.public_line_panel,
        name="public-line-panel",
    ),
    path(
        "incidents/<int:incident_id>/statements/new/",
        views.statement_new,
        name="statement-new",
    ),
    path(
        "incidents/<int:incident_id>/statements/<int:statement_id>/",
        views.statement_detail,
        name="statement",
    ),
    path(
        "incidents/<int:incident_id>/statements/<int:statement_id>/revise/",
        views.statement_revise_page,
        name="statement-revise",
    ),
    path(
        "incidents/<int:incident_id>/statements/<int:statement_id>/review/",
        views.statement_review_page,
        name="statement-review",
    ),
    path(
        "incidents/<int:incident_id>/statements/<int:statement_id>/publish/",
        views.statement_publish_page,
        name="statement-publish",
    ),
    path(
        "incidents/<int:incident_id>/statements/<int:statement_id>/withdraw/",
        views.statement_withdraw_page,
        name="statement-withdraw",
    ),
    path("incidents/<int:incident_id>/briefs/", views.briefs_page, name="briefs"),
    path(
        "incidents/<int:incident_id>/briefs/<int:brief_id>/",
        views.brief_page,
        name="brief",
    ),
    path(
        "incidents/<int:incident_id>/briefs/<int:brief_id>/issue/",
        views.brief_issue_page,
        name="brief-issue",
    ),
    path(
        "incidents/<int:incident_id>/briefs/<int:brief_id>/changes/",
        views.brief_changes_page,
        name="brief-changes",
    ),
    # Exercises
    path("exercises/", views.exercise_list, name="exercises"),
    path("exercises/scenarios/", views.scenario_list, name="exercise-scenarios"),
    path("exercises/<int:run_id>/", views.exercise_detail, name="exercise"),
    path("exercises/<int:run_id>/control/", views.exercise_control_view, name="exercise-control"),
    path("exercises/<int:run_id>/report/", views.exercise_report, name="exercise-report"),
    path(
        "exercises/<int:run_id>/report.<str:fmt>",
        views.exercise_report_export,
        name="exercise-report-export",
    ),
]

router = SimpleRouter()
router.register("activations", ActivationViewSet, basename="activation")
router.register("alerts", AlertViewSet, basename="alert")
_incident = r"incidents/(?P<incident_pk>[0-9]+)"
router.register(f"{_incident}/statements", PublicStatementViewSet, basename="incident-statement")
router.register(f"{_incident}/briefs", BriefViewSet, basename="incident-brief")
router.register("scenarios", ScenarioViewSet, basename="scenario")
router.register("exercises", ExerciseViewSet, basename="exercise")

api_urlpatterns = [
    *router.urls,
    path("sms-receipts/", SmsReceiptView.as_view(), name="sms-receipt"),
]
