"""The one-tap answer link in e-mails and SMS: works without signing in, only a POST answers (a
link scanner's GET does not), single use, expires, and refuses a link that was altered."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from comms.models import Acknowledgement, Channel, Notification, NotificationState
from comms.services import ack_token, activation_cancel, activation_send
from coordination.roles import Role

from .factories import UserFactory
from .workers import contact, rota_on_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def duty(police):
    officer = UserFactory(username="pol-duty", agency=police, roles=[Role.DUTY_OFFICER])
    contact(officer, "email", "pol-duty@example.org")
    rota_on_call(police, primary=officer)
    return officer


@pytest.fixture
def link(commander, police, duty):
    activation = activation_send(user=commander, message="SCG at City Hall", agencies=[police])
    email = Notification.objects.get(activation=activation, channel=Channel.EMAIL)
    return f"/ack/{ack_token(email)}/"


@pytest.fixture
def phone():
    """A browser nobody signed in on; CSRF checks on, as in production."""
    return Client(enforce_csrf_checks=True)


def test_opening_the_link_shows_the_question_and_answers_nothing(phone, link):
    page = phone.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "SCG at City Hall" in html
    assert 'value="acknowledged"' in html and 'value="attending:20"' in html
    assert 'value="cannot_attend"' in html
    assert "no-store" in page["Cache-Control"]
    assert page["Referrer-Policy"] == "no-referrer"
    phone.get(link)  # a link scanner fetching it again
    assert not Acknowledgement.objects.exists()


def test_one_post_answers_attending_with_the_eta(phone, link, duty):
    page = phone.post(link, {"choice": "attending:20"})
    assert page.status_code == 200
    assert "Recorded: Attending, ETA 20 min" in page.content.decode()
    answer = Acknowledgement.objects.get()
    assert (answer.user, answer.response, answer.eta_minutes, answer.via) == (
        duty,
        "attending",
        20,
        "link",
    )
    email = Notification.objects.get(channel=Channel.EMAIL)
    assert answer.notification == email


def test_a_used_link_shows_what_was_answered_and_changes_nothing(phone, link):
    phone.post(link, {"choice": "acknowledged"})

    again = phone.post(link, {"choice": "cannot_attend"})
    opened = phone.get(link)

    assert again.status_code == 200 and opened.status_code == 200
    for page in (again, opened):
        html = page.content.decode()
        assert "Already answered: Acknowledged" in html
        assert 'value="cannot_attend"' not in html
    assert Acknowledgement.objects.get().response == "acknowledged"


def test_an_expired_link_is_refused(phone, link):
    later = timezone.now() + timedelta(seconds=settings.ALERT_ACK_LINK_MAX_AGE_SECONDS + 60)
    with time_machine.travel(later):
        assert phone.get(link).status_code == 410
        page = phone.post(link, {"choice": "acknowledged"})
    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert not Acknowledgement.objects.exists()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "9" + token,  # another notification's id, same signature
        lambda token: token.split(":")[0],  # signature cut off
        lambda token: "not-a-token",
    ],
)
def test_an_altered_link_is_refused(phone, link, tamper):
    token = link.removeprefix("/ack/").removesuffix("/")
    bad = f"/ack/{tamper(token)}/"
    assert phone.get(bad).status_code == 400
    assert phone.post(bad, {"choice": "acknowledged"}).status_code == 400
    assert not Acknowledgement.objects.exists()


@pytest.mark.parametrize("choice", ["", "attending", "attending:soon", "maybe", "cannot_attend:5"])
def test_a_malformed_choice_is_refused(phone, link, choice):
    assert phone.post(link, {"choice": choice}).status_code == 400
    assert not Acknowledgement.objects.exists()


def test_a_stood_down_activation_needs_no_answer(phone, link, commander):
    activation_cancel(activation_id=Notification.objects.first().activation_id, user=commander)
    page = phone.post(link, {"choice": "acknowledged"})
    assert "stood down" in page.content.decode()
    assert not Acknowledgement.objects.exists()


def test_answering_by_link_settles_the_other_channels(phone, link):
    phone.post(link, {"choice": "acknowledged"})
    states = dict(Notification.objects.values_list("channel", "state"))
    # Neither had gone out in this test: the answer makes both unnecessary.
    assert states == {Channel.EMAIL: NotificationState.CANCELLED, Channel.IN_APP: "cancelled"}


def test_an_exercise_link_says_exercise(phone, commander, police, duty):
    activation = activation_send(
        user=commander, message="Drill", agencies=[police], is_exercise=True
    )
    email = Notification.objects.get(activation=activation, channel=Channel.EMAIL)
    html = phone.get(f"/ack/{ack_token(email)}/").content.decode()
    assert "EXERCISE EXERCISE EXERCISE" in html
    assert "<title>EXERCISE" in html
