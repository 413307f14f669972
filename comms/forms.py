"""Forms of the rota pages. They read what a person typed; the services decide and write."""

import zoneinfo
from datetime import datetime

from django import forms

from coordination.models import User

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
