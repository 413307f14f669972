"""Page forms of the incidents app. They parse input only; the services decide and write.

Date and time fields read the value in the current time zone, which the views set to the
incident's city, so a loggist types the local time they see on the wall clock.
"""

from datetime import datetime
from typing import Any, TypeVar

from django import forms

from coordination.markings import DEFAULT_MARKING, Marking
from coordination.models import Agency, User
from coordination.validation import EARLIEST_INSTANT

from .models import IncidentLevel, IncidentStatus, IncidentType, TimelineCategory

MARKING_CHOICES = list(Marking.choices)
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeField(forms.DateTimeField):
    """A moment typed in the city's local time, with the browser's date-time picker.

    Like the API, refuses moments before 2000: none is plausible, and a typing slip should be
    named next to the field even when other fields stop the service from being asked.
    """

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT_FORMAT)

    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is not None and moment < EARLIEST_INSTANT:
            raise forms.ValidationError("Must be in the year 2000 or later.", code="too_early")
        return moment


def marking_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=MARKING_CHOICES,
        initial=DEFAULT_MARKING,
        label="Handling marking",
        help_text="TLP 2.0. AMBER: the agencies taking part in this incident. AMBER+STRICT: "
        "your agency and the agencies you name. RED: only the people you name, and you.",
    )


class PersonChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj} ({obj.agency.short_name})" if obj.agency else str(obj)


AnyForm = TypeVar("AnyForm", bound=forms.Form)


def recipients_add(form: AnyForm, incident: Any, user: Any) -> AnyForm:
    """Add the recipient lists to a form with a marking: the agencies taking part in
    ``incident`` (for AMBER+STRICT) and their active people (for RED). The service checks them
    again; the choices only spare the author names it would refuse."""
    agencies = (
        Agency.objects.visible_to(user)
        .filter(pk__in=incident.participating_agencies.values("pk"))
        .order_by("short_name")
    )
    people = (
        User.objects.visible_to(user)
        .filter(agency__in=agencies.values("pk"), is_active=True)
        .select_related("agency")
        .order_by("agency__short_name", "last_name", "username")
    )
    form.fields["recipient_agencies"] = forms.ModelMultipleChoiceField(
        queryset=agencies,
        required=False,
        label="Agencies named (AMBER+STRICT)",
        help_text="Besides your own agency, which is always included.",
    )
    form.fields["recipient_people"] = PersonChoiceField(
        queryset=people,
        required=False,
        label="People named (RED)",
        help_text="Besides you, who are always included.",
    )
    return form


class TextArea(forms.Textarea):
    def __init__(self, rows: int = 3) -> None:
        super().__init__(attrs={"rows": rows})


class IncidentFilterForm(forms.Form):
    """Filters of the incident list. Real incidents and exercises are never listed together."""

    SHOW_REAL = "real"
    SHOW_EXERCISES = "exercises"

    q = forms.CharField(required=False, label="Search", help_text="Reference, title or place.")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *IncidentStatus.choices]
    )
    level = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Any level"), *[(v, f"Level {v}") for v in IncidentLevel.values]],
    )
    type = forms.ChoiceField(required=False, choices=[("", "Any type"), *IncidentType.choices])
    show = forms.ChoiceField(
        required=False,
        label="Show",
        choices=[(SHOW_REAL, "Real incidents"), (SHOW_EXERCISES, "Exercises")],
    )


class MethaneForm(forms.Form):
    """A new version of the M/ETHANE report, in the order the mnemonic gives."""

    major_incident_declared = forms.BooleanField(required=False, label="M: Major incident declared")
    exact_location = forms.CharField(label="E: Exact location", widget=TextArea(2))
    latitude = forms.DecimalField(
        required=False, max_digits=9, decimal_places=6, min_value=-90, max_value=90
    )
    longitude = forms.DecimalField(
        required=False, max_digits=9, decimal_places=6, min_value=-180, max_value=180
    )
    incident_type = forms.CharField(label="T: Type of incident", widget=TextArea(2))
    hazards = forms.CharField(label="H: Hazards, present and potential", widget=TextArea())
    access = forms.CharField(label="A: Access routes and rendezvous points", widget=TextArea(2))
    casualties_fatal = forms.IntegerField(
        required=False, min_value=0, max_value=2_147_483_647, label="N: Fatalities"
    )
    casualties_p1 = forms.IntegerField(
        required=False, min_value=0, max_value=2_147_483_647, label="N: Immediate (P1)"
    )
    casualties_p2 = forms.IntegerField(
        required=False, min_value=0, max_value=2_147_483_647, label="N: Urgent (P2)"
    )
    casualties_p3 = forms.IntegerField(
        required=False, min_value=0, max_value=2_147_483_647, label="N: Delayed (P3)"
    )
    casualties_notes = forms.CharField(
        required=False, label="N: Number and severity, in words", widget=TextArea(2)
    )
    emergency_services_present = forms.CharField(
        label="E: Emergency services present", widget=TextArea(2)
    )
    emergency_services_required = forms.CharField(
        label="E: Emergency services required", widget=TextArea(2)
    )
    marking = marking_field()


class TimelineForm(forms.Form):
    text = forms.CharField(label="What happened", widget=TextArea())
    occurred_at = LocalDateTimeField(
        required=False, label="When", help_text="Local time. Leave empty for now."
    )
    category = forms.ChoiceField(
        choices=TimelineCategory.choices, initial=TimelineCategory.SIGNIFICANT_EVENT
    )
    marking = marking_field()


class TransitionForm(forms.Form):
    to = forms.ChoiceField(choices=IncidentStatus.choices, label="Move to")


def form_errors_from(form: forms.Form, errors: dict[str, list[Any]], aliases: dict) -> None:
    """Put a service's field errors next to the form's fields (``aliases`` maps service field
    names the form spells differently); errors about anything else go to the top of the form."""
    for name, messages in errors.items():
        field = aliases.get(name, name)
        form.add_error(field if field in form.fields else None, list(messages))
