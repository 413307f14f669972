"""Sending an activation: recipients come from the rotas at that instant, one notification per
person per contact method (plus in-app) is written in the activation's transaction, and the tasks
that send them are only scheduled once it commits."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from comms.models import (
    Activation,
    Channel,
    Notification,
    NotificationState,
    StepTarget,
    TargetState,
)
from comms.services import activation_send
from coordination.roles import Role
from incidents.models import IncidentEvent

from .factories import UserFactory
from .workers import contact, escalation_policy, rota_on_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def police_duty(police):
    primary = UserFactory(username="pol-primary", agency=police, roles=[Role.DUTY_OFFICER])
    secondary = UserFactory(username="pol-secondary", agency=police, roles=[Role.DUTY_OFFICER])
    contact(primary, "email", "pol-primary@example.org")
    contact(primary, "sms", "+46700000001")
    contact(secondary, "email", "pol-secondary@example.org")
    rota_on_call(police, primary=primary, secondary=secondary)
    escalation_policy(police, (StepTarget.PRIMARY, 5), (StepTarget.SECONDARY, 5))
    return primary, secondary


@pytest.fixture
def fire_duty(fire):
    officer = UserFactory(username="frs-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    contact(officer, "email", "frs-duty@example.org")
    rota_on_call(fire, primary=officer)
    return officer


def channels_of(activation, user) -> list[str]:
    return sorted(
        Notification.objects.filter(activation=activation, recipient=user).values_list(
            "channel", flat=True
        )
    )


def test_the_on_call_officers_are_alerted_through_each_contact_method_and_in_app(
    commander, police, fire, police_duty, fire_duty
):
    primary, secondary = police_duty
    with time_machine.travel(timezone.now(), tick=False):
        activation = activation_send(
            user=commander, message="Strategic cell to City Hall at 14:00", agencies=[police, fire]
        )
        now = timezone.now()

    assert channels_of(activation, primary) == [Channel.EMAIL, Channel.IN_APP, Channel.SMS]
    assert channels_of(activation, secondary) == []  # only after the primary's 5 minutes
    assert channels_of(activation, fire_duty) == [Channel.EMAIL, Channel.IN_APP]
    rows = Notification.objects.filter(activation=activation)
    assert {row.state for row in rows} == {NotificationState.QUEUED}
    assert len({row.idempotency_key for row in rows}) == rows.count()
    police_target = activation.targets.get(agency=police)
    assert police_target.state == TargetState.ESCALATING
    assert police_target.next_step_at == now + timedelta(minutes=5)
    # Fire has no policy: every duty officer at once, and nothing further to escalate to.
    assert activation.targets.get(agency=fire).state == TargetState.EXHAUSTED


def test_an_agency_with_nobody_on_call_is_shown_as_such_not_skipped(commander, police, transport):
    activation = activation_send(user=commander, message="Assemble", agencies=[transport])
    target = activation.targets.get()
    assert target.agency == transport
    assert target.state == TargetState.EXHAUSTED
    assert not target.notifications.exists()


def test_the_outbox_is_written_with_the_activation_and_sending_waits_for_commit(
    commander, police, police_duty, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        activation = activation_send(user=commander, message="Assemble", agencies=[police])
        # Inside the transaction the rows exist and nothing has been handed to the broker.
        assert Notification.objects.filter(activation=activation).count() == 3
    assert callbacks, "delivery must be scheduled on commit"


def test_a_rolled_back_activation_leaves_nothing_and_sends_nothing(
    commander, police, police_duty, django_capture_on_commit_callbacks
):
    class Abort(Exception):
        pass

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(Abort),
        transaction.atomic(),
    ):
        activation_send(user=commander, message="Assemble", agencies=[police])
        raise Abort
    assert not Activation.objects.exists()
    assert not Notification.objects.exists()
    assert not callbacks


def test_an_activation_for_an_incident_is_an_event_of_that_incident(
    commander, police, incident, police_duty
):
    activation = activation_send(
        user=commander, message="Assemble", agencies=[police], incident=incident
    )
    event = IncidentEvent.objects.filter(incident=incident).order_by("-seq").first()
    assert event.kind == "activation.sent"
    assert event.payload["activation"] == activation.pk


def test_an_exercise_incident_makes_an_exercise_activation(commander, police, incident):
    incident.is_exercise = True
    incident.save()
    activation = activation_send(
        user=commander, message="Assemble", agencies=[police], incident=incident
    )
    assert activation.is_exercise
    with pytest.raises(ValidationError) as refused:
        activation_send(
            user=commander,
            message="Assemble",
            agencies=[police],
            incident=incident,
            is_exercise=False,
        )
    assert "is_exercise" in refused.value.message_dict


def test_only_commanders_and_the_duty_desk_send_activations(liaison, police, fire):
    with pytest.raises(PermissionDenied):
        activation_send(user=liaison, message="Assemble", agencies=[fire])
    duty_desk = UserFactory(agency=police, roles=[Role.DUTY_OFFICER])
    assert activation_send(user=duty_desk, message="Assemble", agencies=[fire]).pk


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"message": "  "}, "message"),
        ({"message": "x" * 1001}, "message"),
        ({"agencies": []}, "agencies"),
        ({"urgency": "whenever"}, "urgency"),
        ({"quorum": "most"}, "quorum"),
        ({"quorum_per_agency": 0}, "quorum_per_agency"),
        ({"response_deadline": "past"}, "response_deadline"),
        ({"response_deadline": "next month"}, "response_deadline"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(commander, police, fields, field):
    values = {"message": "Assemble", "agencies": [police]}
    if fields.get("response_deadline") == "past":
        fields = {"response_deadline": timezone.now() - timedelta(minutes=1)}
    elif fields.get("response_deadline") == "next month":
        fields = {"response_deadline": timezone.now() + timedelta(days=30)}
    values.update(fields)
    with pytest.raises(ValidationError) as refused:
        activation_send(user=commander, **values)
    assert field in refused.value.message_dict
    assert not Activation.objects.exists()


def test_agencies_of_another_city_cannot_be_called(commander, oslo_police):
    with pytest.raises(ValidationError) as refused:
        activation_send(user=commander, message="Assemble", agencies=[oslo_police])
    assert "agencies" in refused.value.message_dict
