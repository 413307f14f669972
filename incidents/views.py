"""Server-rendered pages: the incident list, the incident dashboard and its panels, the wall
screen, and the forms a liaison officer or loggist uses.

Every read goes through ``visible_to(user)``; every write through a service. Forms only parse.
A page shows times in the incident's city time zone: each view renders inside
``timezone.override(city zone)``, which also makes typed local times mean the city's.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from coordination.forms import ActionForm, ActionStatusForm, DecisionForm, PositionForm
from coordination.models import (
    LESSON_OPEN_STATUSES,
    Action,
    Decision,
    DecisionPosition,
    Lesson,
    User,
)
from coordination.roles import Capability, user_can
from coordination.services import (
    action_create,
    action_update,
    decision_position_record,
    decision_record,
)
from ctpn.errors import Conflict

from .api import restricted_read_audit
from .forms import (
    IncidentFilterForm,
    MethaneForm,
    TimelineForm,
    TransitionForm,
    form_errors_from,
    recipients_add,
)
from .models import Incident, IncidentEvent, MethaneReport, TimelineEntry
from .services import incident_transition, methane_submit, timeline_add

# --- the incident list --------------------------------------------------------------------------


@login_required
@require_GET
def incident_list(request: HttpRequest) -> HttpResponse:
    """The incidents the user may see, newest change first, filtered. Real incidents unless the
    user asks for exercises: the two never share one list."""
    form = IncidentFilterForm(request.GET or None)
    incidents = (
        Incident.objects.visible_to(request.user)
        .select_related("city", "lead_agency")
        .order_by("-updated_at", "-pk")
    )
    # The valid filters apply even when another one is not (it is shown with its error): a bad
    # level must not drop "exercises" and mix real incidents into an exercise list.
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        filters = form.cleaned_data
    show_exercises = filters.get("show") == IncidentFilterForm.SHOW_EXERCISES
    incidents = incidents.filter(is_exercise=show_exercises)
    if filters.get("status"):
        incidents = incidents.filter(status=filters["status"])
    if filters.get("level"):
        incidents = incidents.filter(level=filters["level"])
    if filters.get("type"):
        incidents = incidents.filter(type=filters["type"])
    if filters.get("q"):
        text = filters["q"].strip()
        incidents = incidents.filter(
            Q(reference__icontains=text)
            | Q(title__icontains=text)
            | Q(location_description__icontains=text)
        )
    page = Paginator(incidents, settings.INCIDENT_LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "incidents/list.html",
        {
            "form": form,
            "page": page,
            "incidents": page.object_list,
            "show_exercises": show_exercises,
            "query": query.urlencode(),
            "filtered": any(v for k, v in filters.items() if k != "show"),
        },
    )


# The landing page after sign-in is the incident list.
home = incident_list


# --- the dashboard ------------------------------------------------------------------------------


def incident_for(request: HttpRequest, incident_id: int) -> Incident:
    """The incident if the user may see it; 404 otherwise (invisible and missing look alike)."""
    return get_object_or_404(
        Incident.objects.visible_to(request.user)
        .select_related("city", "lead_agency", "neutral_commander")
        .prefetch_related("participating_agencies"),
        pk=incident_id,
    )


@dataclass(frozen=True)
class Abilities:
    """What the signed-in user may do on this incident, for showing only the usable controls.

    The services check again on every write; this only avoids offering what would be refused.
    """

    participates: bool
    write: bool
    transition: bool


def abilities(user: Any, incident: Incident) -> Abilities:
    participates = user.is_superuser or any(
        agency.pk == user.agency_id for agency in incident.participating_agencies.all()
    )
    open_ = incident.status != "closed"
    return Abilities(
        participates=participates,
        write=participates and open_ and user_can(user, Capability.LOG_WRITE),
        transition=participates
        and bool(incident.allowed_transitions)
        and user_can(user, Capability.INCIDENT_TRANSITION),
    )


METHANE_FIELDS = [
    ("M", "Major incident declared", "major_incident_declared"),
    ("E", "Exact location", "exact_location"),
    ("T", "Type of incident", "incident_type"),
    ("H", "Hazards", "hazards"),
    ("A", "Access", "access"),
    ("N", "Fatalities", "casualties_fatal"),
    ("N", "Immediate (P1)", "casualties_p1"),
    ("N", "Urgent (P2)", "casualties_p2"),
    ("N", "Delayed (P3)", "casualties_p3"),
    ("N", "Casualties in words", "casualties_notes"),
    ("E", "Emergency services present", "emergency_services_present"),
    ("E", "Emergency services required", "emergency_services_required"),
]


RECIPIENTS_PREFETCH = ("recipient_agencies", "recipient_people__agency")


def markings_shown(request: HttpRequest, items: Any) -> None:
    """Give each item the marking in force and the names of its recipients to show, and record
    in the audit log that the user was shown each RED or AMBER+STRICT one.

    Only items the user may read get here, so whoever sees the names may see them.
    """
    for item in items:
        source = item
        if isinstance(item, Decision) and item.marking_changes.all():
            # An append-only decision's marking in force is that of its latest change.
            source = max(item.marking_changes.all(), key=lambda change: change.pk)
        item.marking_shown = source.marking
        item.recipients_shown = [a.short_name for a in source.recipient_agencies.all()] + [
            f"{p} ({p.agency.short_name})" if p.agency else str(p)
            for p in source.recipient_people.all()
        ]
    restricted_read_audit(request, items)


def _header(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    return {"transition_form": TransitionForm() if can.transition else None}


def _methane(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    reports = list(
        MethaneReport.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("submitted_by", "submitted_agency")
        .prefetch_related(*RECIPIENTS_PREFETCH)
        .order_by("-version")[:2]
    )
    markings_shown(request, reports)
    latest = reports[0] if reports else None
    previous = reports[1] if len(reports) > 1 else None
    rows = []
    if latest is not None:
        for letter, label, name in METHANE_FIELDS:
            value = getattr(latest, name)
            changed = previous is not None and getattr(previous, name) != value
            before = getattr(previous, name) if changed else None
            rows.append(
                {
                    "letter": letter,
                    "label": label,
                    "value": value,
                    "changed": changed,
                    "before": before,
                    "name": name,
                }
            )
    return {"methane": latest, "methane_previous": previous, "methane_rows": rows}


def _decisions(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    decisions = list(
        Decision.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("author", "author_agency", "superseded_by", "supersedes")
        .prefetch_related(
            Prefetch(
                "positions",
                queryset=DecisionPosition.objects.select_related("agency", "recorded_by"),
            ),
            *RECIPIENTS_PREFETCH,
            "marking_changes__recipient_agencies",
            "marking_changes__recipient_people__agency",
        )
        .order_by("-sequence")
    )
    markings_shown(request, decisions)
    agency_id = request.user.agency_id  # type: ignore[union-attr]
    for entry in decisions:
        correction = getattr(entry, "superseded_by", None)
        entry.correction = correction
        entry.agreeing = [p for p in entry.positions.all() if p.stance == "agree"]
        entry.dissenting = [p for p in entry.positions.all() if p.stance == "dissent"]
        entry.can_take_position = (
            can.write
            and agency_id is not None  # a platform superuser speaks for no agency
            and correction is None
            and not any(p.agency_id == agency_id for p in entry.positions.all())
        )
    return {"decisions": decisions}


@dataclass
class AgencyActions:
    agency: Any
    actions: list[Action]


def _actions(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    now = timezone.now()
    actions = (
        Action.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("owner_agency", "owner")
        .prefetch_related(*RECIPIENTS_PREFETCH)
        .order_by("owner_agency__short_name", "due_at", "pk")
    )
    markings_shown(request, actions)
    groups: dict[int, AgencyActions] = {}
    overdue = 0
    for action in actions:
        action.overdue = action.is_overdue(now)
        overdue += action.overdue
        groups.setdefault(
            action.owner_agency_id, AgencyActions(action.owner_agency, [])
        ).actions.append(action)
    return {
        "action_groups": list(groups.values()),
        "overdue_count": overdue,
        "status_form": ActionStatusForm() if can.write else None,
    }


TIMELINE_SHOWN = 100


def _timeline(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    entries = list(
        TimelineEntry.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("author", "author_agency")
        .prefetch_related(*RECIPIENTS_PREFETCH)
        .order_by("-occurred_at", "-pk")[:TIMELINE_SHOWN]
    )
    markings_shown(request, entries)
    return {"timeline": entries, "timeline_limit": TIMELINE_SHOWN}


def _agencies(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    return {"agencies": sorted(incident.participating_agencies.all(), key=lambda a: a.short_name)}


def _lessons(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    """The incident's open lessons the reader may see, soonest due first."""
    lessons = list(
        Lesson.objects.visible_to(request.user)
        .filter(incident=incident, status__in=LESSON_OPEN_STATUSES)
        .select_related("owner_agency")
        .prefetch_related("recipient_agencies", "recipient_people__agency")
        .order_by(F("due_date").asc(nulls_last=True), "pk")
    )
    markings_shown(request, lessons)
    today = timezone.now().astimezone(incident.city.zone).date()
    for lesson in lessons:
        lesson.overdue = lesson.is_overdue(today)
    return {
        "lessons": lessons,
        "lessons_overdue": sum(lesson.overdue for lesson in lessons),
    }


