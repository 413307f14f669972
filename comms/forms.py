"""Forms of the rota pages. They read what a person typed; the services decide and write."""

import zoneinfo
from datetime import datetime

from django import forms

from coordination.models import User
from incidents.forms import LocalDateTimeField as IncidentLocalDateTimeField

from .models import ContactKind, Recurrence, Rota, Tier


class LocalDateTimeField(forms.DateTimeField):
    """A date and time typed on the city's wall clock (an ``<input type="datetime-local">``),
    made an exact instant in the city's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, *, zone: zoneinfo.ZoneInfo, **kwargs) -> None:
        super().__init__(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"], **kwargs)
        self.zone = zone

    def to_python(self, value):
        # Read naive on purpose: the typed time is the city's, not the server's.
        if value in self.empty_values:
            return None
        for fmt in self.input_formats:
            try:
                naive = datetime.strptime(str(value).strip(), fmt)
            except ValueError:
                continue
            if not 2000 <= naive.year < 2100:
                raise forms.ValidationError("Must be from the year 2000 and before 2100.")
            return naive.replace(tzinfo=self.zone)
        raise forms.ValidationError("Enter a date and time, e.g. 2026-03-23 08:00.")


class _OfficerForm(forms.Form):
    def __init__(self, *args, rota: Rota, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        zone = rota.agency.city.zone
        self.fields["user"] = forms.ModelChoiceField(
            label="Who",
            queryset=User.objects.filter(agency_id=rota.agency_id, is_active=True).order_by(
                "last_name", "first_name", "username"
            ),
        )
        self.fields["tier"] = forms.ChoiceField(choices=Tier.choices, initial=Tier.PRIMARY)
        self.fields["starts_at"] = LocalDateTimeField(zone=zone, label="From (local time)")
        self.fields["ends_at"] = LocalDateTimeField(zone=zone, label="To (local time)")
        self.order_fields(["user", "tier", "starts_at", "ends_at"])


class ShiftForm(_OfficerForm):
    prefix = "shift"
    recurrence = forms.ChoiceField(choices=Recurrence.choices, initial=Recurrence.ONCE)
    interval = forms.IntegerField(
        min_value=1, max_value=52, initial=1, help_text="Every this many days or weeks."
    )
    repeat_until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Last date an occurrence starts; empty: no end.",
    )
    note = forms.CharField(max_length=200, required=False)


class OverrideForm(_OfficerForm):
    prefix = "cover"
    reason = forms.CharField(max_length=200, required=False)


class ContactMethodForm(forms.Form):
    """A way to reach the signed-in person with alerts; the service checks the address."""

    kind = forms.ChoiceField(choices=ContactKind.choices, label="Kind")
    address = forms.CharField(
        max_length=2000,
        label="Address",
        help_text="E-mail address, mobile number in international form (+46701234567), "
        "or the https URL of a webhook.",
    )
    label = forms.CharField(max_length=60, required=False, label="Label (optional)")


# --- Public statements and situation briefs ------------------------------------------------------

OPEN_MARKING_CHOICES = [("AMBER", "TLP:AMBER"), ("GREEN", "TLP:GREEN"), ("CLEAR", "TLP:CLEAR")]


def _text_area(rows: int = 6) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


class AgencyChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.short_name} ({obj.name})"


class StatementDraftForm(forms.Form):
    headline = forms.CharField(max_length=200, label="Headline")
    body = forms.CharField(max_length=10_000, label="Statement", widget=_text_area(8))
    approver_agencies = AgencyChoiceField(
        queryset=None,
        required=False,
        label="Partner agencies whose approval it needs",
        widget=forms.CheckboxSelectMultiple,
    )
    marking = forms.ChoiceField(
        choices=OPEN_MARKING_CHOICES,
        initial="AMBER",
        label="Handling marking of the draft",
        help_text="Who may read the draft; once published the statement is TLP:CLEAR.",
    )

    def __init__(self, *args, agencies, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["approver_agencies"].queryset = agencies  # type: ignore[attr-defined]


class StatementConfirmForm(forms.Form):
    """A button that changes a statement's or a brief's state: nothing to type."""


class StatementReviseForm(forms.Form):
    headline = forms.CharField(max_length=200, label="Headline")
    body = forms.CharField(max_length=10_000, label="Statement", widget=_text_area(8))


class StatementReviewForm(forms.Form):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"

    decision = forms.ChoiceField(
        choices=[(APPROVE, "Approve this version"), (REQUEST_CHANGES, "Request changes")],
        label="Your agency's answer",
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        required=False,
        max_length=5_000,
        label="Comment",
        help_text="Required when requesting changes: say which.",
        widget=_text_area(3),
    )


class BriefGenerateForm(forms.Form):
    as_of = IncidentLocalDateTimeField(
        required=False,
        label="As of",
        help_text="The moment to describe, in the city's local time. Empty: now.",
    )
    marking = forms.ChoiceField(
        choices=OPEN_MARKING_CHOICES,
        initial="AMBER",
        label="Handling marking",
        help_text="The brief draws only on items marked at least as openly as this.",
    )
    administration = forms.CharField(
        required=False,
        label="Administration",
        help_text="E.g. where the cell sits, meeting times.",
        widget=_text_area(3),
    )
    humanitarian = forms.CharField(
        required=False, label="Humanitarian issues", widget=_text_area(3)
    )


class BriefEditForm(forms.Form):
    information = forms.CharField(required=False, label="Information", widget=_text_area(10))
    intent = forms.CharField(required=False, label="Intent", widget=_text_area(4))
    method = forms.CharField(required=False, label="Method", widget=_text_area(8))
    administration = forms.CharField(required=False, label="Administration", widget=_text_area(3))
    risk_assessment = forms.CharField(required=False, label="Risk assessment", widget=_text_area(4))
    communications = forms.CharField(required=False, label="Communications", widget=_text_area(4))
    humanitarian = forms.CharField(
        required=False, label="Humanitarian issues", widget=_text_area(3)
    )
