"""The "How to reach me" page: people add, switch off and remove their own contact methods."""

import pytest

from comms.models import ContactMethod
from comms.services import contact_method_create

from .factories import row_counts

pytestmark = pytest.mark.django_db

URL = "/me/contact-methods/"


@pytest.fixture
def client_of(client):
    def signed_in(user):
        client.force_login(user)
        return client

    return signed_in


def test_signed_out_people_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_page_lists_only_the_persons_own_methods(client_of, liaison, commander):
    contact_method_create(user=liaison, owner=liaison, kind="sms", address="+46701234567")
    contact_method_create(user=commander, owner=commander, kind="sms", address="+46709999999")
    body = client_of(liaison).get(URL).content.decode()
    assert "+46701234567" in body
    assert "+46709999999" not in body


def test_the_page_is_never_cached(client_of, liaison):
    assert client_of(liaison).get(URL)["Cache-Control"] == "no-store"


def test_adding_a_mobile_number_stores_it_in_international_form(client_of, liaison):
    response = client_of(liaison).post(URL, {"kind": "sms", "address": "+46 70-123 45 67"})
    assert response.status_code == 200
    assert "Added: SMS +46701234567" in response.content.decode()
    assert list(ContactMethod.objects.filter(user=liaison).values_list("address", flat=True)) == [
        "+46701234567"
    ]


def test_a_bad_number_is_refused_next_to_the_field_and_nothing_is_written(client_of, liaison):
    before = row_counts()
    response = client_of(liaison).post(URL, {"kind": "sms", "address": "call me maybe"})
    assert response.status_code == 400
    form = response.context["form"]
    assert "address" in form.errors
    assert row_counts() == before


def test_an_unknown_kind_is_refused_by_the_form(client_of, liaison):
    response = client_of(liaison).post(URL, {"kind": "pigeon", "address": "loft 3"})
    assert response.status_code == 400
    assert "kind" in response.context["form"].errors
    assert not ContactMethod.objects.filter(user=liaison).exists()


def test_a_webhooks_signing_secret_is_shown_once_only(client_of, liaison):
    client = client_of(liaison)
    response = client.post(URL, {"kind": "webhook", "address": "https://pager.example.org/h"})
    method = ContactMethod.objects.get(user=liaison)
    assert method.signing_secret
    assert method.signing_secret in response.content.decode()
    assert method.signing_secret not in client.get(URL).content.decode()


def test_switching_off_on_and_removing(client_of, liaison):
    method = contact_method_create(user=liaison, owner=liaison, kind="email", address="a@b.se")
    client = client_of(liaison)
    change = f"{URL}{method.pk}/"
    assert client.post(change, {"change": "off"}).status_code == 302
    method.refresh_from_db()
    assert method.is_active is False
    client.post(change, {"change": "on"})
    method.refresh_from_db()
    assert method.is_active is True
    client.post(change, {"change": "remove"})
    assert not ContactMethod.objects.filter(pk=method.pk).exists()


def test_an_unknown_change_is_refused(client_of, liaison):
    method = contact_method_create(user=liaison, owner=liaison, kind="email", address="a@b.se")
    response = client_of(liaison).post(f"{URL}{method.pk}/", {"change": "explode"})
    assert response.status_code == 400
    assert ContactMethod.objects.filter(pk=method.pk, is_active=True).exists()


def test_someone_elses_method_cannot_be_changed(client_of, liaison, commander):
    method = contact_method_create(user=commander, owner=commander, kind="email", address="c@d.se")
    response = client_of(liaison).post(f"{URL}{method.pk}/", {"change": "remove"})
    assert response.status_code == 404
    assert ContactMethod.objects.filter(pk=method.pk).exists()
