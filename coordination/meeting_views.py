"""Pages of the meetings of an incident's strategic cell: the list, one meeting with its agenda,
attendees, minutes and the decisions and actions taken in it, and the forms.

Reads go through ``visible_to``; writes through ``coordination.meetings``. Times show in the
incident's city time zone. Every form works without JavaScript.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Case, Prefetch, QuerySet, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ctpn.errors import Conflict
from incidents.forms import form_errors_from, recipients_add
from incidents.models import Incident
from incidents.views import (
    RECIPIENTS_PREFETCH,
    abilities,
    incident_for,
    markings_shown,
    signed_in,
    writer_incident,
)

from .meeting_forms import (
    AttendanceForm,
    MeetingForm,
    MeetingTransitionForm,
    MinutesForm,
    agenda_text,
)
from .meetings import (
    meeting_attendance_record,
    meeting_schedule,
    meeting_transition,
    meeting_update,
)
from .models import Action, Decision, DecisionPosition, Meeting, MeetingStatus, User
from .roles import Capability


def incident_meetings(request: HttpRequest, incident: Incident) -> QuerySet[Meeting]:
    return (
        Meeting.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("chair")
        .prefetch_related("agenda_items", *RECIPIENTS_PREFETCH)
        .order_by("scheduled_at", "pk")
    )


def meeting_people(incident: Incident, user: Any) -> QuerySet[User]:
    """Who may chair or attend: active people of the agencies taking part."""
    return (
        User.objects.visible_to(user)
        .filter(agency__in=incident.participating_agencies.values("pk"), is_active=True)
        .select_related("agency")
        .order_by("agency__short_name", "last_name", "username")
    )


def _meeting_for(request: HttpRequest, incident: Incident, meeting_id: int) -> Meeting:
    return get_object_or_404(
        incident_meetings(request, incident).prefetch_related(
            "attendees__person", "attendees__agency"
        ),
        pk=meeting_id,
    )


def _run(
    request: HttpRequest,
    form: Any,
    call: Callable[[], Any],
    *,
    render_again: Callable[[int], HttpResponse],
    success: Callable[[Any], tuple[str, str]],
) -> HttpResponse:
    """Run a service for a valid form: redirect on success (post/redirect/get), else show the
    refusal next to the fields (400), or the reason a closed meeting refuses it (409)."""
    status = 400
    if form.is_valid():
        try:
            result = call()
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            form_errors_from(form, errors, {})
        except Conflict as exc:
            form.add_error(None, exc.message)
            status = 409
        except (Meeting.DoesNotExist, Incident.DoesNotExist) as exc:
            raise Http404 from exc
        else:
            text, url = success(result)
            messages.success(request, text)
            return redirect(url)
    return render_again(status)


@login_required
@require_GET
def meeting_list(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = incident_for(request, incident_id)
    with timezone.override(incident.city.zone):
        meetings = list(incident_meetings(request, incident))
        markings_shown(request, meetings)
        return render(
            request,
            "coordination/meetings.html",
            {"incident": incident, "meetings": meetings, "can": abilities(request.user, incident)},
        )


@login_required
@require_http_methods(["GET", "POST"])
def meeting_new(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    people = meeting_people(incident, request.user)
    template = "coordination/meeting_form.html"
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            form = recipients_add(MeetingForm(people=people), incident, request.user)
            return render(request, template, {"incident": incident, "form": form})
        form = recipients_add(MeetingForm(request.POST, people=people), incident, request.user)
        return _run(
            request,
            form,
            lambda: meeting_schedule(
                incident_id=incident.pk, user=signed_in(request), **form.service_arguments()
            ),
            render_again=lambda status: render(
                request, template, {"incident": incident, "form": form}, status=status
            ),
            success=lambda meeting: (
                f"Meeting “{meeting}” scheduled.",
                reverse("pages:incident-meeting", args=[incident.pk, meeting.pk]),
            ),
        )


@login_required
@require_http_methods(["GET", "POST"])
def meeting_edit(request: HttpRequest, incident_id: int, meeting_id: int) -> HttpResponse:
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    meeting = _meeting_for(request, incident, meeting_id)
    people = meeting_people(incident, request.user)
    template = "coordination/meeting_form.html"
    context: dict[str, Any] = {"incident": incident, "meeting": meeting}
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            initial = {
                "title": meeting.title,
                "scheduled_at": meeting.scheduled_at,
                "location": meeting.location,
                "virtual_link": meeting.virtual_link,
                "chair": meeting.chair_id,
                "attendees": [row.person_id for row in meeting.attendees.all()],
                "agenda": agenda_text(list(meeting.agenda_items.all())),
            }
            form = MeetingForm(initial=initial, people=people, with_marking=False)
            status = 409 if meeting.is_closed else 200
            return render(request, template, {**context, "form": form}, status=status)
        form = MeetingForm(request.POST, people=people, with_marking=False)
        kept = {row.person_id: row.attendance for row in meeting.attendees.all()}

        def update() -> Meeting:
            data = form.service_arguments()
            # People already invited keep the attendance recorded for them.
            data["attendees"] = [(p, kept.get(p.pk, "expected")) for p in data["attendees"]]
            return meeting_update(meeting_id=meeting.pk, user=signed_in(request), **data)

        return _run(
            request,
            form,
            update,
            render_again=lambda status: render(
                request, template, {**context, "form": form}, status=status
            ),
            success=lambda changed: (
                f"Meeting “{changed}” updated.",
                reverse("pages:incident-meeting", args=[incident.pk, changed.pk]),
            ),
        )


def _detail_context(request: HttpRequest, incident: Incident, meeting: Meeting) -> dict[str, Any]:
    can = abilities(request.user, incident)
    decisions = list(
        Decision.objects.visible_to(request.user)
        .filter(incident=incident, meeting=meeting)
        .select_related("author", "author_agency", "superseded_by")
        .prefetch_related(
            Prefetch("positions", queryset=DecisionPosition.objects.select_related("agency")),
            *RECIPIENTS_PREFETCH,
            "marking_changes__recipient_agencies",
            "marking_changes__recipient_people__agency",
        )
        .order_by("sequence")
    )
    actions = list(
        Action.objects.visible_to(request.user)
        .filter(incident=incident, meeting=meeting)
        .select_related("owner_agency", "owner")
        .prefetch_related(*RECIPIENTS_PREFETCH)
        .order_by("due_at", "pk")
    )
    markings_shown(request, [meeting, *decisions, *actions])
    writable = can.write and not meeting.is_closed
    return {
        "incident": incident,
        "meeting": meeting,
        "can": can,
        "writable": writable,
        "decisions": decisions,
        "actions": actions,
        "minutes_form": MinutesForm(meeting=meeting) if writable else None,
        "attendance_form": (
            AttendanceForm(attendees=list(meeting.attendees.all()))
            if writable and meeting.attendees.all()
            else None
        ),
    }


@login_required
@require_GET
def meeting_detail(request: HttpRequest, incident_id: int, meeting_id: int) -> HttpResponse:
    incident = incident_for(request, incident_id)
    meeting = _meeting_for(request, incident, meeting_id)
    with timezone.override(incident.city.zone):
        return render(
            request, "coordination/meeting.html", _detail_context(request, incident, meeting)
        )


def _detail_again(
    request: HttpRequest, incident: Incident, meeting: Meeting, **forms: Any
) -> Callable[[int], HttpResponse]:
    def again(status: int) -> HttpResponse:
        context = _detail_context(request, incident, meeting)
        context.update(forms)
        return render(request, "coordination/meeting.html", context, status=status)

    return again


@login_required
@require_POST
def meeting_minutes(request: HttpRequest, incident_id: int, meeting_id: int) -> HttpResponse:
    """Save the minutes (409 once the meeting is closed: they are then the record)."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    meeting = _meeting_for(request, incident, meeting_id)
    with timezone.override(incident.city.zone):
        form = MinutesForm(request.POST, meeting=meeting)
        return _run(
            request,
            form,
            lambda: meeting_update(
                meeting_id=meeting.pk, user=signed_in(request), **form.service_arguments()
            ),
            render_again=_detail_again(request, incident, meeting, minutes_form=form),
            success=lambda changed: (
                "Minutes saved.",
                reverse("pages:incident-meeting", args=[incident.pk, changed.pk]),
            ),
        )


