"""API wiring shared by every app: input checking, pagination, service errors mapped to HTTP."""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict


def validated(serializer_class: type[serializers.Serializer], request, **kwargs) -> dict:
    """Check the request body's shape; a bad field answers 400 naming it."""
    serializer = serializer_class(data=request.data, context={"request": request}, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map the exceptions services raise to clear 4xx answers naming what is at fault."""
    if isinstance(exc, Conflict):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.allowed is not None:
            body["allowed"] = exc.allowed
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(exc.message_dict)
        else:
            exc = exceptions.ValidationError({"non_field_errors": exc.messages})
    elif isinstance(exc, ObjectDoesNotExist):
        # Invisible and missing look the same: never reveal that something exists.
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code in (401, 403):
        _refusal_record(response.status_code, context)
    return response


def _refusal_record(status_code: int, context: dict[str, Any]) -> None:
    """Every refused API request goes to the audit log (the failed token login too)."""
    from coordination.audit import audit_record

    request = context.get("request")
    if request is None:
        return
    view = context.get("view")
    audit_record(
        action="access.denied",
        request=request,
        detail={
            "status": status_code,
            "method": request.method,
            "path": request.path[:500],
            "view": type(view).__name__ if view is not None else "",
            "action": getattr(view, "action", None) or "",
        },
    )
