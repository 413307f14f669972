"""Django admin of the comms app.

Rota part: rotas (editable), their shifts and cover (listed; added on the rota pages, which
validate them), contact methods (listed; their owners manage them, secrets never shown),
responder groups and escalation policies (edited here, saved through the services).
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from coordination.admin import ReadOnlyAdmin, ReadOnlyInline

from .exercises import inject_content_clean
from .models import (
    Acknowledgement,
    Activation,
    ActivationTarget,
    Brief,
    ContactMethod,
    DeliveryAttempt,
    EscalationPolicy,
    EscalationStep,
    ExerciseInject,
    ExerciseRun,
    Notification,
    PublicStatement,
    ResponderGroup,
    Rota,
    RotaOverride,
    Scenario,
    ScenarioInject,
    Shift,
    StatementReview,
    StatementVersion,
)
from .services import (
    MAX_REPEATS,
    StepSpec,
    escalation_policy_save,
    escalation_steps_check,
    responder_group_save,
)


class ShiftInline(ReadOnlyInline):
    model = Shift
    fields = readonly_fields = (
        "tier",
        "user",
        "start_date",
        "start_time",
        "duration",
        "recurrence",
        "interval",
    )
    show_change_link = True


class OverrideInline(ReadOnlyInline):
    model = RotaOverride
    fields = readonly_fields = ("tier", "user", "starts_at", "ends_at", "reason")


@admin.register(Rota)
class RotaAdmin(admin.ModelAdmin):
    list_display = ["name", "agency", "is_active", "created_at"]
    list_filter = ["agency__city", "agency", "is_active"]
    list_select_related = ["agency"]
    search_fields = ["name", "agency__name", "agency__short_name"]
    fields = ["agency", "name", "description", "is_active"]
    inlines = [ShiftInline, OverrideInline]

    def get_readonly_fields(self, request, obj=None):
        # Its shifts name people of its agency: a rota cannot move to another agency.
        return ["agency"] if obj is not None else []


@admin.register(Shift)
class ShiftAdmin(ReadOnlyAdmin):
    list_display = [
        "rota",
        "tier",
        "user",
        "start_date",
        "start_time",
        "duration",
        "recurrence",
        "interval",
        "repeat_until",
    ]
    list_filter = ["rota__agency__city", "tier", "recurrence"]
    list_select_related = ["rota__agency", "user"]
    search_fields = ["rota__name", "user__username", "user__last_name"]


@admin.register(RotaOverride)
class RotaOverrideAdmin(ReadOnlyAdmin):
    list_display = ["rota", "tier", "user", "starts_at", "ends_at", "reason"]
    list_filter = ["rota__agency__city", "tier"]
    list_select_related = ["rota__agency", "user"]
    search_fields = ["rota__name", "user__username", "reason"]


@admin.register(ContactMethod)
class ContactMethodAdmin(ReadOnlyAdmin):
    list_display = ["user", "kind", "address", "label", "is_active", "created_at"]
    list_filter = ["kind", "is_active", "user__agency__city"]
    list_select_related = ["user"]
    search_fields = ["user__username", "address", "label"]
    # The webhook signing secret is its owner's alone: never listed or shown.
    exclude = ["signing_secret"]


class ResponderGroupForm(forms.ModelForm):
    class Meta:
        model = ResponderGroup
        fields = ["agency", "name", "description", "members"]

    def clean(self):
        cleaned = super().clean()
        agency = cleaned.get("agency")
        members = cleaned.get("members") or []
        if agency is not None:
            outsiders = [str(m) for m in members if m.agency_id != agency.pk]
            if outsiders:
                self.add_error("members", f"Not of {agency}: {', '.join(outsiders)}.")
            name = (cleaned.get("name") or "").strip()
            clash = ResponderGroup.objects.filter(agency=agency, name__iexact=name)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", "This agency already has a group of that name.")
        return cleaned


@admin.register(ResponderGroup)
class ResponderGroupAdmin(admin.ModelAdmin):
    form = ResponderGroupForm
    list_display = ["name", "agency", "member_count"]
    list_filter = ["agency__city", "agency"]
    list_select_related = ["agency"]
    search_fields = ["name", "agency__short_name"]
    filter_horizontal = ["members"]

    @admin.display(description="members")
    def member_count(self, group: ResponderGroup) -> int:
        return group.members.count()

    def save_model(self, request, obj, form, change) -> None:
        """Saved with its members in ``save_related``, through the service."""

    def save_related(self, request: HttpRequest, form, formsets, change) -> None:
        data = form.cleaned_data
        group = responder_group_save(
            user=request.user,  # type: ignore[arg-type]
            agency=data["agency"],
            name=data["name"],
            description=data.get("description", ""),
            members=list(data.get("members") or []),
            group=form.instance if change else None,
        )
        form.instance.pk = group.pk


class EscalationStepFormSet(forms.BaseInlineFormSet):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The formset itself never saves (the service writes the steps); the admin's change
        # history still asks what it saved.
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []

    def steps(self) -> list[StepSpec]:
        rows = [
            form.cleaned_data
            for form in self.forms
            if getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE")
        ]
        rows.sort(key=lambda row: row.get("position") or 0)
        return [
            StepSpec(
                target=row.get("target", ""),
                wait_minutes=row.get("wait_minutes", 0),
                group=row.get("group"),
            )
            for row in rows
        ]

    def clean(self) -> None:
        super().clean()
        agency = getattr(self.instance, "agency", None) if self.instance.agency_id else None
        if agency is None:
            return
        errors: dict[str, list[str]] = {}
        escalation_steps_check(errors, agency, self.steps())
        if errors:
            raise ValidationError(errors["steps"])


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    formset = EscalationStepFormSet
    fields = ["position", "target", "group", "wait_minutes"]
    extra = 1
    ordering = ["position"]


class EscalationPolicyForm(forms.ModelForm):
    class Meta:
        model = EscalationPolicy
        fields = ["agency", "name", "rota", "repeat_count", "is_default"]

    def clean(self):
        cleaned = super().clean()
        agency, rota = cleaned.get("agency"), cleaned.get("rota")
        if agency is not None and rota is not None and rota.agency_id != agency.pk:
            self.add_error("rota", "Must be a rota of the same agency.")
        if (cleaned.get("repeat_count") or 0) > MAX_REPEATS:
            self.add_error("repeat_count", f"At most {MAX_REPEATS}.")
        if agency is not None:
            clash = EscalationPolicy.objects.filter(
                agency=agency, name__iexact=(cleaned.get("name") or "").strip()
            )
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", "This agency already has a policy of that name.")
        return cleaned

    def _get_validation_exclusions(self) -> set[str]:
        # Another policy's default flag is taken over by the service, not refused.
        return {*super()._get_validation_exclusions(), "is_default"}  # type: ignore[misc]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    form = EscalationPolicyForm
    list_display = ["name", "agency", "rota", "repeat_count", "is_default"]
    list_filter = ["agency__city", "agency", "is_default"]
    list_select_related = ["agency", "rota"]
    search_fields = ["name", "agency__short_name"]
    inlines = [EscalationStepInline]

    def save_model(self, request, obj, form, change) -> None:
        """Saved with its steps in ``save_related``, through the service."""

    def save_formset(self, request, form, formset, change) -> None:
        """Steps are written by the service with the policy."""

    def save_related(self, request: HttpRequest, form, formsets, change) -> None:
        data = form.cleaned_data
        steps_formset = next(f for f in formsets if isinstance(f, EscalationStepFormSet))
        policy = escalation_policy_save(
            user=request.user,  # type: ignore[arg-type]
            agency=data["agency"],
            name=data["name"],
            steps=steps_formset.steps(),
            repeat_count=data.get("repeat_count") or 0,
            rota=data.get("rota"),
            is_default=bool(data.get("is_default")),
            policy=form.instance if change else None,
        )
        form.instance.pk = policy.pk


# --- Activation alerting: read-only here, because every write goes through the services (the
# outbox, leases and escalation bookkeeping would be wrong after a hand edit). -----------------


_TARGET_FIELDS: tuple[str, ...] = (
    "agency",
    "policy",
    "state",
    "round",
    "steps_taken",
    "next_step_at",
    "satisfied_at",
)
_ATTEMPT_FIELDS: tuple[str, ...] = ("number", "started_at", "finished_at", "outcome", "detail")


class _ReadOnly:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ActivationTargetInline(_ReadOnly, admin.TabularInline):
    model = ActivationTarget
    fields = readonly_fields = _TARGET_FIELDS
    extra = 0


@admin.register(Activation)
class ActivationAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "created_at", "message", "urgency", "is_exercise", "status", "city"]
    list_filter = ["status", "is_exercise", "urgency", "city"]
    list_select_related = ["city"]
    search_fields = ["message"]
    date_hierarchy = "created_at"
    inlines = [ActivationTargetInline]


class DeliveryAttemptInline(_ReadOnly, admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = _ATTEMPT_FIELDS
    extra = 0


@admin.register(Notification)
class NotificationAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "activation", "recipient", "channel", "state", "attempts", "created_at"]
    list_filter = ["state", "channel"]
    list_select_related = ["activation", "recipient"]
    search_fields = ["recipient__username", "idempotency_key"]
    raw_id_fields = ["activation", "target", "recipient", "contact_method"]
    inlines = [DeliveryAttemptInline]


@admin.register(Acknowledgement)
class AcknowledgementAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "activation", "user", "response", "eta_minutes", "via", "created_at"]
    list_filter = ["response", "via"]
    list_select_related = ["activation", "user"]
    raw_id_fields = ["activation", "target", "user", "notification"]


# --- Public statements and situation briefs ------------------------------------------------------
# Read-only: statements and briefs change only through their services (versions are never
# rewritten, an issued brief is frozen, every step is an incident event).


class StatementVersionInline(_ReadOnly, admin.TabularInline):
    model = StatementVersion
    fields = readonly_fields = ("number", "headline", "body", "created_by", "created_at")
    extra = 0


class StatementReviewInline(_ReadOnly, admin.TabularInline):
    model = StatementReview
    fields = readonly_fields = (
        "version",
        "agency",
        "reviewer",
        "decision",
        "comment",
        "created_at",
    )
    extra = 0


@admin.register(PublicStatement)
class PublicStatementAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "incident", "owner_agency", "status", "marking", "published_at"]
    list_filter = ["status", "incident__city"]
    list_select_related = ["incident", "owner_agency"]
    search_fields = ["versions__headline", "incident__reference"]
    raw_id_fields = ["incident", "author", "published_by", "superseded_by", "current_version"]
    inlines = [StatementVersionInline, StatementReviewInline]


@admin.register(StatementVersion)
class StatementVersionAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "statement", "number", "headline", "created_by", "created_at"]
    list_select_related = ["statement__current_version", "created_by"]
    search_fields = ["headline"]


@admin.register(StatementReview)
class StatementReviewAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "statement", "version", "agency", "decision", "created_at"]
    list_filter = ["decision"]
    list_select_related = ["statement__current_version", "version", "agency"]


@admin.register(Brief)
class BriefAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "incident", "number", "status", "as_of", "marking", "author_agency"]
    list_filter = ["status", "marking", "incident__city"]
    list_select_related = ["incident", "author_agency"]
    search_fields = ["incident__reference"]
    raw_id_fields = ["incident", "author", "issued_by", "previous"]


# --- Exercises ---------------------------------------------------------------------------------


class ScenarioInjectForm(forms.ModelForm):
    """An inject edited in the admin is checked exactly as one sent to the API."""

    class Meta:
        model = ScenarioInject
        fields = ["offset_seconds", "kind", "title", "content"]

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        kind, content = cleaned.get("kind"), cleaned.get("content")
        if kind is not None:
            problems: list[str] = []
            cleaned["content"] = inject_content_clean(kind, content or {}, problems)
            if problems:
                raise ValidationError({"content": problems})
        return cleaned


class ScenarioInjectInline(admin.TabularInline):
    model = ScenarioInject
    form = ScenarioInjectForm
    extra = 1


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "incident_type", "builtin_key", "updated_at"]
    list_filter = ["city"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [ScenarioInjectInline]


@admin.register(ScenarioInject)
class ScenarioInjectAdmin(admin.ModelAdmin):
    form = ScenarioInjectForm
    list_display = ["scenario", "offset_seconds", "kind", "title"]
    list_filter = ["kind", "scenario"]


_RUN_INJECT_FIELDS: tuple[str, ...] = (
    "position",
    "offset_seconds",
    "kind",
    "title",
    "state",
    "due_at",
    "released_at",
    "failure_reason",
    "event_seq",
)


class ExerciseInjectInline(_ReadOnly, admin.TabularInline):
    model = ExerciseInject
    fields = readonly_fields = _RUN_INJECT_FIELDS
    extra = 0


@admin.register(ExerciseRun)
class ExerciseRunAdmin(_ReadOnly, admin.ModelAdmin):
    """Runs change only through the director's controls (their releases are scheduled)."""

    list_display = ["id", "incident", "scenario", "director", "status", "started_at", "ended_at"]
    list_filter = ["status"]
    list_select_related = ["incident", "scenario", "director"]
    inlines = [ExerciseInjectInline]


@admin.register(ExerciseInject)
class ExerciseInjectAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "run", "position", "kind", "title", "state", "due_at", "released_at"]
    list_filter = ["state", "kind"]
    list_select_related = ["run"]
