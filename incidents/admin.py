"""Django admin for incidents and their records: listed and shown, changed only through services."""

from django.contrib import admin

from coordination.admin import NeedToKnowAdmin, ReadOnlyAdmin

from .models import Incident, IncidentEvent, MethaneReport, TimelineEntry


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ["reference", "title", "type", "level", "status", "is_exercise", "opened_at"]
    list_filter = ["city", "status", "type", "is_exercise"]
    list_select_related = ["city", "lead_agency"]
    search_fields = ["reference", "title"]


@admin.register(MethaneReport)
class MethaneReportAdmin(NeedToKnowAdmin):
    list_display = ["__str__", "incident", "major_incident_declared", "submitted_at", "marking"]
    list_select_related = ["incident"]
    search_fields = ["incident__reference", "exact_location"]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(NeedToKnowAdmin):
    list_display = ["occurred_at", "incident", "category", "text", "author_agency", "marking"]
    list_filter = ["category"]
    list_select_related = ["incident", "author_agency"]
    search_fields = ["text", "incident__reference"]


@admin.register(IncidentEvent)
class IncidentEventAdmin(NeedToKnowAdmin):
    list_display = ["incident", "seq", "kind", "marking", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["incident"]
    search_fields = ["incident__reference", "kind"]
