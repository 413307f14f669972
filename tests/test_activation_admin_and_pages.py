"""Activation pages and admin: the form commanders send with, the board, the alerts page, and
a read-only admin (writes go through the services)."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from comms.models import Acknowledgement, Activation, Notification
from comms.services import activation_send
from coordination.roles import Role

from .auth import signed_in_client
from .factories import UserFactory
from .workers import contact, rota_on_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def duty(police):
    officer = UserFactory(username="pol-duty", agency=police, roles=[Role.DUTY_OFFICER])
    contact(officer, "email", "pol-duty@example.org")
    rota_on_call(police, primary=officer)
    return officer


def signed_in(user) -> Client:
    return signed_in_client(user)


def test_a_commander_sends_from_the_form_and_lands_on_the_board(commander, police, duty):
    client = signed_in(commander)
    assert client.get("/activations/new/").status_code == 200
    answer = client.post(
        "/activations/new/",
        {
            "message": "SCG at 14:00",
            "agencies": [police.pk],
            "urgency": "immediate",
            "quorum": "each_agency",
            "quorum_per_agency": "1",
            "response_minutes": "30",
        },
    )
    activation = Activation.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/activations/{activation.pk}/"
    board = client.get(answer["Location"]).content.decode()
    assert "SCG at 14:00" in board and "activation-board-data" in board
    assert "SCG at 14:00" in client.get("/activations/").content.decode()


def test_the_form_names_what_is_wrong(commander, police):
    answer = signed_in(commander).post(
        "/activations/new/", {"message": "", "agencies": [], "response_minutes": "soon"}
    )
    assert answer.status_code == 400
    assert "response_deadline" in answer.content.decode()
    assert not Activation.objects.exists()


def test_the_form_is_refused_to_those_who_may_not_send(liaison):
    assert signed_in(liaison).get("/activations/new/").status_code == 403


def test_the_board_is_not_found_for_an_agency_not_called(commander, police, duty, outsider):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    assert signed_in(outsider).get(f"/activations/{activation.pk}/").status_code == 404


def test_the_alerts_page_lists_and_answers(commander, police, duty):
    activation = activation_send(user=commander, message="Assemble at HQ", agencies=[police])
    client = signed_in(duty)
    assert "Assemble at HQ" in client.get("/alerts/").content.decode()
    answer = client.post(f"/alerts/{activation.pk}/answer/", {"choice": "attending:30"})
    assert answer.status_code == 302
    assert Acknowledgement.objects.get().eta_minutes == 30
    assert "Your answer: Attending, ETA 30 min" in client.get("/alerts/").content.decode()


def test_the_admin_lists_activations_but_changes_nothing(commander, police, duty):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    client = signed_in(root)
    for model in (Activation, Notification, Acknowledgement):
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert client.get(url).status_code == 200
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(None)
        assert not model_admin.has_change_permission(None)
    detail = reverse("admin:comms_activation_change", args=[activation.pk])
    assert client.get(detail).status_code == 200
