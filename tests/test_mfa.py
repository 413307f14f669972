"""Two-factor authentication: enrolment by QR code, backup codes, the verification step after the
password, and enforcement on every way in (pages, the API by session and by token, the admin,
WebSockets) for the roles that need it, or for everyone when so configured."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from comms.consumers import CLOSE_UNAUTHENTICATED
from coordination.mfa import mfa_required, mfa_satisfied
from coordination.models import AuditEntry
from coordination.roles import Role

from .auth import authenticator_for, totp_now, verify_session
from .factories import UserFactory
from .live import connect, receive

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def sign_in_with_password(user, next_url: str = "") -> tuple[Client, object]:
    client = Client()
    url = reverse("login") + (f"?next={next_url}" if next_url else "")
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    return client, response


def actions_of(user) -> list[str]:
    return list(AuditEntry.objects.filter(username=user.username).values_list("action", flat=True))


def backup_codes_of(user) -> list[str]:
    return list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))


# --- who needs a second factor ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "superuser", "required"),
    [
        ([Role.STRATEGIC_COMMANDER], False, True),
        ([Role.NEUTRAL_COMMANDER], False, True),
        ([Role.ADMINISTRATOR], False, True),
        ([], True, True),
        ([Role.TACTICAL_COMMANDER], False, False),
        ([Role.LIAISON_OFFICER], False, False),
        ([Role.DUTY_OFFICER, Role.OBSERVER], False, False),
    ],
)
def test_the_roles_that_steer_the_response_need_a_second_factor(roles, superuser, required):
    user = UserFactory(roles=roles, is_superuser=superuser)
    assert mfa_required(user) is required


def test_everyone_needs_one_when_configured(settings, liaison):
    assert not mfa_required(liaison)
    settings.MFA_REQUIRED_FOR_ALL = True
    assert mfa_required(liaison)


# --- the password step --------------------------------------------------------------------------


def test_a_user_without_the_requirement_signs_in_with_the_password_alone(liaison):
    client, response = sign_in_with_password(liaison)

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("pages:incident-list")).status_code == 200
    assert client.get("/api/v1/me/").status_code == 200
    assert not TOTPDevice.objects.exists()


def test_a_commander_without_a_device_is_sent_to_enrolment_and_reaches_nothing_else(
    commander, incident
):
    client, response = sign_in_with_password(commander, next_url="/incidents/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa-enrol"))
    for page in ["/", "/incidents/", f"/incidents/{incident.pk}/", "/alerts/", "/rotas/"]:
        answer = client.get(page)
        assert answer.status_code == 302, page
        assert answer["Location"].startswith(reverse("mfa-enrol")), page
    api = client.get("/api/v1/me/")
    assert api.status_code == 403
    assert "Second factor required" in api.json()["detail"]
    assert client.get(f"/api/v1/incidents/{incident.pk}/decisions/").status_code == 403
    assert client.post("/api/v1/incidents/", {}).status_code == 403


def test_configurable_for_all_sends_a_liaison_to_enrolment(settings, liaison):
    settings.MFA_REQUIRED_FOR_ALL = True
    client, response = sign_in_with_password(liaison)

    assert response["Location"].startswith(reverse("mfa-enrol"))
    assert client.get("/incidents/")["Location"].startswith(reverse("mfa-enrol"))
    assert client.get("/api/v1/me/").status_code == 403


# --- enrolment ----------------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_and_the_secret_and_confirms_with_a_code(commander):
    client, _ = sign_in_with_password(commander)

    page = client.get(reverse("mfa-enrol"))
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r"<svg[^>]*>.*<path d=\"M", html, re.S), "an inline SVG QR code"
    device = TOTPDevice.objects.get(user=commander)
    assert not device.confirmed
    assert "otpauth://" not in html  # the URI is only inside the picture
    from base64 import b32encode

    assert b32encode(device.bin_key).decode()[:4] in html.replace(" ", "")
    assert client.get(reverse("mfa-enrol")).status_code == 200
    assert TOTPDevice.objects.filter(user=commander).count() == 1  # a reload keeps the same one

    wrong = client.post(reverse("mfa-enrol"), {"code": "000000"})
    assert wrong.status_code == 400
    assert "not valid" in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/incidents/").status_code == 302
    assert "mfa.failed" in actions_of(commander)

    with time_machine.travel(timezone.now() + timedelta(seconds=5), tick=True):
        confirmed = client.post(
            reverse("mfa-enrol") + "?next=/incidents/", {"code": totp_now(device)}
        )
        assert confirmed.status_code == 302
        assert confirmed["Location"].startswith(reverse("mfa-backup-codes"))
        device.refresh_from_db()
        assert device.confirmed

        codes_page = client.get(confirmed["Location"])
        assert codes_page.status_code == 200
        shown = re.findall(r"<code>([a-z2-7]{4}-[a-z2-7]{4})</code>", codes_page.content.decode())
        assert len(shown) == 10
        assert sorted(code.replace("-", "") for code in shown) == sorted(backup_codes_of(commander))
        assert 'href="/incidents/"' in codes_page.content.decode()
        # Shown once: going back shows them no more.
        assert client.get(reverse("mfa-backup-codes"))["Location"] == reverse("mfa-settings")

        assert client.get("/incidents/").status_code == 200
        assert client.get("/api/v1/me/").status_code == 200
    assert "mfa.enrolled" in actions_of(commander)


def test_a_password_alone_cannot_replace_an_existing_authenticator(commander):
    authenticator_for(commander)
    client, response = sign_in_with_password(commander)

    assert response["Location"].startswith(reverse("mfa-verify"))
    answer = client.get(reverse("mfa-enrol"))
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("mfa-verify"))
    assert TOTPDevice.objects.filter(user=commander).count() == 1


def test_backup_codes_can_be_made_anew_and_the_old_ones_stop_working(client, commander):
    client.force_login(commander)
    first = client.post(reverse("mfa-backup-codes"))
    assert first.status_code == 302
    old = backup_codes_of(commander)
    assert len(old) == 10
    client.get(reverse("mfa-backup-codes"))

    client.post(reverse("mfa-backup-codes"))
    new = backup_codes_of(commander)
    assert len(new) == 10 and not set(old) & set(new)


# --- the verification step ----------------------------------------------------------------------


def test_the_verification_step_accepts_the_authenticator_code(commander):
    device = authenticator_for(commander)
    client, response = sign_in_with_password(commander, next_url="/incidents/")

    assert response["Location"].startswith(reverse("mfa-verify"))
    assert client.get("/incidents/")["Location"].startswith(reverse("mfa-verify"))
    assert client.get("/api/v1/me/").status_code == 403
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()

    answer = client.post(reverse("mfa-verify"), {"code": totp_now(device), "next": "/incidents/"})

    assert answer.status_code == 302 and answer["Location"] == "/incidents/"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/incidents/").status_code == 200
    assert client.get("/api/v1/me/").status_code == 200
    assert "mfa.verified" in actions_of(commander)


def test_a_wrong_code_is_refused_and_recorded(commander):
    authenticator_for(commander)
    client, _ = sign_in_with_password(commander)

    answer = client.post(reverse("mfa-verify"), {"code": "123456"})

    assert answer.status_code == 400
    assert "not valid" in answer.content.decode()
    assert client.get("/incidents/").status_code == 302
    assert "mfa.failed" in actions_of(commander)


def test_a_next_to_another_site_is_not_followed(commander):
    device = authenticator_for(commander)
    client, _ = sign_in_with_password(commander)

    answer = client.post(
        reverse("mfa-verify"), {"code": totp_now(device), "next": "https://evil.example/"}
    )

    assert answer["Location"] == reverse("home")


def test_a_backup_code_works_once(commander):
    authenticator_for(commander)
    signed = Client()
    signed.force_login(commander)
    verify_session(signed, commander)
    signed.post(reverse("mfa-backup-codes"))
    code = backup_codes_of(commander)[0]

    first, _ = sign_in_with_password(commander)
    answer = first.post(reverse("mfa-verify"), {"code": f"{code[:4]}-{code[4:].upper()}"})
    assert answer.status_code == 302
    assert first.get("/incidents/").status_code == 200
    assert code not in backup_codes_of(commander)
    assert {"mfa.verified", "mfa.backup_code_used"} <= set(actions_of(commander))

    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        second, _ = sign_in_with_password(commander)
        again = second.post(reverse("mfa-verify"), {"code": code})
        assert again.status_code == 400
        assert second.get("/incidents/").status_code == 302


def test_a_user_who_chose_a_second_factor_is_asked_for_it(liaison):
    device = authenticator_for(liaison)
    client, response = sign_in_with_password(liaison)

    assert response["Location"].startswith(reverse("mfa-verify"))
    assert client.get("/incidents/").status_code == 302
    client.post(reverse("mfa-verify"), {"code": totp_now(device)})
    assert client.get("/incidents/").status_code == 200


def test_repeated_wrong_codes_are_throttled(commander):
    device = authenticator_for(commander)
    client, _ = sign_in_with_password(commander)
    for _ in range(3):
        client.post(reverse("mfa-verify"), {"code": "000000"})

    answer = client.post(reverse("mfa-verify"), {"code": totp_now(device)})

    assert answer.status_code == 400
    assert "Too many wrong codes" in answer.content.decode()


# --- the API token ------------------------------------------------------------------------------


def token_request(api, user, **extra):
    return api().post(
        "/api/v1/auth/token/", {"username": user.username, "password": PASSWORD, **extra}
    )


def test_a_token_needs_the_code_of_an_account_with_a_second_factor(api, commander):
    device = authenticator_for(commander)

    missing = token_request(api, commander)
    assert missing.status_code == 400 and "otp" in missing.data
    wrong = token_request(api, commander, otp="000000")
    assert wrong.status_code == 400 and "otp" in wrong.data
    assert not Token.objects.exists()
    assert "mfa.failed" in actions_of(commander)

    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        issued = token_request(api, commander, otp=totp_now(device))
    assert issued.status_code == 200
    assert issued.data["token"] == Token.objects.get(user=commander).key


def test_a_token_can_be_had_with_a_backup_code_once(api, commander):
    authenticator_for(commander)
    signed = Client()
    signed.force_login(commander)
    verify_session(signed, commander)
    signed.post(reverse("mfa-backup-codes"))
    code = backup_codes_of(commander)[0]

    assert token_request(api, commander, otp=code).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        assert token_request(api, commander, otp=code).status_code == 400


def test_an_account_that_must_enrol_first_gets_no_token(api, commander):
    refused = token_request(api, commander, otp="123456")

    assert refused.status_code == 403
    assert "two-factor" in refused.data["detail"]
    assert not Token.objects.exists()


def test_a_token_needs_no_code_from_an_account_without_the_requirement(api, liaison):
    assert token_request(api, liaison).status_code == 200


def test_configurable_for_all_covers_token_issue(api, settings, liaison):
    settings.MFA_REQUIRED_FOR_ALL = True
    assert token_request(api, liaison).status_code == 403


def test_a_token_works_although_the_same_client_holds_a_half_signed_in_session(api, commander):
    device = authenticator_for(commander)
    key = token_request(api, commander, otp=totp_now(device)).data["token"]
    client, _ = sign_in_with_password(commander)

    assert client.get("/api/v1/me/").status_code == 403
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


# --- the admin ----------------------------------------------------------------------------------


def test_the_admin_needs_a_verified_session(commander):
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True, roles=[])
    device = authenticator_for(root)

    anonymous = Client().get("/admin/")
    assert anonymous.status_code == 302
    login = Client().get(anonymous["Location"])
    assert login["Location"].startswith(reverse("login"))

    client, response = sign_in_with_password(root, next_url="/admin/")
    assert response["Location"].startswith(reverse("mfa-verify"))
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/coordination/user/").status_code == 302

    client.post(reverse("mfa-verify"), {"code": totp_now(device)})
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/coordination/user/").status_code == 200


def test_staff_without_the_requirement_still_need_a_second_factor_for_the_admin():
    staff = UserFactory(is_staff=True, roles=[Role.LIAISON_OFFICER])
    client, response = sign_in_with_password(staff)
    assert response["Location"] == reverse("home")  # the platform itself is open to them

    answer = client.get("/admin/", follow=True)
    assert answer.redirect_chain[-1][0].startswith(reverse("mfa-enrol"))


# --- WebSockets ---------------------------------------------------------------------------------


def password_only_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_runtime")
async def test_a_websocket_needs_the_second_factor(incident, commander):
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(password_only_cookie)(commander)
    headers = [(b"cookie", cookie), (b"origin", b"http://testserver"), (b"host", b"testserver")]

    for path in [f"/ws/incidents/{incident.pk}/", "/ws/me/"]:
        communicator, _ = await connect(path, headers)
        output = await communicator.receive_output(timeout=5)
        assert output["type"] == "websocket.close" and output["code"] == CLOSE_UNAUTHENTICATED
        await communicator.disconnect()

    from .live import headers_for

    communicator, connected = await connect(
        f"/ws/incidents/{incident.pk}/", await headers_for(commander)
    )
    assert connected
    assert (await receive(communicator))["type"] == "hello"
    await communicator.disconnect()


def test_mfa_satisfied_is_what_the_consumers_ask(commander, liaison):
    client = Client()
    client.force_login(commander)
    assert not mfa_satisfied(commander, client.session)
    verify_session(client, commander)
    assert mfa_satisfied(commander, client.session)

    other = Client()
    other.force_login(liaison)
    assert mfa_satisfied(liaison, other.session)  # needs none, has none

    # A device of somebody else in the session does not count.
    chair = UserFactory(roles=[Role.NEUTRAL_COMMANDER])
    borrowed = Client()
    borrowed.force_login(chair)
    session = borrowed.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_for(commander).persistent_id
    session.save()
    assert not mfa_satisfied(chair, borrowed.session)


# --- the demo -----------------------------------------------------------------------------------


def test_the_demo_prints_the_authenticator_secret_its_commanders_sign_in_with():
    import io
    from base64 import b32decode

    from django.core.management import call_command

    from comms.management.commands.seed_demo import DEMO_PASSWORD, DEMO_TOTP_SECRET

    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    call_command("seed_demo", stdout=io.StringIO())  # idempotent: still one authenticator each
    printed = output.getvalue()
    assert DEMO_TOTP_SECRET in printed
    for username in ["gold", "chair", "cityadmin", "platform"]:
        assert username in printed.split("Two-factor sign-in for", 1)[1].split(":", 1)[0]
        assert TOTPDevice.objects.filter(user__username=username, confirmed=True).count() == 1
    assert not TOTPDevice.objects.filter(user__username="liaison-fire").exists()

    # What somebody following the printed instructions types works.
    app = TOTPDevice(key=b32decode(DEMO_TOTP_SECRET).hex())
    client = Client()
    client.post(reverse("login"), {"username": "gold", "password": DEMO_PASSWORD})
    answer = client.post(reverse("mfa-verify"), {"code": totp_now(app)})
    assert answer.status_code == 302
    assert client.get("/incidents/").status_code == 200


# --- bad input and the administrator's reset ----------------------------------------------------


@pytest.mark.parametrize("otp", ["", "12345", "1234567", "abc\x00def", "' OR 1=1 --", "ü" * 20])
def test_odd_codes_get_a_clear_400_naming_otp(api, commander, otp):
    authenticator_for(commander)
    response = token_request(api, commander, otp=otp)
    assert response.status_code == 400 and "otp" in response.data


@pytest.mark.parametrize("code", ["12345", "abc\x00def", "x" * 40, "' OR 1=1 --"])
def test_odd_codes_on_the_verification_page_are_refused(commander, code):
    authenticator_for(commander)
    client, _ = sign_in_with_password(commander)
    answer = client.post(reverse("mfa-verify"), {"code": code})
    assert answer.status_code == 400
    assert client.get("/incidents/").status_code == 302


def test_an_administrator_resets_a_lost_factor_without_seeing_its_secret(client, commander):
    device = authenticator_for(commander)
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True, roles=[])
    client.force_login(root)

    page = client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert page.status_code == 200
    assert device.key not in page.content.decode()
    deleted = client.post(
        reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not TOTPDevice.objects.filter(user=commander).exists()
    # Next time the commander signs in, enrolment comes after the password.
    _, response = sign_in_with_password(commander)
    assert response["Location"].startswith(reverse("mfa-enrol"))


@pytest.mark.django_db(transaction=True)
def test_a_backup_code_raced_by_two_sign_ins_works_for_one_only(commander):
    import threading

    from django.core.exceptions import ValidationError
    from django.db import connections

    from coordination.mfa import backup_codes_regenerate, second_factor_verify

    authenticator_for(commander)
    code = backup_codes_regenerate(user=commander)[0]
    results: list[str] = []
    start = threading.Barrier(2)

    def attempt() -> None:
        try:
            start.wait()
            second_factor_verify(user=commander, code=code)
            results.append("accepted")
        except ValidationError:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == ["accepted", "refused"]
    assert code not in backup_codes_of(commander)
