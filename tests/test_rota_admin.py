"""The admin lists rotas, cover, contact methods and escalation; policies are saved through the
service, so the admin refuses what the API would."""

import pytest
from django.contrib import admin
from django.urls import reverse

from comms.models import EscalationPolicy, EscalationStep, ResponderGroup
from comms.services import contact_method_create

from .factories import (
    ResponderGroupFactory,
    RotaFactory,
    RotaOverrideFactory,
    ShiftFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    superuser = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    client.force_login(superuser)
    return client


def test_every_comms_model_is_listed(superuser_client, police, liaison):
    rota = RotaFactory(agency=police)
    ShiftFactory(rota=rota)
    RotaOverrideFactory(rota=rota)
    ResponderGroupFactory(agency=police)
    contact_method_create(user=liaison, owner=liaison, kind="webhook", address="https://x.org/")
    ours = [m for m in admin.site._registry if m._meta.app_label == "comms"]
    assert {m.__name__ for m in ours} >= {
        "Rota",
        "Shift",
        "RotaOverride",
        "ContactMethod",
        "ResponderGroup",
        "EscalationPolicy",
    }
    for model in ours:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert superuser_client.get(changelist).status_code == 200, meta.label
        instance = model.objects.first()
        if instance is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
            assert superuser_client.get(change).status_code == 200, meta.label


def test_the_admin_never_shows_a_webhook_secret(superuser_client, liaison):
    method = contact_method_create(
        user=liaison, owner=liaison, kind="webhook", address="https://x.org/"
    )
    for url in (
        reverse("admin:comms_contactmethod_changelist"),
        reverse("admin:comms_contactmethod_change", args=[method.pk]),
    ):
        assert method.signing_secret.encode() not in superuser_client.get(url).content


def policy_form(agency, group, **overrides):
    data = {
        "agency": agency.pk,
        "name": "Standard",
        "rota": "",
        "repeat_count": "1",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "1",
        "steps-0-target": "primary",
        "steps-0-group": "",
        "steps-0-wait_minutes": "5",
        "steps-1-position": "2",
        "steps-1-target": "group",
        "steps-1-group": group.pk,
        "steps-1-wait_minutes": "10",
    }
    data.update(overrides)
    return data


def test_an_escalation_policy_is_added_with_its_steps(superuser_client, police, commander):
    heads = ResponderGroupFactory(agency=police, name="Agency heads", members=[commander])
    response = superuser_client.post(
        reverse("admin:comms_escalationpolicy_add"), policy_form(police, heads, is_default="on")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    policy = EscalationPolicy.objects.get()
    assert policy.is_default
    assert list(policy.steps.values_list("position", "target", "group", "wait_minutes")) == [
        (1, "primary", None, 5),
        (2, "group", heads.pk, 10),
    ]


def test_the_admin_refuses_a_group_of_another_agency(superuser_client, police, fire):
    theirs = ResponderGroupFactory(agency=fire, name="Fire heads")
    response = superuser_client.post(
        reverse("admin:comms_escalationpolicy_add"), policy_form(police, theirs)
    )
    assert response.status_code == 200
    assert "another agency" in response.content.decode()
    assert not EscalationPolicy.objects.exists() and not EscalationStep.objects.exists()


def test_the_admin_refuses_a_policy_without_steps(superuser_client, police):
    heads = ResponderGroupFactory(agency=police)
    data = policy_form(police, heads)
    data["steps-TOTAL_FORMS"] = "0"
    response = superuser_client.post(reverse("admin:comms_escalationpolicy_add"), data)
    assert response.status_code == 200
    assert "at least one step" in response.content.decode()
    assert not EscalationPolicy.objects.exists()


def test_a_group_cannot_take_people_of_another_agency(superuser_client, police, liaison):
    response = superuser_client.post(
        reverse("admin:comms_respondergroup_add"),
        {"agency": police.pk, "name": "Heads", "description": "", "members": [liaison.pk]},
    )
    assert response.status_code == 200
    assert not ResponderGroup.objects.exists()


def test_a_group_is_added_through_the_admin(superuser_client, police, commander):
    response = superuser_client.post(
        reverse("admin:comms_respondergroup_add"),
        {"agency": police.pk, "name": "Heads", "description": "", "members": [commander.pk]},
    )
    assert response.status_code == 302
    assert list(ResponderGroup.objects.get().members.all()) == [commander]
