"""The API's default permission. Kept apart from the rest of the API wiring because DRF imports
permission classes while ``rest_framework.views`` is still loading."""

from rest_framework import permissions

from coordination.roles import user_can


class DeclaredPermission(permissions.BasePermission):
    """Refuse every request unless its view declares what the action needs (fail closed).

    Views declare ``required_capabilities``: action name (viewsets) or lower-case HTTP method (plain
    views) mapped to a capability from ``coordination.roles.Capability``. An action missing from
    the map is refused, so a new endpoint is closed until somebody decides who may use it.
    """

    message = "This action is not available to you."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        method = request.method.lower()
        if (
            hasattr(view, "action_map")
            and method not in view.action_map
            and not hasattr(view, method)
        ):
            return True  # no handler for this method: DRF answers 405, and nothing runs
        declared: dict[str, str] = getattr(view, "required_capabilities", {})
        key = getattr(view, "action", None) or method
        capability = declared.get(key)
        if capability is None:
            return False
        return user_can(request.user, capability)
