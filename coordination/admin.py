"""Django admin for the directory (editable); the decision log, actions and audit log (read-only).

Incident-scoped records are changed only through the services, so that every change reaches the
live picture as an event and the decision log keeps its chain; the admin lists and shows them.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .models import (
    Action,
    Agency,
    AgendaItem,
    AuditEntry,
    City,
    Debrief,
    Decision,
    DecisionPosition,
    Lesson,
    LessonTransition,
    Meeting,
    MeetingAttendee,
    Observation,
    RoleAssignment,
    User,
)
from .services import user_credentials_revoke, user_deactivate


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and shows; never adds, changes or deletes."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class NeedToKnowAdmin(ReadOnlyAdmin):
    """Read-only, and through the access rule like every other read: a superuser is shown a RED
    or AMBER+STRICT item only if named on it."""

    def get_queryset(self, request):
        readable = self.model.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(pk__in=readable)


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
    actions = ["deactivate"]
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

    @admin.action(description="Deactivate and sign out everywhere (sessions and API tokens)")
    def deactivate(self, request, queryset) -> None:
        done = 0
        for target in queryset:
            try:
                user_deactivate(user=request.user, target=target, request=request)
                done += 1
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{target.username}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"Deactivated {done} account(s); their sessions ended.")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # Unticking "active" on the form ends what the person still has open, like the action.
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_credentials_revoke(target=obj)

    def user_change_password(self, request, id, form_url=""):
        # Whoever knew the old password is out: every other session and every token ends.
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                target = User.objects.get(pk=id)
                keep = request.session.session_key if target.pk == request.user.pk else None
                user_credentials_revoke(target=target, keep_session_key=keep)
        return response


class DecisionPositionInline(ReadOnlyInline):
    model = DecisionPosition


@admin.register(Decision)
class DecisionAdmin(NeedToKnowAdmin):
    list_display = ["__str__", "incident", "decision", "author_agency", "decided_at", "marking"]
    list_filter = ["marking", "author_agency"]
    list_select_related = ["incident", "author_agency"]
    search_fields = ["decision", "rationale", "incident__reference"]
    inlines = [DecisionPositionInline]


@admin.register(Action)
class ActionAdmin(NeedToKnowAdmin):
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


# --- debriefs and lessons: changed through their services (events, history), shown here ----------


class ObservationInline(ReadOnlyInline):
    model = Observation
    fields = ["category", "text", "agency", "author", "created_at"]


@admin.register(Debrief)
class DebriefAdmin(NeedToKnowAdmin):
    list_display = ["title", "incident", "held_at", "status"]
    list_filter = ["status"]
    list_select_related = ["incident"]
    search_fields = ["title", "incident__reference"]
    inlines = [ObservationInline]


@admin.register(Observation)
class ObservationAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "debrief", "category", "agency", "created_at"]
    list_filter = ["category"]
    list_select_related = ["debrief", "agency"]

    def get_queryset(self, request):
        debriefs = Debrief.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(debrief__in=debriefs)


class LessonTransitionInline(ReadOnlyInline):
    model = LessonTransition
    fields = ["at", "from_status", "to_status", "by", "by_agency", "note"]


@admin.register(Lesson)
class LessonAdmin(NeedToKnowAdmin):
    list_display = [
        "__str__",
        "city",
        "incident",
        "owner_agency",
        "status",
        "due_date",
        "marking",
        "shareable",
    ]
    list_filter = ["status", "marking", "source", "shareable", "city"]
    list_select_related = ["city", "incident", "owner_agency"]
    search_fields = ["title", "uuid", "incident__reference"]
    inlines = [LessonTransitionInline]


@admin.register(LessonTransition)
class LessonTransitionAdmin(ReadOnlyAdmin):
    list_display = ["lesson", "from_status", "to_status", "by", "at"]
    list_select_related = ["lesson", "by"]

    def get_queryset(self, request):
        lessons = Lesson.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(lesson__in=lessons)


class AgendaItemInline(ReadOnlyInline):
    model = AgendaItem
    fields = ["position", "title", "notes", "minutes"]


class MeetingAttendeeInline(ReadOnlyInline):
    model = MeetingAttendee
    fields = ["person", "agency", "attendance"]


@admin.register(Meeting)
class MeetingAdmin(NeedToKnowAdmin):
    """Meetings with their agenda and attendees (agenda items and attendees are shown only here,
    inside a meeting the reader may read)."""

    list_display = ["title", "incident", "scheduled_at", "status", "chair", "marking"]
    list_filter = ["status", "marking"]
    list_select_related = ["incident", "chair"]
    search_fields = ["title", "incident__reference"]
    inlines = [AgendaItemInline, MeetingAttendeeInline]
