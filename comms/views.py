"""Server-rendered rota pages, and a rota's calendar feed.

Pages: who is on call now and next in every agency of the user's city, and one rota with its
coming stretches, shifts and cover (administrators add and remove them here). The calendar feed is
reached by calendar apps without a session, through the secret token in its URL.
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST, require_safe

from coordination.models import Agency, User
from coordination.roles import Capability, user_can

from .forms import OverrideForm, ShiftForm
from .ical import calendar_token, calendar_token_valid, rota_calendar
from .models import Rota, RotaOverride, Shift
from .rotas import on_call, on_call_overview, rota_timeline
from .services import (
    override_create,
    override_delete,
    rota_calendar_revoke,
    shift_create,
    shift_delete,
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
