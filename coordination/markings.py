"""TLP 2.0 handling markings carried by every shared item."""

from django.core.exceptions import ValidationError
from django.db import models


class Marking(models.TextChoices):
    CLEAR = "CLEAR", "TLP:CLEAR"
    GREEN = "GREEN", "TLP:GREEN"
    AMBER = "AMBER", "TLP:AMBER"
    AMBER_STRICT = "AMBER+STRICT", "TLP:AMBER+STRICT"
    RED = "RED", "TLP:RED"


DEFAULT_MARKING = Marking.AMBER

# Markings that any member of a participating agency may read. RED and AMBER+STRICT need recipient
# lists, which do not exist yet: they are refused on write and hidden on read (deny by default).
OPEN_TO_PARTICIPANTS = (Marking.CLEAR, Marking.GREEN, Marking.AMBER)


def marking_validate(value: str) -> str:
    """Return ``value`` if items may be written with it now, else raise naming the field."""
    if value not in Marking.values:
        raise ValidationError(
            {"marking": f"Unknown marking {value!r}; use one of {', '.join(Marking.values)}."}
        )
    if value not in OPEN_TO_PARTICIPANTS:
        raise ValidationError(
            {
                "marking": f"{value} needs a recipient list, which this platform does not support "
                f"yet; use one of {', '.join(OPEN_TO_PARTICIPANTS)}."
            }
        )
    return value
