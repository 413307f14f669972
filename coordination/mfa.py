"""The second factor: an authenticator app (TOTP) with one-time backup codes as its fallback.

Built on django-otp. A session is *verified* once a confirmed device of its user accepted a code
(``django_otp.login`` stores the device in the session). Who must have a second factor
(``mfa_required``) and has none is sent to enrolment right after the password, and reaches nothing
else until a device is confirmed; who has one is asked for a code after the password, whether or
not their role requires it.

Enforced on every way in:

- pages and the session-authenticated API: ``SecondFactorMiddleware`` (redirect, or 403 JSON);
- the Django admin: ``VerifiedAdminSite`` admits verified sessions only;
- API tokens: ``POST /api/v1/auth/token/`` asks for ``otp`` (``coordination.api.TokenView``);
- WebSockets: the consumers call ``mfa_satisfied`` on connect and on every re-check.
"""

import math
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import DEVICE_ID_SESSION_KEY, verify_token
from django_otp import login as otp_login
from django_otp.admin import OTPAdminSite
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.views import APIView

from .models import User
from .roles import Role

# Roles whose holders steer the whole response or the platform: a stolen password of theirs must
# not be enough.
MFA_ROLES = frozenset({Role.STRATEGIC_COMMANDER, Role.NEUTRAL_COMMANDER, Role.ADMINISTRATOR})

SECOND_FACTOR_REQUIRED = (
    "Second factor required: finish signing in with a code from your authenticator app "
    "(or set one up) before using this session."
)
AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_CODES_NAME = "Backup codes"
# Pages the part-signed-in may still reach: the second-factor steps themselves, signing in and
# out, the one-tap acknowledgement links (authenticated by their own signed token, as they are
# for somebody with no session at all) and the load balancer's health check.
OPEN_URL_NAMES = frozenset(
    {"login", "logout", "mfa-verify", "mfa-enrol", "mfa-backup-codes", "ack", "health"}
)
TOTP_CODE = re.compile(r"^\d{6}$")
BACKUP_CODE_SHAPE = re.compile(r"^[a-z0-9]{1,16}$")


def _audit(*, action: str, user=None, request=None, detail: dict | None = None) -> None:
    from .audit import audit_record

    audit_record(action=action, user=user, request=request, detail=detail)


# --- who needs what ------------------------------------------------------------------------------


def mfa_required(user) -> bool:
    """Whether ``user`` must sign in with a second factor (and enrol one if they have none)."""
    if user is None or not user.is_authenticated:
        return False
    if settings.MFA_REQUIRED_FOR_ALL or user.is_superuser:
        return True
    return bool(user.roles & MFA_ROLES)


def has_authenticator(user) -> bool:
    """Whether ``user`` has a confirmed authenticator app (backup codes alone do not count)."""
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists()


def verified_device(user, session) -> Device | None:
    """The confirmed device of ``user`` that verified this session, if any."""
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if not persistent_id or user is None or not user.is_authenticated:
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    return device


def mfa_satisfied(user, session) -> bool:
    """Whether a signed-in ``user`` with this ``session`` may use the platform: the session was
    verified by a second factor, or the user needs none and has none. False for anonymous users.

    Reads the database: from async code call it through ``database_sync_to_async``.
    """
    if user is None or not user.is_authenticated:
        return False
    if verified_device(user, session) is not None:
        return True
    return not (mfa_required(user) or has_authenticator(user))


def _needs_step(user) -> bool:
    return mfa_required(user) or has_authenticator(user)


# --- enrolment and backup codes ------------------------------------------------------------------


def normalise_code(code: str) -> str:
    """Codes are typed with spaces or hyphens (``123 456``, ``abcd-efgh``): compare without."""
    return re.sub(r"[\s-]", "", code or "").lower()


def totp_enrolment_start(*, user: User) -> TOTPDevice:
    """The authenticator waiting to be confirmed by ``user``: the same one until it is, so a QR
    code scanned before a reload still matches."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).order_by("-pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    backup_codes: list[str]


def totp_enrolment_confirm(*, user: User, code: str, request=None) -> Enrolment:
    """Confirm the waiting authenticator with a code it shows now. It then replaces any earlier
    authenticator of the user, and a fresh set of backup codes replaces the old ones."""
    code = normalise_code(code)
    if not TOTP_CODE.match(code):
        raise ValidationError({"code": "Enter the 6-digit code your authenticator app shows."})
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user_id=user.pk, confirmed=False)
            .order_by("-pk")
            .first()
        )
        if device is None:
            raise ValidationError(
                {"code": "No authenticator is waiting to be confirmed: start again."}
            )
        allowed, throttle = device.verify_is_allowed()
        accepted = allowed and device.verify_token(code)
        backup_codes: list[str] = []
        if accepted:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user_id=user.pk).exclude(pk=device.pk).delete()
            backup_codes = _backup_codes_replace(user)
    if not accepted:
        # Outside the transaction: the throttling counter and the record must stay.
        _failure(user=user, request=request, factor="totp", stage="enrolment")
        raise ValidationError({"code": _refusal(allowed, throttle)})
    _audit(
        action="mfa.enrolled",
        user=user,
        request=request,
        detail={"device": device.persistent_id, "backup_codes": len(backup_codes)},
    )
    return Enrolment(device=device, backup_codes=backup_codes)


def backup_codes_regenerate(*, user: User, request=None) -> list[str]:
    """Replace every backup code of ``user`` with a fresh set, shown once."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        codes = _backup_codes_replace(user)
    _audit(
        action="mfa.enrolled",
        user=user,
        request=request,
        detail={"backup_codes": len(codes), "regenerated": True},
    )
    return codes


