"""Contact methods: people manage their own ways to be alerted; city administrators, others."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from comms.models import ContactMethod
from comms.services import (
    MAX_CONTACT_METHODS,
    contact_method_create,
    contact_method_delete,
    contact_method_update,
)
from coordination.roles import Role

from .factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/me/contact-methods/"


def add(client, kind, address, **extra):
    return client.post(URL, {"kind": kind, "address": address, **extra})


@pytest.mark.parametrize(
    ("kind", "given", "stored"),
    [
        ("email", "duty.officer@polisen.example", "duty.officer@polisen.example"),
        ("sms", "+46701234567", "+46701234567"),
        ("sms", "+46 70-123 45 67", "+46701234567"),
        ("sms", "0046 (70) 123.45.67", "+46701234567"),
        ("webhook", "https://pager.example.org/hooks/ctpn?team=gold", None),
        ("webhook", "http://127.0.0.1:8099/hook", None),
        ("webhook", "http://localhost/hook", None),
        ("webhook", "http://[::1]:9000/hook", None),
    ],
)
def test_a_person_adds_a_valid_contact_method(api, liaison, kind, given, stored):
    response = add(api(liaison), kind, given, label="work")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["address"] == (stored or given)
    assert body["label"] == "work" and body["is_active"] is True
    assert ContactMethod.objects.get(pk=body["id"]).user == liaison


def test_a_webhook_gets_a_server_generated_secret_shown_once(api, liaison):
    client = api(liaison)
    created = add(client, "webhook", "https://pager.example.org/hook").json()
    secret = created["signing_secret"]
    assert len(secret) == 64 and int(secret, 16) >= 0  # 256 bits, hex
    assert ContactMethod.objects.get(pk=created["id"]).signing_secret == secret
    # Never again in a read.
    listed = client.get(URL).json()
    assert "signing_secret" not in listed[0] and listed[0]["has_signing_secret"] is True
    assert "signing_secret" not in client.get(f"{URL}{created['id']}/").json()

    rotated = client.post(f"{URL}{created['id']}/rotate-secret/").json()
    assert rotated["signing_secret"] != secret
    other = add(client, "webhook", "https://pager.example.org/other").json()
    assert other["signing_secret"] not in (secret, rotated["signing_secret"])


def test_a_secret_given_by_the_client_is_ignored(api, liaison):
    response = add(api(liaison), "webhook", "https://x.example.org/", signing_secret="chosen")
    assert response.status_code == 201
    assert response.json()["signing_secret"] != "chosen"


def test_only_webhooks_have_secrets(api, liaison):
    client = api(liaison)
    email = add(client, "email", "a@example.org").json()
    assert email["signing_secret"] == "" and email["has_signing_secret"] is False
    response = client.post(f"{URL}{email['id']}/rotate-secret/")
    assert response.status_code == 400 and "kind" in response.json()


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("email", "not-an-address"),
        ("email", "a@b"),
        ("email", ""),
        ("sms", "0701234567"),  # national form: no country code
        ("sms", "+0701234567"),
        ("sms", "+46 70 CALL ME"),
        ("sms", "+4670123456789012"),  # 16 digits: longer than E.164 allows
        ("sms", "+46123"),
        ("webhook", "http://pager.example.org/hook"),  # plain http off this machine
        ("webhook", "http://10.0.0.5/hook"),
        ("webhook", "ftp://pager.example.org/"),
        ("webhook", "javascript:alert(1)"),
        ("webhook", "https://"),
        ("webhook", "https://user:pass@pager.example.org/"),
        ("webhook", "https://pager.example.org:99999/"),
        ("webhook", "https://pager.example.org/a b"),
        ("webhook", "https://pager.example.org/" + "a" * 2000),
    ],
)
def test_a_bad_address_answers_400_naming_the_address(api, liaison, kind, address):
    response = add(api(liaison), kind, address)
    assert response.status_code == 400
    assert "address" in response.json(), response.json()
    assert not ContactMethod.objects.exists()


def test_an_unknown_kind_answers_400_naming_the_kind(api, liaison):
    response = add(api(liaison), "pigeon", "loft 3")
    assert response.status_code == 400 and "kind" in response.json()


def test_http_to_loopback_is_refused_where_settings_say_so(api, liaison, settings):
    settings.ALERTING_WEBHOOK_HTTP_LOOPBACK = False
    response = add(api(liaison), "webhook", "http://127.0.0.1:8099/hook")
    assert response.status_code == 400 and "address" in response.json()


def test_the_same_address_twice_is_refused(api, liaison):
    client = api(liaison)
    assert add(client, "email", "Gold@Example.org").status_code == 201
    response = add(client, "email", "gold@example.org")
    assert response.status_code == 400 and "address" in response.json()
    # The same address as another kind is a different method.
    assert add(client, "webhook", "https://example.org/").status_code == 201
    # A URL's path is case-sensitive: another case is another hook; the same one is refused.
    assert add(client, "webhook", "https://example.org/Hook").status_code == 201
    assert add(client, "webhook", "https://example.org/hook").status_code == 201
    assert add(client, "webhook", "https://example.org/hook").status_code == 400


def test_there_is_a_limit_per_person(liaison):
    for n in range(MAX_CONTACT_METHODS):
        contact_method_create(user=liaison, owner=liaison, kind="email", address=f"a{n}@x.org")
    with pytest.raises(ValidationError) as refused:
        contact_method_create(user=liaison, owner=liaison, kind="email", address="last@x.org")
    assert "non_field_errors" in refused.value.message_dict


def test_a_person_switches_a_method_off_relabels_and_removes_it(api, liaison):
    client = api(liaison)
    created = add(client, "sms", "+46701234567").json()
    patched = client.patch(f"{URL}{created['id']}/", {"is_active": False, "label": "private"})
    assert patched.status_code == 200
    assert (patched.json()["is_active"], patched.json()["label"]) == (False, "private")
    assert client.patch(f"{URL}{created['id']}/", {}).status_code == 400
    assert client.patch(f"{URL}{created['id']}/", {"is_active": "maybe"}).status_code == 400
    assert client.delete(f"{URL}{created['id']}/").status_code == 204
    assert not ContactMethod.objects.exists()


def test_nobody_sees_or_changes_anothers_methods_through_me(api, liaison, administrator):
    theirs = contact_method_create(
        user=liaison, owner=liaison, kind="email", address="fire@example.org"
    )
    client = api(administrator)
    # Even an administrator, who may manage them, sees only their own under "me".
    assert client.get(URL).json() == []
    assert client.get(f"{URL}{theirs.pk}/").status_code == 404
    assert client.patch(f"{URL}{theirs.pk}/", {"label": "x"}).status_code == 404
    assert client.delete(f"{URL}{theirs.pk}/").status_code == 404
    assert client.post(f"{URL}{theirs.pk}/rotate-secret/").status_code == 404
    assert ContactMethod.objects.filter(pk=theirs.pk).exists()


def test_visibility_own_for_everyone_and_the_citys_for_administrators(
    liaison, administrator, observer, oslo_police
):
    mine = contact_method_create(user=liaison, owner=liaison, kind="email", address="l@x.org")
    stranger = UserFactory(agency=oslo_police)
    abroad = contact_method_create(user=stranger, owner=stranger, kind="email", address="o@x.org")

    assert list(ContactMethod.objects.visible_to(liaison)) == [mine]
    assert list(ContactMethod.objects.visible_to(observer)) == []
    assert set(ContactMethod.objects.visible_to(administrator)) == {mine}
    assert abroad not in ContactMethod.objects.visible_to(administrator)


def test_an_administrator_manages_the_methods_of_people_of_their_city(
    administrator, liaison, oslo_police
):
    method = contact_method_create(
        user=administrator, owner=liaison, kind="sms", address="+46701234567"
    )
    assert method.user == liaison
    contact_method_update(user=administrator, method_id=method.pk, is_active=False)
    contact_method_delete(user=administrator, method_id=method.pk)
    assert not ContactMethod.objects.exists()

    stranger = UserFactory(agency=oslo_police)
    with pytest.raises(PermissionDenied):
        contact_method_create(user=administrator, owner=stranger, kind="sms", address="+4791234567")


def test_a_colleague_cannot_add_methods_for_someone_else(liaison, observer):
    with pytest.raises(PermissionDenied):
        contact_method_create(user=observer, owner=liaison, kind="email", address="x@example.org")
    duty = UserFactory(agency=liaison.agency, roles=[Role.DUTY_OFFICER])
    with pytest.raises(PermissionDenied):
        contact_method_create(user=duty, owner=liaison, kind="email", address="x@example.org")


ADMIN_URL = "/api/v1/contact-methods/"


def test_administrators_manage_the_citys_methods_over_the_api(
    api, administrator, liaison, oslo_police
):
    client = api(administrator)
    created = client.post(
        ADMIN_URL, {"user": liaison.pk, "kind": "sms", "address": "+46 70 174 06 05"}
    )
    assert created.status_code == 201, created.json()
    assert ContactMethod.objects.get(pk=created.json()["id"]).user == liaison
    listed = client.get(ADMIN_URL, {"user": liaison.pk}).json()["results"]
    assert [(m["user"], m["address"]) for m in listed] == [(liaison.pk, "+46701740605")]
    method_url = f"{ADMIN_URL}{created.json()['id']}/"
    assert client.patch(method_url, {"is_active": False}).json()["is_active"] is False
    assert client.delete(method_url).status_code == 204

    stranger = UserFactory(agency=oslo_police)
    abroad = contact_method_create(user=stranger, owner=stranger, kind="email", address="o@x.org")
    refused = client.post(ADMIN_URL, {"user": stranger.pk, "kind": "email", "address": "a@x.org"})
    assert refused.status_code == 400 and "user" in refused.json()
    assert client.get(f"{ADMIN_URL}{abroad.pk}/").status_code == 404
    assert client.delete(f"{ADMIN_URL}{abroad.pk}/").status_code == 404


def test_the_citys_methods_are_for_administrators_only(api, liaison, observer):
    contact_method_create(user=observer, owner=observer, kind="email", address="o@x.org")
    client = api(liaison)
    assert client.get(ADMIN_URL).status_code == 403
    body = {"user": observer.pk, "kind": "email", "address": "x@x.org"}
    assert client.post(ADMIN_URL, body).status_code == 403
    assert ContactMethod.objects.count() == 1
