"""Exceptions that services raise and every edge (API, pages) turns into the same HTTP answer.

Services also raise Django's own ``ValidationError`` (400, naming the field), ``PermissionDenied``
(403) and ``ObjectDoesNotExist`` (404: invisible and missing look the same).
"""


class Conflict(Exception):
    """The request is well formed but the current state refuses it (HTTP 409).

    ``allowed`` lists what the state would accept instead, so a refused transition says why and
    what would work.
    """

    def __init__(self, message: str, *, allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = allowed