def _meetings(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    from coordination.meeting_views import meetings_panel  # the meetings pages import this module

    return meetings_panel(request, incident)


INJECTS_SHOWN = 50


def _injects(request: HttpRequest, incident: Incident, can: Abilities) -> dict[str, Any]:
    """An exercise's injects as the players received them: the ``exercise.inject`` events
    (released by the exercise director's scenario), newest first."""
    if not incident.is_exercise:
        return {"injects": []}
    events = (
        IncidentEvent.objects.visible_to(request.user)
        .filter(incident=incident, kind="exercise.inject")
        .order_by("-seq")[:INJECTS_SHOWN]
    )
    return {"injects": list(events)}


PANELS: dict[str, Callable[[HttpRequest, Incident, Abilities], dict[str, Any]]] = {
    "header": _header,
    "methane": _methane,
    "decisions": _decisions,
    "actions": _actions,
    "timeline": _timeline,
    "agencies": _agencies,
    "lessons": _lessons,
    "meetings": _meetings,
    "injects": _injects,
}


def panels_context(
    request: HttpRequest, incident: Incident, names: list[str], *, wall: bool = False
) -> dict[str, Any]:
    can = abilities(request.user, incident)
    if wall:  # the wall screen is read-only, whoever is signed in on it
        can = Abilities(participates=can.participates, write=False, transition=False)
    context: dict[str, Any] = {
        "incident": incident,
        "can": can,
        "wall": wall,
        "now": timezone.now(),
        "panel_query": "?wall=1" if wall else "",
    }
    for name in names:
        context.update(PANELS[name](request, incident, can))
    return context


def live_context(incident: Incident) -> dict[str, Any]:
    """What the live client needs, rendered into data- attributes (no inline script)."""
    return {
        "live_ws_path": f"/ws/incidents/{incident.pk}/",
        "live_events_url": reverse("incident-event-list", kwargs={"incident_pk": incident.pk}),
        # Read now, with the page's data: events up to this number are already on the page.
        "live_last_seq": incident.last_event_seq,
    }


@login_required
@require_GET
def incident_dashboard(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = incident_for(request, incident_id)
    with timezone.override(incident.city.zone):
        context = panels_context(request, incident, list(PANELS))
        context.update(live_context(incident))
        context["map_tile_url"] = settings.MAP_TILE_URL
        context["map_tile_attribution"] = settings.MAP_TILE_ATTRIBUTION
        return render(request, "incidents/dashboard.html", context)


WALL_PANELS = ["header", "methane", "decisions", "actions", "timeline"]


@login_required
@require_GET
def incident_wall(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Large type for the strategic cell's wall screen: read-only, no navigation, live."""
    incident = incident_for(request, incident_id)
    with timezone.override(incident.city.zone):
        context = panels_context(request, incident, WALL_PANELS, wall=True)
        context.update(live_context(incident))
        return render(request, "incidents/wall.html", context)


@require_GET
def incident_panel(request: HttpRequest, incident_id: int, name: str) -> HttpResponse:
    """One panel of the dashboard (or of the wall screen with ``?wall=1``), for htmx to swap.

    Without a session it answers 401 rather than redirecting: htmx would follow the redirect and
    put the sign-in page inside the panel, where 4xx answers are not swapped in at all.
    """
    if not request.user.is_authenticated:
        return HttpResponse("Sign in again to see this incident.", status=401)
    if name not in PANELS:
        raise Http404("No such panel.")
    incident = incident_for(request, incident_id)
    wall = request.GET.get("wall") == "1"
    with timezone.override(incident.city.zone):
        context = panels_context(request, incident, [name], wall=wall)
        return render(request, f"incidents/panels/{name}.html", context)


# --- forms ---------------------------------------------------------------------------------------


def signed_in(request: HttpRequest) -> User:
    """The signed-in user (every form view requires a login)."""
    assert isinstance(request.user, User)
    return request.user


def writer_incident(request: HttpRequest, incident_id: int, capability: str) -> Incident:
    """The incident, if the user may see it (else 404) and write to it (else 403, saying why)."""
    incident = incident_for(request, incident_id)
    can = abilities(request.user, incident)
    if not user_can(request.user, capability):
        raise PermissionDenied(f"Your roles do not allow this ({capability}).")
    if not can.participates:
        raise PermissionDenied(
            f"Your agency does not take part in {incident.reference}; it can read but not write."
        )
    return incident


def submit(
    request: HttpRequest,
    incident: Incident,
    form: Any,
    call: Callable[[], Any],
    *,
    template: str,
    context: dict[str, Any],
    success: Callable[[Any], str],
    aliases: dict[str, str] | None = None,
) -> HttpResponse:
    """Run a service for a valid form; show its refusals next to the fields they concern.

    Success redirects to the dashboard (post/redirect/get). A field error answers 400, a refusal
    by the incident's state 409 (with the reason), a missing capability 403.
    """
    status = 400
    if form.is_valid():
        try:
            result = call()
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            form_errors_from(form, errors, aliases or {})
        except Conflict as exc:
            form.add_error(None, exc.message)
            status = 409
        except (Decision.DoesNotExist, Action.DoesNotExist, Incident.DoesNotExist) as exc:
            raise Http404 from exc
        else:
            messages.success(request, success(result))
            return redirect("pages:incident-dashboard", incident_id=incident.pk)
    return render(request, template, {**context, "incident": incident, "form": form}, status=status)


def form_page(
    request: HttpRequest, incident: Incident, form: Any, template: str, **context: Any
) -> HttpResponse:
    return render(request, template, {**context, "incident": incident, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def decision_create(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Record a joint decision, step by step in the order of the Joint Decision Model."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    template = "incidents/forms/decision.html"
    who = (incident, request.user)
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            form = meeting_offer(recipients_add(DecisionForm(), *who), request, incident)
            return form_page(request, incident, form, template)
        form = meeting_offer(recipients_add(DecisionForm(request.POST), *who), request, incident)
        return submit(
            request,
            incident,
            form,
            lambda: decision_record(
                incident_id=incident.pk, author=signed_in(request), **form.service_arguments()
            ),
            template=template,
            context={},
            success=lambda entry: f"Decision {entry} recorded.",
            aliases=DecisionForm.SERVICE_FIELD_ALIASES,
        )


@login_required
@require_http_methods(["GET", "POST"])
def decision_position(request: HttpRequest, incident_id: int, decision_id: int) -> HttpResponse:
    """Agree with, or dissent from, a decision on behalf of the user's agency (once)."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    entry = get_object_or_404(
        Decision.objects.visible_to(request.user)
        .filter(incident=incident)
        .select_related("author_agency", "superseded_by")
        .prefetch_related("positions__agency"),
        pk=decision_id,
    )
    template = "incidents/forms/position.html"
    agency_id = signed_in(request).agency_id
    context = {
        "decision": entry,
        "own_position": next((p for p in entry.positions.all() if p.agency_id == agency_id), None),
        "correction": getattr(entry, "superseded_by", None),
    }
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            return form_page(request, incident, PositionForm(), template, **context)
        form = PositionForm(request.POST)
        return submit(
            request,
            incident,
            form,
            lambda: decision_position_record(
                decision=entry,
                user=signed_in(request),
                position=form.cleaned_data["position"],
                reason=form.cleaned_data["reason"],
            ),
            template=template,
            context=context,
            success=lambda position: f"Your agency's position on {entry} is recorded.",
        )


@login_required
@require_http_methods(["GET", "POST"])
def methane_create(request: HttpRequest, incident_id: int) -> HttpResponse:
    """A new M/ETHANE report, prefilled from the latest so only what changed needs typing."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    template = "incidents/forms/methane.html"
    who = (incident, request.user)
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            latest = (
                MethaneReport.objects.visible_to(request.user)
                .filter(incident=incident)
                .order_by("-version")
                .first()
            )
            initial = (
                {name: getattr(latest, name) for name in MethaneForm.base_fields}
                if latest
                else {
                    "latitude": incident.latitude,
                    "longitude": incident.longitude,
                    "exact_location": incident.location_description,
                }
            )
            return form_page(
                request,
                incident,
                recipients_add(MethaneForm(initial=initial), *who),
                template,
                latest=latest,
            )
        form = recipients_add(MethaneForm(request.POST), *who)
        return submit(
            request,
            incident,
            form,
            lambda: methane_submit(
                incident_id=incident.pk, user=signed_in(request), **form.cleaned_data
            ),
            template=template,
            context={},
            success=lambda report: f"M/ETHANE version {report.version} submitted.",
        )


def participating_agencies(incident: Incident, user: Any) -> QuerySet:
    from coordination.models import Agency

    return (
        Agency.objects.visible_to(user)
        .filter(pk__in=incident.participating_agencies.values("pk"))
        .order_by("short_name")
    )


@login_required
@require_http_methods(["GET", "POST"])
def action_new(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    template = "incidents/forms/action.html"
    who = (incident, request.user)
    agencies = participating_agencies(incident, request.user)
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            initial = {"owner_agency": request.user.agency_id}  # type: ignore[union-attr]
            form = recipients_add(ActionForm(agencies=agencies, initial=initial), *who)
            return form_page(request, incident, meeting_offer(form, request, incident), template)
        form = recipients_add(ActionForm(request.POST, agencies=agencies), *who)
        form = meeting_offer(form, request, incident)
        return submit(
            request,
            incident,
            form,
            lambda: action_create(
                incident_id=incident.pk, user=signed_in(request), **form.cleaned_data
            ),
            template=template,
            context={},
            success=lambda added: f"Action “{added}” added.",
        )


@login_required
@require_POST
def action_status(request: HttpRequest, incident_id: int, action_id: int) -> HttpResponse:
    """Change an action's status from the dashboard's actions panel."""
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    action = get_object_or_404(
        Action.objects.visible_to(request.user).filter(incident=incident), pk=action_id
    )
    with timezone.override(incident.city.zone):
        form = ActionStatusForm(request.POST)
        return submit(
            request,
            incident,
            form,
            lambda: action_update(
                action_id=action.pk, user=signed_in(request), status=form.cleaned_data["status"]
            ),
            template="incidents/forms/action_status.html",
            context={"action": action},
            success=lambda changed: f"Action “{changed}” is now {changed.get_status_display()}.",
        )


@login_required
@require_http_methods(["GET", "POST"])
def timeline_new(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = writer_incident(request, incident_id, Capability.LOG_WRITE)
    template = "incidents/forms/timeline.html"
    who = (incident, request.user)
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            return form_page(request, incident, recipients_add(TimelineForm(), *who), template)
        form = recipients_add(TimelineForm(request.POST), *who)
        return submit(
            request,
            incident,
            form,
            lambda: timeline_add(
                incident_id=incident.pk, user=signed_in(request), **form.cleaned_data
            ),
            template=template,
            context={},
            success=lambda entry: "Timeline entry added.",
        )


@login_required
@require_http_methods(["GET", "POST"])
def incident_transition_view(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Move the incident along its lifecycle. A refused move answers 409 and says why."""
    incident = writer_incident(request, incident_id, Capability.INCIDENT_TRANSITION)
    template = "incidents/forms/transition.html"
    with timezone.override(incident.city.zone):
        if request.method == "GET":
            return form_page(request, incident, TransitionForm(), template)
        form = TransitionForm(request.POST)
        return submit(
            request,
            incident,
            form,
            lambda: incident_transition(
                incident_id=incident.pk, user=signed_in(request), to=form.cleaned_data["to"]
            ),
            template=template,
            context={},
            success=lambda moved: f"{moved.reference} is now {moved.get_status_display()}.",
        )


def meeting_offer(form: Any, request: HttpRequest, incident: Incident) -> Any:
    """Offer the incident's meetings on a decision or action form, preselecting ``?meeting=``."""
    from coordination.meeting_forms import meeting_choice_add
    from coordination.models import Meeting

    meetings = (
        Meeting.objects.visible_to(request.user).filter(incident=incident).order_by("scheduled_at")
    )
    wanted = request.GET.get("meeting", "")
    initial = int(wanted) if wanted.isdigit() else None
    return meeting_choice_add(form, meetings, initial)
