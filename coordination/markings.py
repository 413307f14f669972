"""TLP 2.0 handling markings carried by every shared item, and their recipient lists.

``CLEAR``, ``GREEN`` and ``AMBER`` items are read by every member of a participating agency.
``AMBER+STRICT`` items are read by the author's agency and the agencies the author names;
``RED`` items by the people the author names only. The author's agency (AMBER+STRICT) and the
author (RED) are always among the recipients, so the author never locks themselves out.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models


class Marking(models.TextChoices):
    CLEAR = "CLEAR", "TLP:CLEAR"
    GREEN = "GREEN", "TLP:GREEN"
    AMBER = "AMBER", "TLP:AMBER"
    AMBER_STRICT = "AMBER+STRICT", "TLP:AMBER+STRICT"
    RED = "RED", "TLP:RED"


DEFAULT_MARKING = Marking.AMBER

# Markings that any member of a participating agency may read.
OPEN_TO_PARTICIPANTS = (Marking.CLEAR, Marking.GREEN, Marking.AMBER)
# Markings read only by those named: each such read is audited.
RESTRICTED = (Marking.AMBER_STRICT, Marking.RED)


def marking_validate(value: str) -> str:
    """Return ``value`` if it is a marking, else raise naming the field (fail closed)."""
    if value not in Marking.values:
        raise ValidationError(
            {"marking": f"Unknown marking {value!r}; use one of {', '.join(Marking.values)}."}
        )
    return value


@dataclass(frozen=True)
class Audience:
    """Who may read an item beyond the participation rule: the marking and its recipient lists.

    ``agencies`` matter only for AMBER+STRICT and ``people`` only for RED; for the open markings
    both are empty.
    """

    marking: str
    agencies: tuple[int, ...] = ()
    people: tuple[int, ...] = ()

    def admits(self, *, user_id: int | None, agency_id: int | None) -> bool:
        if self.marking in OPEN_TO_PARTICIPANTS:
            return True
        if self.marking == Marking.AMBER_STRICT:
            return agency_id is not None and agency_id in self.agencies
        if self.marking == Marking.RED:
            return user_id is not None and user_id in self.people
        return False  # an unknown marking: deny by default

    def as_message(self) -> dict[str, list[int]]:
        return {"agencies": list(self.agencies), "people": list(self.people)}


def audience_build(
    *,
    marking: str,
    author,
    author_agency_id: int | None,
    recipient_agencies: Iterable = (),
    recipient_people: Iterable = (),
    participating_agency_ids: set[int],
) -> Audience:
    """Check the recipient lists against the marking and the incident; return the audience.

    Raises ``ValidationError`` naming ``recipient_agencies`` or ``recipient_people``:

    * recipients given for a marking that does not use them are refused (a list that does
      nothing would mislead its author into thinking it restricts something);
    * named agencies must take part in the incident; named people must belong to one that does;
    * the author's agency (AMBER+STRICT) and the author (RED) are always added. An AMBER+STRICT
      item naming no other agency is therefore for the author's agency alone, and a RED item
      naming nobody else is for its author alone: both are legitimate (a note to self, a
      single-agency sensitive matter), so neither is refused.
    """
    marking_validate(marking)
    agencies = {getattr(a, "pk", a) for a in recipient_agencies}
    people = list(recipient_people)
    errors: dict[str, list[str]] = {}
    if agencies and marking != Marking.AMBER_STRICT:
        errors["recipient_agencies"] = [
            "Name agencies only for AMBER+STRICT; other markings do not use them."
        ]
    if people and marking != Marking.RED:
        errors["recipient_people"] = ["Name people only for RED; other markings do not use them."]
    outsiders = sorted(pk for pk in agencies if pk not in participating_agency_ids)
    if outsiders and "recipient_agencies" not in errors:
        errors["recipient_agencies"] = [
            f"Only agencies taking part in the incident can be named (not {outsiders})."
        ]
    strangers = sorted(
        p.pk for p in people if p.agency_id not in participating_agency_ids or not p.is_active
    )
    if strangers and "recipient_people" not in errors:
        errors["recipient_people"] = [
            "Only active people of agencies taking part in the incident can be named "
            f"(not {strangers})."
        ]
    if errors:
        raise ValidationError(errors)
    if marking == Marking.AMBER_STRICT:
        if author_agency_id is not None:
            agencies.add(author_agency_id)
        return Audience(marking=marking, agencies=tuple(sorted(agencies)))
    if marking == Marking.RED:
        names = {p.pk for p in people} | {author.pk}
        return Audience(marking=marking, people=tuple(sorted(names)))
    return Audience(marking=marking)
