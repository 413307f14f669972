"""Page forms of the decision log, actions and the audit log's filters. They parse input only; the
services decide."""

import datetime
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from incidents.forms import LocalDateTimeField, TextArea, marking_field

from .models import ActionStatus, Agency, Stance

OPTION_ROWS = 3


class DecisionForm(forms.Form):
    """A joint decision in the order of the Joint Decision Model, one step per fieldset."""

    information = forms.CharField(
        label="Information and intelligence",
        help_text="What is known, and how reliable it is.",
        widget=TextArea(5),
    )
    threat_assessment = forms.CharField(label="Threat and risk assessment", widget=TextArea(4))
    working_strategy = forms.CharField(
        label="Working strategy", help_text="The aim and objectives.", widget=TextArea(3)
    )
    powers_policies = forms.CharField(
        label="Powers, policies and procedures",
        help_text="The legal powers and the plans and policies that apply.",
        widget=TextArea(4),
    )
    decision = forms.CharField(label="Decision", widget=TextArea(3))
    rationale = forms.CharField(
        label="Rationale", help_text="Why this option, on what grounds.", widget=TextArea(4)
    )
    decided_at = LocalDateTimeField(label="Decided at", help_text="Local time.")
    late_entry_reason = forms.CharField(
        required=False,
        label="Reason for a late entry",
        help_text="Needed when the decision was taken more than 15 minutes ago.",
        widget=TextArea(2),
    )
    review_by = LocalDateTimeField(
        required=False, label="Review by", help_text="Local time; optional."
    )
    marking = marking_field()

    # Steps of the form, in JDM order: (title, field names). The options step is built below.
    STEPS: list[tuple[str, list[str]]] = [
        ("Information and intelligence", ["information"]),
        (
            "Assessment of threat and risk, and working strategy",
            ["threat_assessment", "working_strategy"],
        ),
        ("Powers, policies and procedures", ["powers_policies"]),
        ("Options and contingencies", []),
        (
            "Decision and rationale",
            [
                "decision",
                "rationale",
                "decided_at",
                "late_entry_reason",
                "review_by",
                "marking",
                "recipient_agencies",
                "recipient_people",
                "meeting",
            ],
        ),
    ]
    OPTIONS_STEP = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["decided_at"].initial = timezone.localtime().replace(second=0, microsecond=0)
        for row in range(1, OPTION_ROWS + 1):
            self.fields[f"option_{row}"] = forms.CharField(
                required=row == 1, label=f"Option {row}", widget=TextArea(2)
            )
            self.fields[f"option_{row}_chosen"] = forms.BooleanField(
                required=False, label=f"Option {row} was chosen"
            )
            self.fields[f"option_{row}_reason"] = forms.CharField(
                required=row == 1,
                label=f"Why option {row} was chosen or rejected",
                widget=TextArea(2),
            )

    def option_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (self[f"option_{row}"], self[f"option_{row}_chosen"], self[f"option_{row}_reason"])
            for row in range(1, OPTION_ROWS + 1)
        ]

    def steps(self) -> list[dict[str, Any]]:
        return [
            {
                "number": number,
                "title": title,
                # Recipient lists exist once the view has offered the incident's agencies.
                "fields": [self[name] for name in names if name in self.fields],
                "options": self.option_rows() if number - 1 == self.OPTIONS_STEP else None,
            }
            for number, (title, names) in enumerate(self.STEPS, start=1)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        options = []
        for row in range(1, OPTION_ROWS + 1):
            text = (cleaned.get(f"option_{row}") or "").strip()
            reason = (cleaned.get(f"option_{row}_reason") or "").strip()
            if not text and not reason:
                continue  # an unused row
            if not text:
                self.add_error(f"option_{row}", "Give the option, or clear its reason.")
            if not reason:
                self.add_error(f"option_{row}_reason", "Say why it was chosen or rejected.")
            options.append(
                {
                    "option": text,
                    "chosen": bool(cleaned.get(f"option_{row}_chosen")),
                    "reason": reason,
                }
            )
        cleaned["options"] = options
        return cleaned

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "information": data["information"],
            "threat_assessment": data["threat_assessment"],
            "working_strategy": data["working_strategy"],
            "powers_policies": data["powers_policies"],
            "options": data["options"],
            "decision": data["decision"],
            "rationale": data["rationale"],
            "decided_at": data["decided_at"],
            "late_entry_reason": data.get("late_entry_reason") or "",
            "review_by": data.get("review_by"),
            "marking": data["marking"],
            "recipient_agencies": list(data.get("recipient_agencies") or []),
            "recipient_people": list(data.get("recipient_people") or []),
            "meeting": data.get("meeting"),
        }

    # The service names some fields differently from the form.
    SERVICE_FIELD_ALIASES = {"options": "option_1"}


class PositionForm(forms.Form):
    """Agree with, or dissent from, a decision on behalf of one's agency."""

    position = forms.ChoiceField(
        choices=Stance.choices, widget=forms.RadioSelect, label="Your agency's position"
    )
    reason = forms.CharField(
        required=False,
        label="Reason",
        help_text="Required for a dissent: what your agency disagrees with, and why.",
        widget=TextArea(3),
    )


class ActionForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=TextArea(3))
    owner_agency = forms.ModelChoiceField(queryset=Agency.objects.none(), label="Owner agency")
    due_at = LocalDateTimeField(required=False, label="Due", help_text="Local time; optional.")
    marking = marking_field()

    def __init__(self, *args: Any, agencies: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner_agency"].queryset = agencies  # type: ignore[attr-defined]


class ActionStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ActionStatus.choices)


AUDIT_DATE_RANGE = [
    MinValueValidator(datetime.date(2000, 1, 1), "Give a date in the year 2000 or later."),
    MaxValueValidator(datetime.date(9998, 12, 31), "Give a date before the year 9999."),
]


class AuditFilterForm(forms.Form):
    """Filters of the audit log page and its CSV export. Dates are days in the viewer's city."""

    action = forms.CharField(
        required=False, max_length=64, help_text="An action, e.g. auth.login_failed, or its start."
    )
    user = forms.CharField(required=False, max_length=150, label="User name")
    # Bounded so that a day at either end still converts to UTC and back (no overflow).
    date_from = forms.DateField(required=False, label="From (date)", validators=AUDIT_DATE_RANGE)
    date_to = forms.DateField(required=False, label="To (date)", validators=AUDIT_DATE_RANGE)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned
