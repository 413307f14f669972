"""Pages (session) that hand out an incident's record for debrief and inquiry: the PDF document
and the CSV files. The API serves the same answers (``coordination.api``)."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents.models import Incident
from incidents.views import incident_for

from .exports import KINDS, export_csv, export_pdf


def _filename(incident: Incident, what: str, extension: str) -> str:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    prefix = "EXERCISE-" if incident.is_exercise else ""
    return f"{prefix}{incident.reference}-{what}-{stamp}.{extension}"


def pdf_response(incident: Incident, request) -> HttpResponse:
    pdf = export_pdf(incident=incident, reader=request.user, request=request)
    response = HttpResponse(pdf, content_type="application/pdf")
    name = _filename(incident, "record", "pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


def _for_server(lines: Iterator[str], request: Any) -> Iterator[str] | AsyncIterator[str]:
    """Under ASGI a synchronous iterator would be read whole before sending: hand it over as an
    asynchronous one. The rows are already read from the database, so no query runs in it."""
    if not isinstance(getattr(request, "_request", request), ASGIRequest):
        return lines

    async def stream() -> AsyncIterator[str]:
        for line in lines:
            yield line

    return stream()


def csv_response(incident: Incident, request, kind: str) -> StreamingHttpResponse:
    if kind not in KINDS:
        raise Http404("No such export.")
    lines = export_csv(incident=incident, reader=request.user, kind=kind, request=request)
    response = StreamingHttpResponse(
        _for_server(lines, request), content_type="text/csv; charset=utf-8"
    )
    name = _filename(incident, kind, "csv")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def incident_export_pdf(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The incident's record as a PDF document (404 for a non-participant)."""
    return pdf_response(incident_for(request, incident_id), request)


@login_required
@require_GET
def incident_export_csv(request: HttpRequest, incident_id: int, kind: str) -> StreamingHttpResponse:
    """One part of the incident's record as CSV (404 for a non-participant or an unknown part)."""
    return csv_response(incident_for(request, incident_id), request, kind)
