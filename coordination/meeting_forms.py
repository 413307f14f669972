"""Forms of the meeting pages. They only parse; ``coordination.meetings`` decides."""

from typing import Any

from django import forms

from incidents.forms import LocalDateTimeField, PersonChoiceField, TextArea, marking_field

from .models import AgendaItem, Attendance, Meeting, MeetingAttendee, MeetingStatus, User


def agenda_parse(text: str) -> list[dict[str, str]]:
    """One agenda item per line: ``Title`` or ``Title | notes``."""
    items = []
    for line in (text or "").splitlines():
        title, _, notes = line.partition("|")
        if title.strip() or notes.strip():
            items.append({"title": title.strip(), "notes": notes.strip()})
    return items


def agenda_text(items: list[AgendaItem]) -> str:
    return "\n".join(f"{i.title} | {i.notes}" if i.notes else i.title for i in items)


class MeetingForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="e.g. Strategic coordinating group 2")
    scheduled_at = LocalDateTimeField(label="When", help_text="Local time.")
    location = forms.CharField(
        max_length=200, required=False, help_text="The room, if the cell is co-located."
    )
    virtual_link = forms.CharField(
        max_length=500,
        required=False,
        label="Virtual link",
        help_text="The call's web address, if it is virtual.",
    )
    chair = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    attendees = PersonChoiceField(
        queryset=User.objects.none(),
        required=False,
        help_text="The people invited; each attends for their own agency.",
    )
    agenda = forms.CharField(
        required=False,
        widget=TextArea(6),
        help_text="One item per line, in order. Add notes after a bar: Casualties | latest figures",
    )
    marking = marking_field()

    def __init__(self, *args: Any, people: Any, with_marking: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["chair"] = forms.ModelChoiceField(
            queryset=people, required=False, help_text="Who chairs the meeting."
        )
        self.fields["attendees"] = PersonChoiceField(
            queryset=people,
            required=False,
            help_text="The people invited; each attends for their own agency.",
        )
        if not with_marking:  # a meeting's marking is set when it is scheduled
            del self.fields["marking"]

    def service_arguments(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["agenda"] = agenda_parse(data.get("agenda", ""))
        data["attendees"] = list(data.get("attendees") or [])
        for name in ("recipient_agencies", "recipient_people"):
            if name in data:
                data[name] = list(data[name] or [])
        return data


class MinutesForm(forms.Form):
    """The minutes of the meeting as a whole and against each agenda item."""

    minutes = forms.CharField(required=False, widget=TextArea(6), label="Minutes of the meeting")

    def __init__(self, *args: Any, meeting: Meeting, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["minutes"].initial = meeting.minutes
        self.items = list(meeting.agenda_items.all())
        for item in self.items:
            self.fields[f"item_{item.pk}"] = forms.CharField(
                required=False,
                widget=TextArea(4),
                label=f"Minutes of item {item.position}: {item.title}",
                initial=item.minutes,
            )

    def service_arguments(self) -> dict[str, Any]:
        return {
            "minutes": self.cleaned_data.get("minutes", ""),
            "agenda_minutes": {
                item.pk: self.cleaned_data.get(f"item_{item.pk}", "") for item in self.items
            },
        }


class AttendanceForm(forms.Form):
    """Who came, and who sent apologies."""

    def __init__(self, *args: Any, attendees: list[MeetingAttendee], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attendees = attendees
        for row in attendees:
            self.fields[f"attendee_{row.pk}"] = forms.ChoiceField(
                choices=Attendance.choices,
                initial=row.attendance,
                label=f"{row.person} ({row.agency.short_name})",
            )

    def attendance(self) -> dict[int, str]:
        return {row.pk: self.cleaned_data[f"attendee_{row.pk}"] for row in self.attendees}


class MeetingTransitionForm(forms.Form):
    to = forms.ChoiceField(choices=MeetingStatus.choices)


def meeting_choice_add(form: forms.Form, meetings: Any, initial: Any = None) -> forms.Form:
    """Offer the incident's meetings (those the user may read) on a decision or action form."""
    form.fields["meeting"] = forms.ModelChoiceField(
        queryset=meetings,
        required=False,
        label="Taken in the meeting",
        help_text="The meeting of the strategic cell in which it was agreed, if any.",
        initial=initial,
    )
    return form
