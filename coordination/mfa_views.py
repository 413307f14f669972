"""Pages of signing in with a second factor: password, then a code (or enrolment), and the
backup codes. The rules live in ``coordination.mfa``; these pages only ask and show."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice

from .mfa import (
    backup_codes_left,
    backup_codes_regenerate,
    format_backup_code,
    has_authenticator,
    manual_secret,
    mfa_required,
    mfa_satisfied,
    qr_code_svg,
    safe_next,
    second_factor_step_url,
    second_factor_verify,
    session_verify,
    totp_enrolment_confirm,
    totp_enrolment_start,
    verified_device,
)

# New backup codes wait here between the POST that made them and the one page that shows them.
NEW_BACKUP_CODES_KEY = "mfa_new_backup_codes"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )


class SignInView(LoginView):
    """The password step. Somebody with a second factor (or who must have one) goes on to it."""

    def form_valid(self, form):
        response = super().form_valid(form)
        user = self.request.user
        if mfa_satisfied(user, self.request.session):
            return response
        return HttpResponseRedirect(second_factor_step_url(user, self.get_success_url()))


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """Second step of signing in: a code from the authenticator app, or a backup code."""
    next_url = safe_next(request)
    if verified_device(request.user, request.session) is not None:
        return HttpResponseRedirect(next_url)
    if not has_authenticator(request.user):
        return HttpResponseRedirect(second_factor_step_url(request.user, next_url))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = second_factor_verify(
                user=request.user,  # type: ignore[arg-type]
                code=form.cleaned_data["code"],
                request=request,
            )
        except ValidationError as error:
            form.add_error("code", error.message_dict["code"])
        else:
            session_verify(request, device)
            if isinstance(device, StaticDevice):
                left = backup_codes_left(request.user)  # type: ignore[arg-type]
                messages.warning(
                    request,
                    f"You signed in with a backup code; {left} left. Make new ones under "
                    "Two-factor authentication if you are running out.",
                )
            return HttpResponseRedirect(next_url)
    status = 400 if form.errors else 200
    return render(
        request, "registration/mfa_verify.html", {"form": form, "next": next_url}, status=status
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the QR code (or type the secret), confirm with a code."""
    user = request.user
    next_url = safe_next(request)
    if has_authenticator(user) and verified_device(user, request.session) is None:
        # Replacing the authenticator takes the current one: a password alone must not do it.
        return HttpResponseRedirect(second_factor_step_url(user, request.get_full_path()))
    device = totp_enrolment_start(user=user)  # type: ignore[arg-type]
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            enrolment = totp_enrolment_confirm(
                user=user,  # type: ignore[arg-type]
                code=form.cleaned_data["code"],
                request=request,
            )
        except ValidationError as error:
            form.add_error("code", error.message_dict["code"])
        else:
            session_verify(request, enrolment.device)
            request.session[NEW_BACKUP_CODES_KEY] = enrolment.backup_codes
            return HttpResponseRedirect(
                f"{reverse('mfa-backup-codes')}?{urlencode({'next': next_url})}"
            )
    context = {
        "form": form,
        "next": next_url,
        "qr_svg": qr_code_svg(device.config_url),
        "secret": manual_secret(device),
        "required": mfa_required(user),
        "replacing": has_authenticator(user),
    }
    status = 400 if form.errors else 200
    return render(request, "registration/mfa_enrol.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_backup_codes(request: HttpRequest) -> HttpResponse:
    """New backup codes, shown once; and making a new set (which ends the old one)."""
    user = request.user
    if request.method == "POST":
        if verified_device(user, request.session) is None:
            return HttpResponseRedirect(second_factor_step_url(user, reverse("mfa-settings")))
        request.session[NEW_BACKUP_CODES_KEY] = backup_codes_regenerate(
            user=user,  # type: ignore[arg-type]
            request=request,
        )
        return HttpResponseRedirect(reverse("mfa-backup-codes"))
    codes = request.session.pop(NEW_BACKUP_CODES_KEY, None)
    if not codes:
        return HttpResponseRedirect(reverse("mfa-settings"))
    return render(
        request,
        "registration/mfa_backup_codes.html",
        {"codes": [format_backup_code(code) for code in codes], "next": safe_next(request)},
    )


@never_cache
@login_required
@require_http_methods(["GET"])
def mfa_settings(request: HttpRequest) -> HttpResponse:
    """Where somebody sees their second factor and replaces it or their backup codes."""
    user = request.user
    return render(
        request,
        "registration/mfa_settings.html",
        {
            "has_authenticator": has_authenticator(user),
            "backup_codes_left": backup_codes_left(user),  # type: ignore[arg-type]
            "required": mfa_required(user),
        },
    )
