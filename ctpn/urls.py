"""URL map: admin, the REST API under /api/v1/, and its schema and docs."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from comms.api import (
    ContactMethodViewSet,
    EscalationPolicyViewSet,
    MyContactMethodViewSet,
    OverrideViewSet,
    ResponderGroupViewSet,
    RotaViewSet,
    ShiftViewSet,
)
from comms.urls import api_urlpatterns as comms_api
from comms.views import PublicStatementsFeed, public_statements
from coordination import accounts, lesson_views
from coordination import views as coordination_views
from coordination.api import (
    ActionViewSet,
    AgencyViewSet,
    DebriefViewSet,
    DecisionViewSet,
    IncidentExportViewSet,
    LessonViewSet,
    MeetingViewSet,
    MeView,
    TokenView,
    UserViewSet,
)
from incidents import views
from incidents.api import (
    IncidentEventViewSet,
    IncidentViewSet,
    MethaneReportViewSet,
    TimelineEntryViewSet,
)

router = SimpleRouter()
incident = r"incidents/(?P<incident_pk>[0-9]+)"
router.register("incidents", IncidentViewSet, basename="incident")
router.register(f"{incident}/decisions", DecisionViewSet, basename="incident-decision")
router.register(f"{incident}/methane", MethaneReportViewSet, basename="incident-methane")
router.register(f"{incident}/actions", ActionViewSet, basename="incident-action")
router.register(f"{incident}/timeline", TimelineEntryViewSet, basename="incident-timeline")
router.register(f"{incident}/events", IncidentEventViewSet, basename="incident-event")
router.register("agencies", AgencyViewSet, basename="agency")
router.register("users", UserViewSet, basename="user")
# comms
rota = r"rotas/(?P<rota_pk>[0-9]+)"
router.register("rotas", RotaViewSet, basename="rota")
router.register(f"{rota}/shifts", ShiftViewSet, basename="rota-shift")
router.register(f"{rota}/overrides", OverrideViewSet, basename="rota-override")
router.register("me/contact-methods", MyContactMethodViewSet, basename="my-contact-method")
router.register("contact-methods", ContactMethodViewSet, basename="contact-method")
router.register("escalation-policies", EscalationPolicyViewSet, basename="escalation-policy")
router.register("responder-groups", ResponderGroupViewSet, basename="responder-group")
# lessons
router.register(f"{incident}/debriefs", DebriefViewSet, basename="incident-debrief")
router.register("lessons", LessonViewSet, basename="lesson-api")
router.register(f"{incident}/meetings", MeetingViewSet, basename="incident-meeting")

api_v1 = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("me/", MeView.as_view(), name="api-me"),
    *router.urls,
    *comms_api,
    # Written like the router's routes, so the schema and the route agree on the parameter.
    re_path(
        rf"^{incident}/export/log\.pdf$",
        IncidentExportViewSet.as_view({"get": "export_pdf"}),
        name="incident-export-pdf",
    ),
    *(
        re_path(
            rf"^{incident}/export/{kind}\.csv$",
            IncidentExportViewSet.as_view({"get": f"export_{kind}"}),
            name=f"incident-export-{kind}",
        )
        for kind in ("decisions", "timeline", "actions")
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("audit/", coordination_views.audit_log, name="audit-log"),
    path("audit/export.csv", coordination_views.audit_export, name="audit-export"),
    path("lessons/", lesson_views.lesson_list, name="lessons"),
    path("lessons/<int:lesson_id>/", lesson_views.lesson_detail, name="lesson"),
    path(
        "lessons/<int:lesson_id>/transition/",
        lesson_views.lesson_transition_view,
        name="lesson-transition",
    ),
    path("lessons/<int:lesson_id>/assign/", lesson_views.lesson_assign_view, name="lesson-assign"),
    path("incidents/<int:incident_id>/debriefs/", lesson_views.debrief_list, name="debriefs"),
    path("debriefs/<int:debrief_id>/", lesson_views.debrief_detail, name="debrief"),
    path(
        "debriefs/<int:debrief_id>/observations/",
        lesson_views.debrief_observation,
        name="debrief-observation",
    ),
    path("debriefs/<int:debrief_id>/close/", lesson_views.debrief_close_view, name="debrief-close"),
    path(
        "observations/<int:observation_id>/lesson/",
        lesson_views.observation_lesson,
        name="observation-lesson",
    ),
    path("", include("comms.urls")),
    path("accounts/", include("coordination.urls")),
    path(
        "accounts/password_change/",
        accounts.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the policy allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
    path("", include("incidents.urls")),
    # Public, no sign-in: the city's published statements (by the city's code, e.g. /public/sto/).
    path(
        "public/<slug:city_code>/statements/",
        public_statements,
        name="public-statements",
    ),
    path(
        "public/<slug:city_code>/statements.atom",
        PublicStatementsFeed(),
        name="public-statements-feed",
    ),
]

# Every refused page request is recorded in the audit log.
handler403 = "coordination.views.permission_denied"
