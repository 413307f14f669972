"""Server-rendered pages of the comms app.

Rota part: who is on call now and next in every agency of the user's city, and one rota with its
coming stretches, shifts and cover (administrators add and remove them here). The calendar feed is
reached by calendar apps without a session, through the secret token in its URL.

Contact part: the signed-in person's own ways of being reached (e-mail, SMS, webhook).

Activation part: the one-tap answer link (no session: its signed token is the credential), the
caller's alerts, sending an activation and its live board; and ``/health/`` for probes.
"""

import csv
import json
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.syndication.views import Feed
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from coordination.models import Agency, City, User
from coordination.roles import Capability, user_can
from ctpn.errors import Conflict
from incidents.models import Incident

from . import watchdog
from .briefs import SECTIONS as BRIEF_SECTIONS
from .briefs import brief_changes, brief_generate, brief_issue, brief_update
from .exercises import exercise_control, exercise_create
from .forms import (
    BriefEditForm,
    BriefGenerateForm,
    ContactMethodForm,
    OverrideForm,
    ShiftForm,
    StatementConfirmForm,
    StatementDraftForm,
    StatementReviewForm,
    StatementReviseForm,
)
from .ical import calendar_token, calendar_token_valid, rota_calendar
from .metrics import exercise_metrics, metrics_csv_rows
from .models import (
    Acknowledgement,
    Activation,
    ActivationStatus,
    AnsweredVia,
    Brief,
    BriefStatus,
    Channel,
    ContactMethod,
    ExerciseInject,
    ExerciseRun,
    Notification,
    PublicStatement,
    Quorum,
    Response,
    Rota,
    RotaOverride,
    Scenario,
    Shift,
    StatementStatus,
    Urgency,
)
from .rotas import on_call, on_call_overview, rota_timeline
from .serializers import ActivationBoardSerializer, activation_rows
from .services import (
    AckLinkExpired,
    ack_notification,
    activation_acknowledge,
    activation_send,
    contact_method_create,
    contact_method_delete,
    contact_method_update,
    override_create,
    override_delete,
    rota_calendar_revoke,
    shift_create,
    shift_delete,
)
from .statements import (
    statement_approvals,
    statement_approve,
    statement_draft,
    statement_publish,
    statement_request_changes,
    statement_revise,
    statement_withdraw,
    statements_prefetched,
)

# How far ahead a rota's page shows who holds each tier.
PAGE_DAYS = 14


@login_required
@require_GET
def rota_list(request: HttpRequest) -> HttpResponse:
    """Who is on call now, and who is next, for every agency of the user's city."""
    now = timezone.now()
    rotas = list(
        Rota.objects.visible_to(request.user)
        .filter(is_active=True)
        .select_related("agency__city")
        .order_by("agency__short_name", "name", "id")
    )
    overview = on_call_overview(rotas=rotas, at=now)
    per_agency: dict[int, list] = {}
    for answer, handovers in overview:
        per_agency.setdefault(answer.rota.agency_id, []).append(
            {"rota": answer.rota, "on_call": answer, "next": handovers}
        )
    agencies = [
        {"agency": agency, "rotas": per_agency.get(agency.pk, [])}
        for agency in Agency.objects.visible_to(request.user)
        .filter(is_active=True)
        .select_related("city")
        .order_by("city__name", "short_name")
    ]
    return render(request, "comms/rota_list.html", {"agencies": agencies, "now": now})


def _visible_rota(request: HttpRequest, pk: int) -> Rota:
    return get_object_or_404(
        Rota.objects.visible_to(request.user).select_related("agency__city"), pk=pk
    )


