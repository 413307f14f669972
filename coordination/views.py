"""Pages of the coordination app: the audit log for administrators, its CSV export, and the page
answering a refused request (which the audit log records).

The audit log is read through ``AuditEntry.objects.visible_to``: a city's administrators see
their city's entries, platform superusers all. Times are shown in the viewer's city time zone;
the export carries UTC.
"""

import csv
import datetime as dt
import json
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from .audit import audit_record
from .forms import AuditFilterForm
from .models import AuditEntry
from .roles import Capability, user_can

EXPORT_CHUNK = 1000

EXPORT_COLUMNS = [
    "sequence",
    "at_utc",
    "action",
    "username",
    "user_id",
    "agency",
    "city",
    "ip_address",
    "user_agent",
    "target_type",
    "target_id",
    "target_label",
    "detail",
    "prev_hash",
    "entry_hash",
]


def _viewer_zone(user) -> zoneinfo.ZoneInfo:
    if getattr(user, "agency_id", None):
        return user.agency.city.zone
    return zoneinfo.ZoneInfo("UTC")


def _audit_viewer_only(request: HttpRequest) -> None:
    if not user_can(request.user, Capability.AUDIT_VIEW):
        raise PermissionDenied("Only administrators see the audit log.")


def _filtered(
    request: HttpRequest, zone: zoneinfo.ZoneInfo
) -> tuple[AuditFilterForm, QuerySet[AuditEntry], dict[str, Any]]:
    """The visible entries under the valid filters (an invalid one is shown with its error)."""
    form = AuditFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        filters = {key: value for key, value in form.cleaned_data.items() if value}
    entries = AuditEntry.objects.visible_to(request.user).select_related("agency", "city")
    if filters.get("action"):
        entries = entries.filter(action__startswith=filters["action"].strip())
    if filters.get("user"):
        entries = entries.filter(username__iexact=filters["user"].strip())
    if filters.get("date_from"):
        start = dt.datetime.combine(filters["date_from"], dt.time.min, tzinfo=zone)
        entries = entries.filter(at__gte=start)
    if filters.get("date_to"):
        end = dt.datetime.combine(filters["date_to"] + dt.timedelta(days=1), dt.time.min, zone)
        entries = entries.filter(at__lt=end)
    return form, entries.order_by("-sequence"), filters


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit log, newest first, filtered by action, person and dates, one page at a time."""
    _audit_viewer_only(request)
    zone = _viewer_zone(request.user)
    form, entries, filters = _filtered(request, zone)
    page = Paginator(entries, settings.AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    with timezone.override(zone):
        return render(
            request,
            "coordination/audit_log.html",
            {
                "form": form,
                "page": page,
                "entries": page.object_list,
                "query": query.urlencode(),
                "filtered": bool(filters),
                "zone": zone,
            },
        )


@login_required
@require_GET
def audit_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered audit log as CSV, streamed in chunks. The export is itself audited."""
    _audit_viewer_only(request)
    zone = _viewer_zone(request.user)
    form, entries, filters = _filtered(request, zone)
    if form.is_bound and not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    audit_record(
        action="export",
        request=request,
        detail={"what": "audit_log", "filters": filters, "format": "csv"},
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(
        _csv_async(entries) if isinstance(request, ASGIRequest) else _csv_sync(entries),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


class _Line:
    """A file-like object that hands back what the CSV writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def _chunk(entries: QuerySet[AuditEntry], before: int | None) -> list[AuditEntry]:
    """Keyset pages by sequence: no cursor stays open while the client downloads."""
    if before is not None:
        entries = entries.filter(sequence__lt=before)
    return list(entries[:EXPORT_CHUNK])


def _csv_sync(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_COLUMNS)
    before: int | None = None
    while chunk := _chunk(entries, before):
        for entry in chunk:
            yield writer.writerow(_csv_row(entry))
        before = chunk[-1].sequence


async def _csv_async(entries: QuerySet[AuditEntry]) -> AsyncIterator[str]:
    # Under ASGI a synchronous iterator would be read whole into memory before sending.
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_COLUMNS)
    before: int | None = None
    while chunk := await sync_to_async(_chunk)(entries, before):
        for entry in chunk:
            yield writer.writerow(_csv_row(entry))
        before = chunk[-1].sequence


def _cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (names and user agents are anyone's text)."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _csv_row(entry: AuditEntry) -> list[str]:
    return [
        str(entry.sequence),
        entry.at.astimezone(dt.UTC).isoformat(),
        _cell(entry.action),
        _cell(entry.username),
        "" if entry.user_id is None else str(entry.user_id),
        _cell(entry.agency.short_name if entry.agency else ""),
        _cell(entry.city.name if entry.city else ""),
        entry.ip_address or "",
        _cell(entry.user_agent),
        _cell(entry.target_type),
        _cell(entry.target_id),
        _cell(entry.target_label),
        _cell(json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)),
        entry.prev_hash,
        entry.entry_hash,
    ]


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 page (``handler403``); every refusal of a page goes to the audit log."""
    audit_record(
        action="access.denied",
        request=request,
        detail={
            "status": 403,
            "method": request.method or "",
            "path": request.path[:500],
            "reason": str(exception or "")[:200],
        },
    )
    return render(request, "403.html", {"exception": str(exception or "")}, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal page (``CSRF_FAILURE_VIEW``), recorded like any other refusal."""
    from django.views.csrf import csrf_failure as django_csrf_failure

    audit_record(
        action="access.denied",
        request=request,
        detail={
            "status": 403,
            "method": request.method or "",
            "path": request.path[:500],
            "reason": f"CSRF: {reason}"[:200],
        },
    )
    return django_csrf_failure(request, reason=reason)
