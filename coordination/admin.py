"""Django admin for the directory (editable); the decision log, actions and audit log (read-only).

Incident-scoped records are changed only through the services, so that every change reaches the
live picture as an event and the decision log keeps its chain; the admin lists and shows them.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import (
    Action,
    Agency,
    AuditEntry,
    City,
    Decision,
    DecisionPosition,
    RoleAssignment,
    User,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and shows; never adds, changes or deletes."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(City)
class CityAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "time_zone"]
    search_fields = ["name", "code"]


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ["short_name", "name", "type", "city", "is_active"]
    list_filter = ["city", "type", "is_active"]
    search_fields = ["name", "short_name"]


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 1


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "first_name", "last_name", "agency", "roles_display", "is_active"]
    list_filter = ["agency__city", "agency", "role_assignments__role", "is_active"]
    list_select_related = ["agency"]
    inlines = [RoleAssignmentInline]
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Agency", {"fields": ("agency", "phone")}),
    )
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Agency", {"fields": ("agency", "phone")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("role_assignments")

    @admin.display(description="roles")
    def roles_display(self, user: User) -> str:
        return ", ".join(sorted(user.roles))


class DecisionPositionInline(ReadOnlyInline):
    model = DecisionPosition


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "incident", "decision", "author_agency", "decided_at", "marking"]
    list_filter = ["marking", "author_agency"]
    list_select_related = ["incident", "author_agency"]
    search_fields = ["decision", "rationale", "incident__reference"]
    inlines = [DecisionPositionInline]


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ["title", "incident", "owner_agency", "status", "due_at", "marking"]
    list_filter = ["status", "owner_agency"]
    list_select_related = ["incident", "owner_agency"]
    search_fields = ["title", "incident__reference"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The security audit log, read-only, scoped like the audit page (a city's administrators see
    their city's entries; superusers all)."""

    list_display = ["sequence", "at", "action", "username", "agency", "ip_address", "target_label"]
    list_filter = ["action"]
    search_fields = ["username", "action", "target_label"]
    date_hierarchy = "at"
    list_select_related = ["agency"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)