def _detail(
    request: HttpRequest,
    rota: Rota,
    *,
    shift_form: ShiftForm | None = None,
    override_form: OverrideForm | None = None,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    can_manage = user_can(request.user, Capability.ROTA_MANAGE)
    context = {
        "rota": rota,
        "zone": rota.agency.city.time_zone,
        "now": now,
        "on_call": on_call(rota=rota, at=now),
        "segments": rota_timeline(rota=rota, start=now, end=now + timedelta(days=PAGE_DAYS)),
        "page_days": PAGE_DAYS,
        "shifts": rota.shifts.select_related("user").order_by("tier", "start_date", "start_time"),
        "overrides": rota.overrides.filter(ends_at__gt=now)
        .select_related("user")
        .order_by("starts_at", "id"),
        "can_manage": can_manage,
        "calendar_url": request.build_absolute_uri(
            reverse("rota-calendar", args=[rota.pk]) + f"?token={calendar_token(rota)}"
        ),
    }
    if can_manage:
        context["shift_form"] = shift_form or ShiftForm(rota=rota)
        context["override_form"] = override_form or OverrideForm(rota=rota)
    return render(request, "comms/rota_detail.html", context, status=status)


@login_required
@require_GET
def rota_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One rota: who is on call, the coming two weeks, its shifts and cover."""
    return _detail(request, _visible_rota(request, pk))


def _service_errors_to_form(form, exc: ValidationError, renames: dict[str, str]) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            name = renames.get(field, field)
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _signed_in(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required guarantees it
    return request.user


def _manager_only(request: HttpRequest) -> None:
    if not user_can(request.user, Capability.ROTA_MANAGE):
        raise PermissionDenied("Only administrators change rotas.")


@login_required
@require_POST
def rota_shift_add(request: HttpRequest, pk: int) -> HttpResponse:
    rota = _visible_rota(request, pk)
    _manager_only(request)
    form = ShiftForm(request.POST, rota=rota)
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            shift_create(
                user=_signed_in(request), rota_id=rota.pk, officer=data.pop("user"), **data
            )
        except ValidationError as exc:
            _service_errors_to_form(form, exc, {"officer": "user"})
        else:
            messages.success(request, "Shift added.")
            return redirect("rota", pk=rota.pk)
    return _detail(request, rota, shift_form=form, status=400)


@login_required
@require_POST
def rota_override_add(request: HttpRequest, pk: int) -> HttpResponse:
    rota = _visible_rota(request, pk)
    _manager_only(request)
    form = OverrideForm(request.POST, rota=rota)
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            override_create(
                user=_signed_in(request), rota_id=rota.pk, officer=data.pop("user"), **data
            )
        except ValidationError as exc:
            _service_errors_to_form(form, exc, {"officer": "user"})
        else:
            messages.success(request, "Cover added.")
            return redirect("rota", pk=rota.pk)
    return _detail(request, rota, override_form=form, status=400)


@login_required
@require_POST
def rota_shift_delete(request: HttpRequest, pk: int, shift_id: int) -> HttpResponse:
    rota = _visible_rota(request, pk)
    get_object_or_404(Shift.objects.visible_to(request.user), pk=shift_id, rota=rota)
    shift_delete(user=_signed_in(request), shift_id=shift_id)
    messages.success(request, "Shift removed.")
    return redirect("rota", pk=rota.pk)


@login_required
@require_POST
def rota_override_delete(request: HttpRequest, pk: int, override_id: int) -> HttpResponse:
    rota = _visible_rota(request, pk)
    get_object_or_404(RotaOverride.objects.visible_to(request.user), pk=override_id, rota=rota)
    override_delete(user=_signed_in(request), override_id=override_id)
    messages.success(request, "Cover removed.")
    return redirect("rota", pk=rota.pk)


@login_required
@require_POST
def rota_calendar_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    rota = _visible_rota(request, pk)
    rota_calendar_revoke(user=_signed_in(request), rota_id=rota.pk)
    messages.success(request, "Calendar link replaced; the old link no longer works.")
    return redirect("rota", pk=rota.pk)


@require_safe  # calendar apps also ask with HEAD
def rota_calendar_feed(request: HttpRequest, pk: int) -> HttpResponse:
    """The rota as an iCalendar feed, for calendar apps: no session, a token in the URL.

    A missing, wrong or revoked token answers 404, exactly like a rota that does not exist.
    """
    rota = Rota.objects.select_related("agency__city").filter(pk=pk).first()
    if rota is None or not calendar_token_valid(rota, request.GET.get("token", "")):
        raise Http404("No such calendar.")
    response = HttpResponse(
        rota_calendar(rota, now=timezone.now()), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'inline; filename="rota-{rota.pk}.ics"'
    response["Cache-Control"] = "private, max-age=300"
    # The token is in the URL: keep it out of any Referer a calendar app might send on.
    response["Referrer-Policy"] = "no-referrer"
    return response


# ================================================================================================
# Activation alerting
# ================================================================================================


ETA_CHOICES = (10, 20, 30, 60)


def _contact_page(
    request: HttpRequest,
    form: ContactMethodForm | None = None,
    created: ContactMethod | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _signed_in(request)
    methods = ContactMethod.objects.visible_to(user).filter(user=user).order_by("kind", "id")
    context = {"methods": methods, "form": form or ContactMethodForm(), "created": created}
    return _private(render(request, "comms/contact_methods.html", context, status=status))


@login_required
@require_http_methods(["GET", "POST"])
def contact_methods(request: HttpRequest) -> HttpResponse:
    """The person's own contact methods. A new webhook's signing secret is shown once, in the
    answer to the POST that created it (never in a redirect, a message or a later page)."""
    if request.method == "GET":
        return _contact_page(request)
    form = ContactMethodForm(request.POST)
    if form.is_valid():
        user = _signed_in(request)
        try:
            created = contact_method_create(user=user, owner=user, **form.cleaned_data)
        except ValidationError as exc:
            _service_errors_to_form(form, exc, {})
        else:
            return _contact_page(request, created=created)
    return _contact_page(request, form=form, status=400)


@login_required
@require_POST
def contact_method_change(request: HttpRequest, method_id: int) -> HttpResponse:
    """Switch one of the person's contact methods off or on, or remove it."""
    user = _signed_in(request)
    get_object_or_404(ContactMethod.objects.visible_to(user).filter(user=user), pk=method_id)
    change = request.POST.get("change")
    if change == "remove":
        contact_method_delete(user=user, method_id=method_id)
        messages.success(request, "Contact method removed.")
    elif change in {"on", "off"}:
        contact_method_update(user=user, method_id=method_id, is_active=change == "on")
        messages.success(request, f"Alerts to it are switched {change}.")
    else:
        return HttpResponse("change must be on, off or remove.", status=400)
    return redirect("contact-methods")


def _answer_parse(choice: str) -> tuple[str, int | None] | None:
    """``acknowledged``, ``cannot_attend`` or ``attending:<minutes>`` from a pressed button."""
    response, _, eta = (choice or "").partition(":")
    if response == Response.ATTENDING:
        return (response, int(eta)) if eta.isdigit() else None
    if response in (Response.ACKNOWLEDGED, Response.CANNOT_ATTEND) and not eta:
        return response, None
    return None


def _private(response: HttpResponse) -> HttpResponse:
    # The link is a secret: no caches, no search engines, and no Referer carrying it elsewhere.
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def ack_link(request: HttpRequest, token: str) -> HttpResponse:
    """The one-tap link from an e-mail or SMS; works on a phone without signing in.

    GET only shows the question (mail scanners fetch links, and must not answer); one POST from
    one of its buttons answers. CSRF protection is the signed token itself: a forged POST would
    have to know it, and whoever knows it may answer anyway; no session or cookie is involved.
    The link is single use: once the person has answered, it shows the answer.
    """
    try:
        notification = ack_notification(token)
    except AckLinkExpired:
        page = render(request, "comms/ack_invalid.html", {"reason": "expired"}, status=410)
        return _private(page)
    except (signing.BadSignature, ValueError):
        page = render(request, "comms/ack_invalid.html", {"reason": "invalid"}, status=400)
        return _private(page)
    activation = notification.activation
    context: dict[str, Any] = {
        "notification": notification,
        "activation": activation,
        "zone": activation.city.time_zone,
        "eta_choices": ETA_CHOICES,
    }
    answer = Acknowledgement.objects.filter(
        activation=activation, user_id=notification.recipient_id
    ).first()
    if answer is not None:
        return _private(render(request, "comms/ack_done.html", {**context, "answer": answer}))
    if activation.status == ActivationStatus.CANCELLED:
        return _private(render(request, "comms/ack_done.html", {**context, "stood_down": True}))
    if request.method == "GET":
        return _private(render(request, "comms/ack.html", context))
    parsed = _answer_parse(request.POST.get("choice", ""))
    if parsed is None:
        context["error"] = "Choose one of the buttons."
        return _private(render(request, "comms/ack.html", context, status=400))
    response, eta = parsed
    try:
        answer, created = activation_acknowledge(
            activation_id=activation.pk,
            user=notification.recipient,
            response=response,
            eta_minutes=eta,
            via=AnsweredVia.LINK,
            notification=notification,
        )
    except (ValidationError, PermissionDenied, Conflict) as exc:
        context["error"] = "; ".join(getattr(exc, "messages", [str(exc)]))
        return _private(render(request, "comms/ack.html", context, status=400))
    page = render(
        request, "comms/ack_done.html", {**context, "answer": answer, "just_now": created}
    )
    return _private(page)


@login_required
@ensure_csrf_cookie  # the answer buttons post through the API with the CSRF cookie
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    """The signed-in person's alerts, newest first, with their answers and answer buttons."""
    user = _signed_in(request)
    rows = list(
        Notification.objects.visible_to(user)
        .filter(recipient=user, channel=Channel.IN_APP)
        .select_related("activation__city", "activation__incident", "target__agency")
        .order_by("-created_at", "-id")[:50]
    )
    answers = {
        a.activation_id: a
        for a in Acknowledgement.objects.filter(
            user=user, activation_id__in={n.activation_id for n in rows}
        )
    }
    items = [{"notification": n, "answer": answers.get(n.activation_id)} for n in rows]
    return render(request, "comms/alerts.html", {"items": items, "eta_choices": ETA_CHOICES})


@login_required
@require_POST
def alert_answer(request: HttpRequest, activation_id: int) -> HttpResponse:
    """An answer button on the alerts page (signed in, CSRF-protected like any form)."""
    user = _signed_in(request)
    activation = get_object_or_404(Activation.objects.visible_to(user), pk=activation_id)
    parsed = _answer_parse(request.POST.get("choice", ""))
    if parsed is None:
        return HttpResponse("Choose one of the buttons.", status=400)
    try:
        activation_acknowledge(
            activation_id=activation.pk,
            user=user,
            response=parsed[0],
            eta_minutes=parsed[1],
            via=AnsweredVia.IN_APP,
        )
    except (ValidationError, PermissionDenied, Conflict) as exc:
        return HttpResponse("; ".join(getattr(exc, "messages", [str(exc)])), status=400)
    return redirect("alerts")


@login_required
@require_GET
def activation_list(request: HttpRequest) -> HttpResponse:
    user = _signed_in(request)
    activations = activation_rows().filter(pk__in=Activation.objects.visible_to(user).values("pk"))[
        :100
    ]
    return render(
        request,
        "comms/activation_list.html",
        {
            "activations": activations,
            "can_send": user_can(user, Capability.ACTIVATION_SEND),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def activation_new(request: HttpRequest) -> HttpResponse:
    """The form commanders and the duty desk send an activation with."""
    user = _signed_in(request)
    if not user_can(user, Capability.ACTIVATION_SEND):
        raise PermissionDenied("Your roles do not allow sending activations.")
    agencies = Agency.objects.visible_to(user).filter(is_active=True).order_by("name")
    incidents = Incident.objects.visible_to(user).exclude(status="closed")
    context: dict[str, Any] = {
        "agencies": agencies,
        "incidents": incidents,
        "urgencies": Urgency.choices,
        "quorums": Quorum.choices,
        "values": request.POST,
        "chosen": {int(v) for v in request.POST.getlist("agencies") if v.isdigit()},
    }
    if request.method == "POST":
        errors: dict[str, list[str]] = {}
        chosen = list(agencies.filter(pk__in=context["chosen"]))
        incident = None
        if request.POST.get("incident", "").isdigit():
            incident = incidents.filter(pk=int(request.POST["incident"])).first()
        minutes = request.POST.get("response_minutes", "30")
        if not minutes.isdigit() or not 1 <= int(minutes) <= 7 * 24 * 60:
            errors["response_deadline"] = ["Give the minutes to answer within, e.g. 30."]
        per_agency = request.POST.get("quorum_per_agency", "1")
        if not per_agency.isdigit():
            errors["quorum_per_agency"] = ["Must be a whole number."]
        if not errors:
            try:
                activation = activation_send(
                    user=user,
                    message=request.POST.get("message", ""),
                    agencies=chosen,
                    urgency=request.POST.get("urgency", Urgency.IMMEDIATE),
                    quorum=request.POST.get("quorum", Quorum.EACH_AGENCY),
                    quorum_per_agency=int(per_agency),
                    response_deadline=timezone.now() + timedelta(minutes=int(minutes)),
                    incident=incident,
                    is_exercise=bool(request.POST.get("is_exercise")) or None,
                )
            except ValidationError as exc:
                errors = exc.message_dict
            else:
                return redirect("activation", activation_id=activation.pk)
        context["errors"] = errors
        return render(request, "comms/activation_form.html", context, status=400)
    return render(request, "comms/activation_form.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def activation_board(request: HttpRequest, activation_id: int) -> HttpResponse:
    """The live board of one activation; updates arrive over ``/ws/activations/<id>/``."""
    user = _signed_in(request)
    activation = get_object_or_404(
        activation_rows().filter(pk__in=Activation.objects.visible_to(user).values("pk")),
        pk=activation_id,
    )
    board = ActivationBoardSerializer(activation).data
    return render(
        request,
        "comms/activation_board.html",
        {
            "activation": activation,
            "board": json.loads(json.dumps(board, default=str)),
            "zone": activation.city.time_zone,
            "can_cancel": user_can(user, Capability.ACTIVATION_SEND),
        },
    )


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitoring: 200 when alerts can flow, 503 naming what cannot.

    Checks the database, Redis, and the heartbeats of the worker, beat and the sweep.
    """
    checks: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    status = watchdog.alerting_status()
    checks["redis"] = {"ok": status.redis_ok}
    if not status.redis_ok:
        checks["redis"]["error"] = status.redis_error
    for component in status.components:
        age = None if component.age_seconds is None else round(component.age_seconds, 1)
        checks[component.name] = {"ok": component.ok, "last_heartbeat_seconds_ago": age}
    stale = [name for name, check in checks.items() if not check["ok"]]
    body = {
        "status": "ok" if not stale else "degraded",
        "stale": stale,
        "checks": checks,
        "stale_after_seconds": settings.ALERT_HEARTBEAT_STALE_SECONDS,
        "checked_in_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if not stale else 503)


# =================================================================================================
# Public statements: the dashboard's "Public line" panel, the statement pages, and the public
# page and Atom feed of each city (no sign-in). Situation briefs (IIMARCH).
# =================================================================================================


def _incident_page(request: HttpRequest, incident_id: int) -> Incident:
    from incidents.views import incident_for

    return incident_for(request, incident_id)


def _participates(user: Any, incident: Incident) -> bool:
    return bool(
        user.is_superuser
        or any(a.pk == user.agency_id for a in incident.participating_agencies.all())
    )


def public_line_context(
    request: HttpRequest, incident: Incident, *, wall: bool = False
) -> dict[str, Any]:
    """What the "Public line" panel shows: the current statement, drafts in progress with each
    named partner's answer, and the controls the signed-in person may use."""
    user = request.user
    statements = list(
        statements_prefetched(
            PublicStatement.objects.visible_to(user).filter(
                incident=incident,
                status__in=[StatementStatus.DRAFT, StatementStatus.PUBLISHED],
            )
        ).order_by("-created_at", "-pk")
    )
    writer = (
        not wall
        and incident.status != "closed"
        and _participates(user, incident)
        and user_can(user, Capability.STATEMENT_WRITE)
    )
    agency_id = getattr(user, "agency_id", None)
    for statement in statements:
        statement.approvals = statement_approvals(statement)
        statement.missing = [a.agency for a in statement.approvals if not a.approved]
        statement.can_own = writer and agency_id == statement.owner_agency_id
        statement.can_review = writer and any(a.agency.pk == agency_id for a in statement.approvals)
    latest_brief = (
        Brief.objects.visible_to(user)
        .filter(incident=incident, status=BriefStatus.ISSUED)
        .order_by("-number")
        .first()
    )
    return {
        "incident": incident,
        "wall": wall,
        "current_statement": next(
            (s for s in statements if s.status == StatementStatus.PUBLISHED), None
        ),
        "draft_statements": [s for s in statements if s.status == StatementStatus.DRAFT],
        "can_draft_statement": writer and agency_id is not None,
        "latest_brief": latest_brief,
        "public_url": reverse("public-statements", kwargs={"city_code": incident.city.code.lower()})
        if not incident.is_exercise
        else None,
    }


@require_GET
def public_line_panel(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The "Public line" panel alone, for the live dashboard to swap in (401 without a session,
    as the other panels)."""
    if not request.user.is_authenticated:
        return HttpResponse("Sign in again to see this incident.", status=401)
    incident = _incident_page(request, incident_id)
    wall = request.GET.get("wall") == "1"
    with timezone.override(incident.city.zone):
        return render(
            request,
            "incidents/panels/public_line.html",
            public_line_context(request, incident, wall=wall),
        )


def _statement_writer(request: HttpRequest, incident_id: int) -> Incident:
    from incidents.views import writer_incident

    return writer_incident(request, incident_id, Capability.STATEMENT_WRITE)


def _to_statement(incident: Incident, statement: PublicStatement) -> HttpResponse:
    return redirect("statement", incident_id=incident.pk, statement_id=statement.pk)


def _statement_for(request: HttpRequest, incident: Incident, statement_id: int) -> PublicStatement:
    return get_object_or_404(
        statements_prefetched(PublicStatement.objects.visible_to(request.user)).filter(
            incident=incident
        ),
        pk=statement_id,
    )


def _service_call(form, call, *, aliases: dict[str, str] | None = None) -> tuple[Any, int]:
    """Run a service for a valid form: (its result, 200), or (None, 400/409) with the refusal
    next to the field it concerns or at the top of the form."""
    if not form.is_valid():
        return None, 400
    try:
        return call(), 200
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        for name, problems in errors.items():
            field = (aliases or {}).get(name, name)
            form.add_error(field if field in form.fields else None, list(problems))
        return None, 400
    except Conflict as exc:
        form.add_error(None, exc.message)
        return None, 409


def _statement_page(
    request: HttpRequest,
    incident: Incident,
    statement: PublicStatement,
    *,
    review_form=None,
    action_form=None,
    status: int = 200,
) -> HttpResponse:
    context = public_line_context(request, incident)
    mine = next(
        (s for s in context["draft_statements"] if s.pk == statement.pk),
        None,
    )
    approvals = statement_approvals(statement)
    # Shown by the template as the panel shows them.
    statement.approvals = approvals  # type: ignore[attr-defined]
    statement.missing = [a.agency for a in approvals if not a.approved]  # type: ignore[attr-defined]
    statement.can_own = bool(mine and mine.can_own)  # type: ignore[attr-defined]
    statement.can_review = bool(mine and mine.can_review)  # type: ignore[attr-defined]
    versions = sorted(statement.versions.all(), key=lambda v: -v.number)
    reviews = sorted(statement.reviews.all(), key=lambda r: (r.created_at, r.pk), reverse=True)
    return render(
        request,
        "comms/statements_detail.html",
        {
            "incident": incident,
            "statement": statement,
            "versions": versions,
            "reviews": reviews,
            "review_form": review_form or StatementReviewForm(),
            "form": action_form or review_form,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def statement_new(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Draft a public statement, naming the partner agencies whose approval it needs."""
    incident = _statement_writer(request, incident_id)
    agencies = (
        Agency.objects.visible_to(request.user)
        .filter(pk__in=incident.participating_agencies.values("pk"))
        .exclude(pk=_signed_in(request).agency_id)
        .order_by("short_name")
    )
    with timezone.override(incident.city.zone):
        form = StatementDraftForm(request.POST or None, agencies=agencies)
        status = 200
        if request.method == "POST":
            statement, status = _service_call(
                form,
                lambda: statement_draft(
                    incident_id=incident.pk, user=_signed_in(request), **form.cleaned_data
                ),
            )
            if statement is not None:
                messages.success(request, "Statement drafted; the partners named can now approve.")
                return _to_statement(incident, statement)
        return render(
            request,
            "comms/statements_new.html",
            {"incident": incident, "form": form},
            status=status,
        )


@login_required
@require_GET
def statement_detail(request: HttpRequest, incident_id: int, statement_id: int) -> HttpResponse:
    """One statement: its wording, where each partner stands, every version and answer."""
    incident = _incident_page(request, incident_id)
    statement = _statement_for(request, incident, statement_id)
    with timezone.override(incident.city.zone):
        return _statement_page(request, incident, statement)


@login_required
@require_http_methods(["GET", "POST"])
def statement_revise_page(
    request: HttpRequest, incident_id: int, statement_id: int
) -> HttpResponse:
    """A new version of a draft's wording (approvals start again)."""
    incident = _statement_writer(request, incident_id)
    statement = _statement_for(request, incident, statement_id)
    with timezone.override(incident.city.zone):
        current = statement.current_version
        initial = {"headline": current.headline, "body": current.body} if current else {}
        form = StatementReviseForm(request.POST or None, initial=initial)
        status = 200
        if request.method == "POST":
            result, status = _service_call(
                form,
                lambda: statement_revise(
                    statement_id=statement.pk, user=_signed_in(request), **form.cleaned_data
                ),
            )
            if result is not None:
                messages.success(request, "New version saved; the partners named approve it again.")
                return _to_statement(incident, statement)
        return render(
            request,
            "comms/statements_revise.html",
            {"incident": incident, "statement": statement, "form": form},
            status=status,
        )


@login_required
@require_POST
def statement_review_page(
    request: HttpRequest, incident_id: int, statement_id: int
) -> HttpResponse:
    """Approve the current version for one's agency, or request changes (with a comment)."""
    incident = _statement_writer(request, incident_id)
    statement = _statement_for(request, incident, statement_id)
    with timezone.override(incident.city.zone):
        form = StatementReviewForm(request.POST)

        def review():
            if form.cleaned_data["decision"] == StatementReviewForm.APPROVE:
                return statement_approve(
                    statement_id=statement.pk,
                    user=_signed_in(request),
                    comment=form.cleaned_data["comment"],
                )
            return statement_request_changes(
                statement_id=statement.pk,
                user=_signed_in(request),
                comment=form.cleaned_data["comment"],
            )

        result, status = _service_call(form, review)
        if result is not None:
            messages.success(
                request,
                f"{result.agency.short_name}: {result.get_decision_display().lower()} "
                f"(version {result.version.number}).",
            )
            return _to_statement(incident, statement)
        statement = _statement_for(request, incident, statement_id)
        return _statement_page(request, incident, statement, review_form=form, status=status)


def _statement_step(request: HttpRequest, incident_id: int, statement_id: int, step, done: str):
    incident = _statement_writer(request, incident_id)
    statement = _statement_for(request, incident, statement_id)
    with timezone.override(incident.city.zone):
        form = StatementConfirmForm(request.POST)
        result, status = _service_call(
            form, lambda: step(statement_id=statement.pk, user=_signed_in(request))
        )
        if result is not None:
            messages.success(request, done)
            return _to_statement(incident, statement)
        statement = _statement_for(request, incident, statement_id)
        return _statement_page(request, incident, statement, action_form=form, status=status)


@login_required
@require_POST
def statement_publish_page(
    request: HttpRequest, incident_id: int, statement_id: int
) -> HttpResponse:
    """Publish as the public line (409, naming the partners, while approvals are missing)."""
    return _statement_step(
        request, incident_id, statement_id, statement_publish, "Published as the public line."
    )


@login_required
@require_POST
def statement_withdraw_page(
    request: HttpRequest, incident_id: int, statement_id: int
) -> HttpResponse:
    return _statement_step(
        request, incident_id, statement_id, statement_withdraw, "Draft withdrawn."
    )


# --- the public page and feed (no sign-in) --------------------------------------------------------

PUBLIC_STATEMENTS_SHOWN = 50


def _public_city(city_code: str) -> City:
    return get_object_or_404(City, code=city_code.upper())


def public_statements_of(city: City):
    """What the public page and feed show: published statements of real incidents of the city,
    newest first. Only fields a press release carries are read from them."""
    return (
        PublicStatement.objects.published()
        .filter(incident__city=city)
        .select_related("current_version", "owner_agency", "incident__city")[
            :PUBLIC_STATEMENTS_SHOWN
        ]
    )


@require_safe
def public_statements(request: HttpRequest, city_code: str) -> HttpResponse:
    """The city's public statements, for anyone: the current lines first in time order, each
    superseded one marked as such. Exercises never appear here."""
    city = _public_city(city_code)
    with timezone.override(city.zone):
        return render(
            request,
            "public/statements.html",
            {"city": city, "statements": list(public_statements_of(city))},
        )


class PublicStatementsFeed(Feed):
    """The same statements as an Atom 1.0 feed."""

    feed_type = Atom1Feed

    def get_object(self, request: HttpRequest, city_code: str) -> City:
        return _public_city(city_code)

    def title(self, city: City) -> str:
        return f"Public statements: {city.name}"

    def link(self, city: City) -> str:
        return reverse("public-statements", kwargs={"city_code": city.code.lower()})

    def subtitle(self, city: City) -> str:
        return f"Statements agreed by the partner agencies of {city.name}, newest first."

    def items(self, city: City):
        return public_statements_of(city)

    def item_title(self, item: PublicStatement) -> str:
        headline = item.current_version.headline if item.current_version else ""
        prefix = "[Superseded] " if item.status == StatementStatus.SUPERSEDED else ""
        return f"{prefix}{headline}"

    def item_description(self, item: PublicStatement) -> str:
        return item.current_version.body if item.current_version else ""

    def item_link(self, item: PublicStatement) -> str:
        page = reverse("public-statements", kwargs={"city_code": item.incident.city.code.lower()})
        return f"{page}#statement-{item.pk}"

    def item_guid(self, item: PublicStatement) -> str:
        return f"urn:ctpn:statement:{item.pk}"

    def item_guid_is_permalink(self, item: PublicStatement) -> bool:
        return False

    def item_pubdate(self, item: PublicStatement):
        return item.published_at

    def item_updateddate(self, item: PublicStatement):
        return item.superseded_at or item.published_at

    def item_author_name(self, item: PublicStatement) -> str:
        return item.owner_agency.name


# --- situation briefs (IIMARCH) -------------------------------------------------------------------


def _brief_writer(request: HttpRequest, incident_id: int) -> Incident:
    from incidents.views import writer_incident

    return writer_incident(request, incident_id, Capability.LOG_WRITE)


def _can_write_briefs(request: HttpRequest, incident: Incident) -> bool:
    return (
        incident.status != "closed"
        and _participates(request.user, incident)
        and user_can(request.user, Capability.LOG_WRITE)
        and getattr(request.user, "agency_id", None) is not None
    )


def _brief_for(request: HttpRequest, incident: Incident, brief_id: int) -> Brief:
    return get_object_or_404(
        Brief.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("author", "author_agency", "issued_by", "previous"),
        pk=brief_id,
    )


@login_required
@require_http_methods(["GET", "POST"])
def briefs_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The incident's situation briefs, and a form to generate a new draft."""
    incident = _incident_page(request, incident_id)
    can_write = _can_write_briefs(request, incident)
    with timezone.override(incident.city.zone):
        form = BriefGenerateForm(request.POST or None)
        status = 200
        if request.method == "POST":
            _brief_writer(request, incident_id)
            brief, status = _service_call(
                form,
                lambda: brief_generate(
                    incident_id=incident.pk, user=_signed_in(request), **form.cleaned_data
                ),
            )
            if brief is not None:
                messages.success(request, "Draft brief generated; edit it, then issue it.")
                return redirect("brief", incident_id=incident.pk, brief_id=brief.pk)
        briefs = (
            Brief.objects.visible_to(request.user)
            .filter(incident=incident)
            .select_related("author", "author_agency")
            .order_by("-created_at", "-pk")
        )
        return render(
            request,
            "comms/briefs_list.html",
            {"incident": incident, "briefs": briefs, "form": form, "can_write": can_write},
            status=status,
        )


@login_required
@require_http_methods(["GET", "POST"])
def brief_page(request: HttpRequest, incident_id: int, brief_id: int) -> HttpResponse:
    """One brief; a draft can be edited here."""
    incident = _incident_page(request, incident_id)
    brief = _brief_for(request, incident, brief_id)
    can_write = _can_write_briefs(request, incident) and brief.status == BriefStatus.DRAFT
    with timezone.override(incident.city.zone):
        initial = {name: getattr(brief, name) for name, _ in BRIEF_SECTIONS}
        form = BriefEditForm(request.POST or None, initial=initial)
        status = 200
        if request.method == "POST":
            _brief_writer(request, incident_id)
            result, status = _service_call(
                form,
                lambda: brief_update(
                    brief_id=brief.pk, user=_signed_in(request), **form.cleaned_data
                ),
            )
            if result is not None:
                messages.success(request, "Draft brief saved.")
                return redirect("brief", incident_id=incident.pk, brief_id=brief.pk)
            brief = _brief_for(request, incident, brief_id)
        return _brief_detail(request, incident, brief, form, can_write=can_write, status=status)


def _brief_detail(
    request: HttpRequest, incident: Any, brief: Any, form: Any, *, can_write: bool, status: int
) -> HttpResponse:
    """The brief's page, with its sections in IIMARCH order and the form that was posted."""
    return render(
        request,
        "comms/briefs_detail.html",
        {
            "incident": incident,
            "brief": brief,
            "sections": [(label, getattr(brief, name)) for name, label in BRIEF_SECTIONS],
            "form": form,
            "can_write": can_write,
        },
        status=status,
    )


@login_required
@require_POST
def brief_issue_page(request: HttpRequest, incident_id: int, brief_id: int) -> HttpResponse:
    """Issue a draft: numbered and frozen (409 if it already is)."""
    incident = _brief_writer(request, incident_id)
    brief = _brief_for(request, incident, brief_id)
    with timezone.override(incident.city.zone):
        form = StatementConfirmForm(request.POST)
        result, status = _service_call(
            form, lambda: brief_issue(brief_id=brief.pk, user=_signed_in(request))
        )
        if result is not None:
            messages.success(request, f"Brief {result.number} issued.")
            return redirect("brief", incident_id=incident.pk, brief_id=brief.pk)
        return _brief_detail(request, incident, brief, form, can_write=False, status=status)


@login_required
@require_GET
def brief_changes_page(request: HttpRequest, incident_id: int, brief_id: int) -> HttpResponse:
    """What changed since the previous issued brief: for the start of a strategic meeting."""
    incident = _incident_page(request, incident_id)
    brief = _brief_for(request, incident, brief_id)
    with timezone.override(incident.city.zone):
        return render(
            request,
            "comms/briefs_changes.html",
            {"incident": incident, "brief": brief, "changes": brief_changes(brief)},
        )


# --- Exercises ----------------------------------------------------------------------------------


def _exercise_rows(user: User):
    return (
        ExerciseRun.objects.visible_to(user)
        .select_related("incident__city", "scenario", "director")
        .order_by("-created_at", "-id")
    )


@login_required
@require_http_methods(["GET", "POST"])
def exercise_list(request: HttpRequest) -> HttpResponse:
    """Exercises the user takes part in; directing staff create one from a scenario here."""
    user = _signed_in(request)
    can_direct = user_can(user, Capability.EXERCISE_DIRECT)
    scenarios = Scenario.objects.visible_to(user).order_by("name")
    agencies = Agency.objects.visible_to(user).filter(is_active=True).order_by("name")
    context: dict[str, Any] = {
        "runs": _exercise_rows(user)[:100],
        "can_direct": can_direct,
        "scenarios": scenarios,
        "agencies": agencies,
        "chosen": {int(v) for v in request.POST.getlist("agencies") if v.isdigit()},
        "values": request.POST,
    }
    if request.method == "POST":
        if not can_direct:
            raise PermissionDenied("Only directing staff create exercises.")
        errors: dict[str, list[str]] = {}
        scenario_id = request.POST.get("scenario", "")
        if not scenario_id.isdigit() or not scenarios.filter(pk=int(scenario_id)).exists():
            errors["scenario"] = ["Choose a scenario."]
        else:
            try:
                run = exercise_create(
                    user=user,
                    scenario_id=int(scenario_id),
                    participating_agencies=list(agencies.filter(pk__in=context["chosen"])),
                    title=request.POST.get("title", ""),
                )
            except ValidationError as exc:
                errors = exc.message_dict
            else:
                messages.success(request, f"EXERCISE {run.incident.reference} created.")
                return redirect("exercise", run_id=run.pk)
        context["errors"] = errors
        return render(request, "comms/exercises_list.html", context, status=400)
    return render(request, "comms/exercises_list.html", context)


@login_required
@require_GET
def scenario_list(request: HttpRequest) -> HttpResponse:
    """The city's scenarios with their injects, for directing staff (players must not read them);
    they are written through the API or the admin."""
    user = _signed_in(request)
    if not user_can(user, Capability.EXERCISE_DIRECT):
        raise PermissionDenied("Scenarios are for directing staff.")
    scenarios = Scenario.objects.visible_to(user).prefetch_related("injects").order_by("name")
    return render(request, "comms/exercises_scenarios.html", {"scenarios": scenarios})


def _run_for(request: HttpRequest, run_id: int) -> ExerciseRun:
    return get_object_or_404(_exercise_rows(_signed_in(request)), pk=run_id)


def _exercise_page(
    request: HttpRequest, run: ExerciseRun, *, status: int = 200, error: str = ""
) -> HttpResponse:
    user = _signed_in(request)
    injects = ExerciseInject.objects.visible_to(user).filter(run=run).order_by("position")
    with timezone.override(run.incident.city.zone):
        return render(
            request,
            "comms/exercises_detail.html",
            {
                "run": run,
                "incident": run.incident,
                "injects": injects,
                "can_direct": user_can(user, Capability.EXERCISE_DIRECT),
                "controls": [(c, CONTROL_LABELS[c]) for c in run.allowed_controls],
                "error": error,
            },
            status=status,
        )


CONTROL_LABELS = {
    "start": "Start the exercise",
    "pause": "Pause",
    "resume": "Resume",
    "end": "End the exercise",
}


@login_required
@require_GET
def exercise_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One exercise: its state, the injects (the whole script for directing staff, the released
    ones for players) and the director's controls."""
    return _exercise_page(request, _run_for(request, run_id))


@login_required
@require_POST
def exercise_control_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """Start, pause, resume or end (the ``control`` field); a refusal shows the page with why."""
    run = _run_for(request, run_id)
    control = request.POST.get("control", "")
    try:
        exercise_control(run_id=run.pk, user=_signed_in(request), control=control)
    except Conflict as exc:
        return _exercise_page(request, run, status=409, error=exc.message)
    except ValidationError as exc:
        return _exercise_page(request, run, status=400, error=" ".join(exc.messages))
    messages.success(request, f"Exercise: {CONTROL_LABELS[control].lower()} done.")
    return redirect("exercise", run_id=run.pk)


def _bar_chart(
    title: str, rows: list[tuple[str, float | None]], unit: str, chart_id: str
) -> dict[str, Any]:
    """A horizontal bar chart drawn on the server as SVG: a title for assistive technology, and
    bars scaled to the largest value (a row with no value is drawn as "none")."""
    width, label_width, bar_height, gap = 640, 220, 22, 8
    top = max((value for _, value in rows if value is not None), default=0) or 1
    bars = []
    for index, (label, value) in enumerate(rows):
        length = 0 if value is None else round((width - label_width - 90) * value / top, 1)
        y = index * (bar_height + gap)
        bars.append(
            {
                "label": label,
                "value": value,
                "text": "none" if value is None else f"{value:g} {unit}",
                "y": y,
                "text_y": y + bar_height - 6,
                "length": length,
                "value_x": label_width + length + 6,
            }
        )
    return {
        "id": chart_id,
        "title": title,
        "unit": unit,
        "bars": bars,
        "width": width,
        "label_width": label_width,
        "bar_height": bar_height,
        "height": max(len(rows), 1) * (bar_height + gap),
    }


@login_required
@require_GET
def exercise_report(request: HttpRequest, run_id: int) -> HttpResponse:
    """The exercise report: response times and decision-making, as charts and as tables."""
    run = _run_for(request, run_id)
    metrics = exercise_metrics(run=run, user=_signed_in(request))
    charts = []
    for number, activation in enumerate(metrics.activations, start=1):
        charts.append(
            _bar_chart(
                f"Activation {number}: seconds to each agency's first acknowledgement",
                [(r.agency, r.seconds_to_acknowledge) for r in activation.agencies],
                "s",
                f"chart-activation-{activation.activation}",
            )
        )
    charts.append(
        _bar_chart(
            "Decisions that filled each Joint Decision Model section",
            [(s.label, s.filled) for s in metrics.sections],
            "decisions",
            "chart-jdm",
        )
    )
    with timezone.override(run.incident.city.zone):
        return render(
            request,
            "comms/exercises_report.html",
            {"run": run, "incident": run.incident, "metrics": metrics, "charts": charts},
        )


@login_required
@require_GET
def exercise_report_export(request: HttpRequest, run_id: int, fmt: str) -> HttpResponse:
    """The report's figures as CSV (one row per figure) or JSON (as the API gives them)."""
    if fmt not in ("csv", "json"):
        raise Http404("The report exports as .csv or .json.")
    run = _run_for(request, run_id)
    metrics = exercise_metrics(run=run, user=_signed_in(request))
    name = f"exercise-{run.incident.reference}-report.{fmt}"
    response: HttpResponse
    if fmt == "json":
        response = JsonResponse(metrics.as_dict())
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        csv.writer(response).writerows(metrics_csv_rows(metrics))
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
