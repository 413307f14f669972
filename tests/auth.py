"""Signing in as the tests need: with the password and, where the account has or needs one, a
verified second factor (as a person finishing ``/accounts/mfa/verify/`` would be).

``client`` (``tests.conftest``) is a ``SignedInClient``: its ``force_login`` leaves a session that
is fully signed in. Tests of the second factor itself use Django's plain ``Client``.
"""

import time

from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from coordination.mfa import has_authenticator, mfa_required


def authenticator_for(user) -> TOTPDevice:
    """The user's confirmed authenticator app, set up now if they have none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device


def totp_now(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code the device's app shows now (or ``steps_ahead`` periods later)."""
    clock = TOTP(device.bin_key, device.step, device.t0, device.digits)
    clock.time = time.time() + steps_ahead * device.step
    return f"{clock.token():0{device.digits}d}"


def verify_session(client: Client | AsyncClient, user) -> None:
    """Mark the client's session as verified by the user's authenticator (made if missing)."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_for(user).persistent_id
    session.save()


class SignedInClient(Client):
    """A test client whose ``force_login`` also passes the second factor where one applies."""

    def force_login(self, user, backend=None) -> None:
        super().force_login(user, backend)
        if mfa_required(user) or has_authenticator(user):
            verify_session(self, user)


class SignedInAsyncClient(AsyncClient):
    """The async test client, likewise signed in fully by ``aforce_login``."""

    async def aforce_login(self, user, backend=None) -> None:
        await super().aforce_login(user, backend)
        if await sync_to_async(_needs_second_factor)(user):
            await sync_to_async(verify_session)(self, user)


def _needs_second_factor(user) -> bool:
    return mfa_required(user) or has_authenticator(user)


def signed_in_client(user) -> SignedInClient:
    client = SignedInClient()
    client.force_login(user)
    return client


def browser_sign_in(page, base_url: str, user, password: str) -> None:
    """Sign in through the pages as a person would: the password, then, for somebody who needs
    one, the code of their authenticator app (set up beforehand if they have none)."""
    device = authenticator_for(user) if _needs_second_factor(user) else None
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    if device is not None:
        page.wait_for_url("**/accounts/mfa/verify/**")
        page.fill("#id_code", totp_now(device))
        page.click("main button[type=submit]")