@login_required
@require_POST
def meeting_attendance(request: HttpRequest, incident_id: int, meeting_id: int) -> HttpResponse:
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    meeting = _meeting_for(request, incident, meeting_id)
    with timezone.override(incident.city.zone):
        form = AttendanceForm(request.POST, attendees=list(meeting.attendees.all()))
        return _run(
            request,
            form,
            lambda: meeting_attendance_record(
                meeting_id=meeting.pk, user=signed_in(request), attendance=form.attendance()
            ),
            render_again=_detail_again(request, incident, meeting, attendance_form=form),
            success=lambda changed: (
                "Attendance recorded.",
                reverse("pages:incident-meeting", args=[incident.pk, changed.pk]),
            ),
        )


@login_required
@require_POST
def meeting_transition_view(
    request: HttpRequest, incident_id: int, meeting_id: int
) -> HttpResponse:
    """Start or close the meeting. A refused move answers 409 and says why."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    meeting = _meeting_for(request, incident, meeting_id)
    with timezone.override(incident.city.zone):
        form = MeetingTransitionForm(request.POST)
        return _run(
            request,
            form,
            lambda: meeting_transition(
                meeting_id=meeting.pk, user=signed_in(request), to=form.cleaned_data["to"]
            ),
            render_again=_detail_again(request, incident, meeting, transition_form=form),
            success=lambda moved: (
                f"Meeting “{moved}” is now {moved.get_status_display().lower()}.",
                reverse("pages:incident-meeting", args=[incident.pk, moved.pk]),
            ),
        )


def meetings_panel(request: HttpRequest, incident: Incident) -> dict[str, Any]:
    """The dashboard's meetings panel: the next meeting not yet closed, with its agenda.

    One query (and its prefetches when there is a meeting): the dashboard's cost stays flat.
    """
    in_progress_first = Case(When(status=MeetingStatus.IN_PROGRESS, then=0), default=1)
    next_meeting = (
        incident_meetings(request, incident)
        .exclude(status=MeetingStatus.CLOSED)
        .order_by(in_progress_first, "scheduled_at", "pk")
        .first()
    )
    if next_meeting is not None:
        markings_shown(request, [next_meeting])
    return {"next_meeting": next_meeting}