def _backup_codes_replace(user: User) -> list[str]:
    devices = list(StaticDevice.objects.filter(user_id=user.pk).order_by("pk"))
    if devices:
        device = devices[0]
        StaticDevice.objects.filter(pk__in=[d.pk for d in devices[1:]]).delete()
        device.token_set.all().delete()
        device.throttle_reset(commit=False)
        device.confirmed = True
        device.save()
    else:
        device = StaticDevice.objects.create(user=user, name=BACKUP_CODES_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.MFA_BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def backup_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count()


def format_backup_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}" if len(code) == 8 else code


# --- verification ------------------------------------------------------------------------------


def second_factor_verify(
    *, user: User, code: str, request: HttpRequest | None = None, field: str = "code"
) -> Device:
    """Check a code from the user's authenticator app, or one of their backup codes (used up).

    Raises ``ValidationError`` naming ``field`` for a missing, wrong or throttled code; a wrong one
    is recorded and signalled as a failed sign-in, so that lockout counts it.
    """
    code = normalise_code(code)
    if not code:
        raise ValidationError(
            {field: "Enter the code from your authenticator app, or one of your backup codes."}
        )
    devices: list[Device]
    if not BACKUP_CODE_SHAPE.match(code):
        devices, factor = [], "unknown"  # nothing issued looks like this: simply wrong
    elif TOTP_CODE.match(code):
        devices = list(TOTPDevice.objects.filter(user_id=user.pk, confirmed=True))
        factor = "totp"
    else:
        devices = list(StaticDevice.objects.filter(user_id=user.pk, confirmed=True))
        factor = "backup_code"
    allowed, throttle = True, None
    for device in devices:
        allowed, throttle = device.verify_is_allowed()
        if not allowed:
            break
        # django-otp locks the device row while checking, so a backup code works only once even
        # when two requests race with it.
        accepted = verify_token(user, device.persistent_id, code)
        if accepted is not None:
            _audit(
                action="mfa.verified",
                user=user,
                request=request,
                detail={"factor": factor, "device": accepted.persistent_id},
            )
            if factor == "backup_code":
                _audit(
                    action="mfa.backup_code_used",
                    user=user,
                    request=request,
                    detail={"left": backup_codes_left(user)},
                )
            return accepted
    _failure(user=user, request=request, factor=factor, stage="verification")
    raise ValidationError({field: _refusal(allowed, throttle)})


def _refusal(allowed: bool, throttle) -> str:
    if not allowed and throttle and throttle.get("locked_until"):
        wait = math.ceil((throttle["locked_until"] - timezone.now()).total_seconds())
        return f"Too many wrong codes: wait {max(wait, 1)} seconds and try again."
    return "That code is not valid. Check the time on your phone, or use a backup code."


def _failure(*, user: User, request, factor: str, stage: str) -> None:
    _audit(
        action="mfa.failed",
        user=user,
        request=request,
        detail={"factor": factor, "stage": stage},
    )
    django_request = getattr(request, "_request", request)
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.get_username()},
        request=django_request,
    )


def session_verify(request: HttpRequest, device: Device) -> None:
    """Mark the session verified by ``device``, with a new session key (a privilege change)."""
    request.session.cycle_key()
    otp_login(request, device)


# --- enrolment page helpers ----------------------------------------------------------------------


def qr_code_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code, drawn here: the secret never leaves the server."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    return image.to_string(encoding="unicode")


def manual_secret(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for typing into an app by hand."""
    from base64 import b32encode

    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def safe_next(request: HttpRequest, default: str = "") -> str:
    """Where to go after the second factor: the ``next`` given, if it is a page of this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default or reverse(settings.LOGIN_REDIRECT_URL)


def second_factor_step_url(user, next_url: str) -> str:
    """The page that finishes signing ``user`` in: verification, or enrolment if they have no
    authenticator yet."""
    name = "mfa-verify" if has_authenticator(user) else "mfa-enrol"
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


# --- enforcement -------------------------------------------------------------------------------


def _token_authorized(request: HttpRequest) -> bool:
    # A token is issued only after the second factor; the API then ignores the session.
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    return len(parts) >= 1 and parts[0].lower() == "token"


def _is_api(view_func) -> bool:
    view_class = getattr(view_func, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)


class SecondFactorMiddleware:
    """Keep a session whose second factor is outstanding to the second-factor pages.

    After ``OTPMiddleware``. Pages redirect to verification (or to enrolment, for somebody who must
    have a second factor and has none); the API answers 403 "second factor required" unless the
    request carries a token.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or user.is_verified():  # type: ignore[attr-defined]
            return None
        match = request.resolver_match
        if match is not None and match.url_name in OPEN_URL_NAMES and not match.namespace:
            return None
        if not _needs_step(user):
            return None
        if _is_api(view_func):
            if _token_authorized(request):
                return None
            return JsonResponse({"detail": SECOND_FACTOR_REQUIRED}, status=403)
        return HttpResponseRedirect(second_factor_step_url(user, request.get_full_path()))


class VerifiedAdminSite(OTPAdminSite):
    """The Django admin, for staff whose session a second factor verified. Signing in to it is
    the platform's own sign-in, so that there is one way in with one set of checks."""

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        if request.user.is_authenticated and not request.user.is_verified():
            return HttpResponseRedirect(second_factor_step_url(request.user, next_url))
        if not request.user.is_authenticated:
            return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
        return super().login(request, extra_context)
