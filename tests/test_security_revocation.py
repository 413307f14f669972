"""Deactivating a person, or a password change, ends their sessions and API tokens at once."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Max
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from comms.consumers import CLOSE_UNAUTHENTICATED
from coordination.models import AuditEntry, User
from coordination.services import user_deactivate, user_password_change

from .auth import signed_in_client
from .factories import UserFactory
from .live import connect, headers_for, receive

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a long and unusual passphrase 42"


def sessions_of(user) -> int:
    return sum(
        1
        for session in Session.objects.all()
        if session.get_decoded().get(SESSION_KEY) == str(user.pk)
    )


def browser_of(user) -> Client:
    return signed_in_client(user)  # with the second factor passed where the user needs one


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def audit_mark() -> int:
    # Audit entries outlive a test's rollback: a test counts only its own.
    return AuditEntry.objects.aggregate(Max("sequence"))["sequence__max"] or 0


@pytest.mark.django_db
def test_deactivation_ends_every_session_and_token(administrator, outsider, liaison):
    laptop, phone = browser_of(outsider), browser_of(outsider)
    integration = token_client(outsider)
    bystander = browser_of(liaison)
    assert laptop.get("/api/v1/me/").status_code == 200
    assert integration.get("/api/v1/me/").status_code == 200
    before = audit_mark()

    user_deactivate(user=administrator, target=outsider)

    assert sessions_of(outsider) == 0
    assert not Token.objects.filter(user=outsider).exists()
    assert laptop.get("/api/v1/me/").status_code == 401
    assert phone.get("/incidents/").status_code == 302
    assert integration.get("/api/v1/me/").status_code == 401
    assert bystander.get("/api/v1/me/").status_code == 200
    outsider.refresh_from_db()
    assert not outsider.is_active
    entry = AuditEntry.objects.get(action="user.deactivated", sequence__gt=before)
    assert entry.user_id == administrator.pk
    assert entry.detail == {"sessions": 2, "tokens": 1}


@pytest.mark.django_db
def test_a_deactivated_person_cannot_sign_in_again(administrator, outsider):
    user_deactivate(user=administrator, target=outsider)
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": outsider.username, "password": PASSWORD}
    )
    assert response.status_code == 400
    page = Client().post("/accounts/login/", {"username": outsider.username, "password": PASSWORD})
    assert page.status_code == 200
    assert "_auth_user_id" not in page.wsgi_request.session


@pytest.mark.django_db
def test_only_administrators_of_the_city_deactivate_and_never_themselves(
    administrator, outsider, liaison, oslo_police
):
    with pytest.raises(PermissionDenied):
        user_deactivate(user=liaison, target=outsider)
    with pytest.raises(ValidationError) as refused:
        user_deactivate(user=administrator, target=administrator)
    assert "user" in refused.value.message_dict
    foreigner = UserFactory(agency=oslo_police)
    with pytest.raises(PermissionDenied):
        user_deactivate(user=administrator, target=foreigner)
    assert User.objects.filter(is_active=False).count() == 0


@pytest.mark.django_db
def test_the_api_deactivates_for_administrators(api, administrator, outsider, liaison):
    integration = token_client(outsider)

    response = api(administrator).post(f"/api/v1/users/{outsider.pk}/deactivate/")

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert integration.get("/api/v1/me/").status_code == 401
    assert api(liaison).post(f"/api/v1/users/{administrator.pk}/deactivate/").status_code == 403
    own = api(administrator).post(f"/api/v1/users/{administrator.pk}/deactivate/")
    assert own.status_code == 400
    assert "user" in own.json()
    assert api(administrator).post("/api/v1/users/999999/deactivate/").status_code == 404


@pytest.mark.django_db
def test_changing_ones_password_keeps_this_session_and_ends_the_others(liaison):
    here, elsewhere = browser_of(liaison), browser_of(liaison)
    integration = token_client(liaison)
    before = audit_mark()

    response = here.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    assert here.get("/api/v1/me/").status_code == 200
    assert elsewhere.get("/api/v1/me/").status_code == 401
    assert integration.get("/api/v1/me/").status_code == 401
    assert sessions_of(liaison) == 1
    liaison.refresh_from_db()
    assert liaison.check_password(NEW_PASSWORD)
    entry = AuditEntry.objects.get(action="user.password_changed", sequence__gt=before)
    assert entry.detail == {"sessions": 1, "tokens": 1}


@pytest.mark.django_db
def test_a_refused_password_change_changes_nothing(liaison):
    here, elsewhere = browser_of(liaison), browser_of(liaison)

    response = here.post(
        "/accounts/password_change/",
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert elsewhere.get("/api/v1/me/").status_code == 200
    with pytest.raises(ValidationError) as weak:
        user_password_change(user=liaison, target=liaison, password="12345")
    assert "password" in weak.value.message_dict
    assert sessions_of(liaison) == 2


@pytest.mark.django_db
def test_another_persons_password_is_set_by_administrators_only(administrator, outsider, liaison):
    with pytest.raises(PermissionDenied):
        user_password_change(user=liaison, target=outsider, password=NEW_PASSWORD)
    elsewhere = browser_of(outsider)
    user_password_change(user=administrator, target=outsider, password=NEW_PASSWORD)
    assert elsewhere.get("/api/v1/me/").status_code == 401


@pytest.fixture
def admin_browser(police):
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    return root, browser_of(root)


@pytest.mark.django_db
def test_the_admin_action_deactivates_and_signs_out(admin_browser, outsider):
    _, client = admin_browser
    elsewhere = browser_of(outsider)
    response = client.post(
        "/admin/coordination/user/",
        {"action": "deactivate", "_selected_action": [outsider.pk]},
        follow=True,
    )
    assert b"Deactivated 1 account" in response.content
    assert elsewhere.get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_the_admin_password_change_signs_out_everywhere_else(admin_browser, outsider):
    _, client = admin_browser
    elsewhere = browser_of(outsider)
    integration = token_client(outsider)
    response = client.post(
        f"/admin/coordination/user/{outsider.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302
    assert elsewhere.get("/api/v1/me/").status_code == 401
    assert integration.get("/api/v1/me/").status_code == 401
    assert client.get("/admin/").status_code == 200  # the administrator's own session stays


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_runtime")
async def test_an_open_dashboard_closes_when_its_person_is_deactivated(
    incident, liaison, administrator, settings
):
    settings.LIVE_REVALIDATE_SECONDS = 1
    communicator, connected = await connect(
        f"/ws/incidents/{incident.pk}/", await headers_for(liaison)
    )
    assert connected
    assert (await receive(communicator))["type"] == "hello"

    await database_sync_to_async(user_deactivate)(user=administrator, target=liaison)

    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    assert output.get("code") == CLOSE_UNAUTHENTICATED


@pytest.mark.django_db
def test_unticking_active_on_the_admin_form_signs_out_everywhere(outsider, rf):
    from types import SimpleNamespace

    from django.contrib import admin as django_admin

    elsewhere = browser_of(outsider)
    integration = token_client(outsider)
    model_admin = django_admin.site._registry[User]
    outsider.is_active = False

    model_admin.save_model(
        rf.post("/"), outsider, SimpleNamespace(changed_data=["is_active"]), change=True
    )

    assert elsewhere.get("/api/v1/me/").status_code == 401
    assert integration.get("/api/v1/me/").status_code == 401
    assert sessions_of(outsider) == 0
