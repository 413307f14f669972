"""Pages of joint debriefs and lessons: an incident's debriefs, a debrief with its observations,
the oversight committee's view of the city's lessons, and a lesson with its history.

Every read goes through ``visible_to``; every write through a service of ``coordination.lessons``,
whose refusals are shown next to the form (400 a field, 403 whose step it is, 409 the state).
Times are shown in the city's time zone.
"""

import zoneinfo
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ctpn.errors import Conflict
from incidents.api import restricted_read_audit
from incidents.models import Incident

from .api import lesson_counts, lessons_filtered, lessons_queryset
from .lessons import (
    city_today,
    debrief_close,
    debrief_create,
    lesson_assign,
    lesson_from_observation,
    lesson_transitions,
    observation_add,
)
from .lessons import lesson_transition as lesson_transition_service
from .models import (
    Agency,
    Debrief,
    DebriefStatus,
    Lesson,
    LessonStatus,
    Observation,
    ObservationCategory,
    User,
)
from .roles import Capability, user_can


def _zone(user: Any) -> zoneinfo.ZoneInfo:
    return user.agency.city.zone if getattr(user, "agency_id", None) else zoneinfo.ZoneInfo("UTC")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _run(request: HttpRequest, form: forms.Form, call: Callable[[], Any]) -> tuple[Any, int]:
    """Run a service for a valid form; put its refusals on the form. (result, HTTP status)."""
    if not form.is_valid():
        return None, 400
    try:
        return call(), 200
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        for name, messages_ in errors.items():
            form.add_error(name if name in form.fields else None, messages_)
        return None, 400
    except Conflict as exc:
        form.add_error(None, exc.message)
        return None, 409
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None, 403


# --- forms ------------------------------------------------------------------------------------


class DebriefForm(forms.Form):
    title = forms.CharField(max_length=200)
    held_at = forms.DateTimeField(
        label="Held at",
        help_text="In the city's time zone.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    facilitator = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    participants = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(), required=False, help_text="Their agencies are recorded too."
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        people = User.objects.visible_to(user).filter(is_active=True).select_related("agency")
        self.fields["facilitator"].queryset = people  # type: ignore[attr-defined]
        self.fields["participants"].queryset = people  # type: ignore[attr-defined]


class ObservationForm(forms.Form):
    category = forms.ChoiceField(choices=ObservationCategory.choices)
    text = forms.CharField(label="Observation", widget=forms.Textarea(attrs={"rows": 3}))


class TransitionForm(forms.Form):
    to = forms.ChoiceField(label="Move to", choices=LessonStatus.choices)
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when not accepting a lesson or sending an implemented one back.",
    )


class AssignForm(forms.Form):
    owner_agency = forms.ModelChoiceField(queryset=Agency.objects.none(), label="Owner agency")
    due_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Due date"
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner_agency"].queryset = Agency.objects.visible_to(user).filter(  # type: ignore[attr-defined]
            is_active=True
        )


class LessonFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Open (any)"), *LessonStatus.choices], required=False)
    owner_agency = forms.ModelChoiceField(
        queryset=Agency.objects.none(), required=False, label="Owner agency"
    )
    incident = forms.ModelChoiceField(queryset=Incident.objects.none(), required=False)
    overdue = forms.ChoiceField(
        choices=[("", "Any"), ("true", "Overdue only"), ("false", "Not overdue")], required=False
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner_agency"].queryset = Agency.objects.visible_to(user)  # type: ignore[attr-defined]
        self.fields["incident"].queryset = Incident.objects.visible_to(user)  # type: ignore[attr-defined]


# --- debriefs ---------------------------------------------------------------------------------


def _incident(request: HttpRequest, incident_id: int) -> Incident:
    return get_object_or_404(
        Incident.objects.visible_to(request.user).select_related("city"), pk=incident_id
    )


@login_required
@require_http_methods(["GET", "POST"])
def debrief_list(request: HttpRequest, incident_id: int) -> HttpResponse:
    """An incident's debriefs, and the form that records a new one."""
    incident = _incident(request, incident_id)
    user = _user(request)
    status = 200
    with timezone.override(incident.city.zone):
        form = DebriefForm(request.POST or None, user=user)
        if request.method == "POST":
            debrief, status = _run(
                request,
                form,
                lambda: debrief_create(
                    incident_id=incident.pk,
                    user=user,
                    title=form.cleaned_data["title"],
                    held_at=form.cleaned_data["held_at"],
                    facilitator=form.cleaned_data["facilitator"],
                    participants=list(form.cleaned_data["participants"]),
                ),
            )
            if debrief is not None:
                messages.success(request, f"Debrief “{debrief}” recorded.")
                return redirect("debrief", debrief_id=debrief.pk)
        debriefs = Debrief.objects.visible_to(user).filter(incident=incident)
        return render(
            request,
            "coordination/debriefs_list.html",
            {
                "incident": incident,
                "debriefs": debriefs.prefetch_related("agencies"),
                "form": form,
                "can_write": user_can(user, Capability.LESSON_WRITE),
            },
            status=status,
        )


def _debrief(request: HttpRequest, debrief_id: int) -> Debrief:
    return get_object_or_404(
        Debrief.objects.visible_to(request.user).select_related("incident__city", "facilitator"),
        pk=debrief_id,
    )


def _debrief_page(
    request: HttpRequest, debrief: Debrief, form: forms.Form | None = None, status: int = 200
) -> HttpResponse:
    observations = debrief.observations.select_related("agency", "author", "lesson")
    with timezone.override(debrief.incident.city.zone):
        return render(
            request,
            "coordination/debriefs_detail.html",
            {
                "incident": debrief.incident,
                "debrief": debrief,
                "observations": observations,
                "participants": debrief.participants.select_related("agency"),
                "agencies": debrief.agencies.all(),
                "form": form or ObservationForm(),
                "is_open": debrief.status == DebriefStatus.OPEN,
                "can_write": user_can(request.user, Capability.LESSON_WRITE),
            },
            status=status,
        )


@login_required
@require_GET
def debrief_detail(request: HttpRequest, debrief_id: int) -> HttpResponse:
    """A debrief: who took part, and its observations, each of which can become a lesson."""
    return _debrief_page(request, _debrief(request, debrief_id))


@login_required
@require_POST
def debrief_observation(request: HttpRequest, debrief_id: int) -> HttpResponse:
    debrief = _debrief(request, debrief_id)
    form = ObservationForm(request.POST)
    observation, status = _run(
        request,
        form,
        lambda: observation_add(
            debrief_id=debrief.pk,
            user=_user(request),
            category=form.cleaned_data["category"],
            text=form.cleaned_data["text"],
        ),
    )
    if observation is None:
        return _debrief_page(request, debrief, form, status)
    messages.success(request, "Observation recorded.")
    return redirect("debrief", debrief_id=debrief.pk)


@login_required
@require_POST
def debrief_close_view(request: HttpRequest, debrief_id: int) -> HttpResponse:
    debrief = _debrief(request, debrief_id)
    form = forms.Form(request.POST)
    closed, status = _run(
        request, form, lambda: debrief_close(debrief_id=debrief.pk, user=_user(request))
    )
    if closed is None:
        return _debrief_page(request, debrief, _with_errors(form), status)
    messages.success(request, "Debrief closed.")
    return redirect("debrief", debrief_id=debrief.pk)


def _with_errors(form: forms.Form) -> ObservationForm:
    """The observation form carrying a refusal of another form on the same page."""
    shown = ObservationForm()
    shown.cleaned_data = {}
    shown.full_clean()
    shown.add_error(None, list(form.non_field_errors()))
    return shown


@login_required
@require_POST
def observation_lesson(request: HttpRequest, observation_id: int) -> HttpResponse:
    """One click: the observation becomes a lesson identified; its page opens."""
    observation = get_object_or_404(
        Observation.objects.filter(debrief__in=Debrief.objects.visible_to(request.user)),
        pk=observation_id,
    )
    form = forms.Form(request.POST)
    lesson, status = _run(
        request,
        form,
        lambda: lesson_from_observation(observation_id=observation.pk, user=_user(request)),
    )
    if lesson is None:
        debrief = _debrief(request, observation.debrief_id)
        return _debrief_page(request, debrief, _with_errors(form), status)
    messages.success(request, f"Lesson {lesson.label} identified.")
    return redirect("lesson", lesson_id=lesson.pk)


# --- lessons ----------------------------------------------------------------------------------


@login_required
@require_GET
def lesson_list(request: HttpRequest) -> HttpResponse:
    """The oversight committee's view: the city's lessons the reader may see, overdue first."""
    user = _user(request)
    form = LessonFilterForm(request.GET or None, user=user)
    params = request.GET.copy()
    if form.is_bound and not form.is_valid():
        for name in form.errors:
            params.pop(name, None)
    lessons, _ = lessons_filtered(user, params)
    rows = list(lessons[:500])
    restricted_read_audit(request, rows)
    with timezone.override(_zone(user)):
        return render(
            request,
            "coordination/lessons_list.html",
            {
                "form": form,
                "lessons": rows,
                "counts": lesson_counts(lessons),
                "status_labels": dict(LessonStatus.choices),
                "can_oversee": user_can(user, Capability.LESSON_OVERSEE),
            },
        )


def _lesson(request: HttpRequest, lesson_id: int) -> Lesson:
    return get_object_or_404(lessons_queryset(request.user), pk=lesson_id)


def _lesson_page(
    request: HttpRequest,
    lesson: Lesson,
    *,
    transition_form: forms.Form | None = None,
    assign_form: forms.Form | None = None,
    status: int = 200,
) -> HttpResponse:
    restricted_read_audit(request, [lesson])
    user = _user(request)
    allowed = lesson_transitions(lesson.status)
    transition = transition_form or TransitionForm()
    transition.fields["to"].choices = [  # type: ignore[attr-defined]
        (value, LessonStatus(value).label) for value in allowed
    ]
    with timezone.override(lesson.city.zone):
        return render(
            request,
            "coordination/lessons_detail.html",
            {
                "lesson": lesson,
                "incident": lesson.incident,
                "overdue": lesson.is_overdue(city_today(lesson.city)),
                "history": lesson.history.all(),
                "transition_form": transition if allowed else None,
                "assign_form": (assign_form or AssignForm(user=user))
                if lesson.is_open and user_can(user, Capability.LESSON_OVERSEE)
                else None,
            },
            status=status,
        )


@login_required
@require_GET
def lesson_detail(request: HttpRequest, lesson_id: int) -> HttpResponse:
    """A lesson, its owner, due date and history, and the step the reader may take."""
    return _lesson_page(request, _lesson(request, lesson_id))


@login_required
@require_POST
def lesson_transition_view(request: HttpRequest, lesson_id: int) -> HttpResponse:
    lesson = _lesson(request, lesson_id)
    form = TransitionForm(request.POST)
    changed, status = _run(
        request,
        form,
        lambda: lesson_transition_service(
            lesson_id=lesson.pk,
            user=_user(request),
            to=form.cleaned_data["to"],
            note=form.cleaned_data["note"],
        ),
    )
    if changed is None:
        return _lesson_page(request, lesson, transition_form=form, status=status)
    messages.success(request, f"Lesson {changed.label} is now {changed.get_status_display()}.")
    return redirect("lesson", lesson_id=lesson.pk)


@login_required
@require_POST
def lesson_assign_view(request: HttpRequest, lesson_id: int) -> HttpResponse:
    lesson = _lesson(request, lesson_id)
    user = _user(request)
    form = AssignForm(request.POST, user=user)
    changed, status = _run(
        request,
        form,
        lambda: lesson_assign(
            lesson_id=lesson.pk,
            user=user,
            owner_agency=form.cleaned_data["owner_agency"],
            due_date=form.cleaned_data["due_date"],
        ),
    )
    if changed is None:
        return _lesson_page(request, lesson, assign_form=form, status=status)
    messages.success(request, f"Lesson {changed.label} assigned to {changed.owner_agency}.")
    return redirect("lesson", lesson_id=lesson.pk)
