"""Escalation with time moved: a step fires at its deadline, never before; a stale or early task
does nothing; "cannot attend" escalates at once; a met quorum stops escalation."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from comms import services
from comms.models import (
    ActivationStatus,
    Notification,
    NotificationState,
    Quorum,
    ResponderGroup,
    Response,
    StepTarget,
    TargetState,
)
from comms.services import activation_acknowledge, activation_send, alerts_sweep, escalation_advance
from coordination.roles import Role

from .factories import UserFactory
from .workers import contact, escalation_policy, rota_on_call

pytestmark = pytest.mark.django_db

FIVE = timedelta(minutes=5)


@pytest.fixture
def people(police):
    def officer(name):
        user = UserFactory(username=name, agency=police, roles=[Role.DUTY_OFFICER])
        contact(user, "email", f"{name}@example.org")
        return user

    primary, secondary = officer("primary"), officer("secondary")
    heads = ResponderGroup.objects.create(agency=police, name="Heads")
    heads.members.set([officer("head1"), officer("head2")])
    rota_on_call(police, primary=primary, secondary=secondary)
    escalation_policy(
        police,
        (StepTarget.PRIMARY, 5),
        (StepTarget.SECONDARY, 5),
        (StepTarget.GROUP, 10),
        group=heads,
        repeat_count=1,
    )
    return {"primary": primary, "secondary": secondary, "heads": list(heads.members.all())}


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        yield traveller


def notified(activation) -> list[str]:
    """Usernames alerted so far, in order, once each per step."""
    rows = Notification.objects.filter(activation=activation, channel="email").order_by("id")
    return [row.recipient.username for row in rows]


def test_a_step_fires_at_its_deadline_and_never_before(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    target = activation.targets.get()
    assert notified(activation) == ["primary"]
    assert target.next_step_at == start + FIVE

    clock.move_to(start + FIVE - timedelta(seconds=1))
    assert alerts_sweep()["escalated"] == 0
    # A scheduled task that wakes a second early schedules itself again and does nothing.
    assert escalation_advance(target_id=target.pk, expected_steps=1) == "early"
    assert notified(activation) == ["primary"]

    clock.move_to(start + FIVE)
    assert alerts_sweep()["escalated"] == 1
    assert notified(activation) == ["primary", "secondary"]
    secondary_alert = Notification.objects.get(
        activation=activation, recipient=people["secondary"], channel="email"
    )
    assert secondary_alert.created_at == start + FIVE

    clock.move_to(start + 2 * FIVE)
    assert alerts_sweep()["escalated"] == 1
    assert notified(activation) == ["primary", "secondary", "head1", "head2"]


def test_a_stale_or_duplicate_step_task_does_nothing(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    target = activation.targets.get()
    clock.move_to(start + FIVE)
    assert escalation_advance(target_id=target.pk, expected_steps=1) == "stepped"
    # The same task delivered again, and the sweep's copy of the work: both already done.
    assert escalation_advance(target_id=target.pk, expected_steps=1) == "stale"
    assert alerts_sweep()["escalated"] == 0
    assert notified(activation) == ["primary", "secondary"]


def test_the_policy_repeats_then_runs_out(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    target = activation.targets.get()
    for minutes in (5, 10, 20):  # secondary, heads, then the first pass's last wait ends
        clock.move_to(start + timedelta(minutes=minutes))
        alerts_sweep()
    target.refresh_from_db()
    assert (target.round, target.state) == (1, TargetState.ESCALATING)
    repeat = Notification.objects.filter(activation=activation, round=1, channel="email").get()
    assert (repeat.recipient, repeat.step) == (people["primary"], "primary duty officer (repeat 1)")

    clock.move_to(start + timedelta(hours=2))
    for _ in range(4):
        alerts_sweep()
        clock.shift(timedelta(minutes=10))
    target.refresh_from_db()
    assert target.state == TargetState.EXHAUSTED
    assert notified(activation).count("primary") == 2


def test_cannot_attend_escalates_the_agency_at_once(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    clock.move_to(start + timedelta(minutes=1))

    activation_acknowledge(
        activation_id=activation.pk, user=people["primary"], response=Response.CANNOT_ATTEND
    )

    assert notified(activation) == ["primary", "secondary"]
    target = activation.targets.get()
    assert target.next_step_at == start + timedelta(minutes=1) + FIVE
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.OPEN  # "cannot attend" is not a quorum


def test_an_acknowledgement_meets_the_quorum_and_stops_escalation(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    clock.move_to(start + timedelta(minutes=2))

    answer, created = activation_acknowledge(
        activation_id=activation.pk,
        user=people["primary"],
        response=Response.ATTENDING,
        eta_minutes=20,
    )

    assert created and answer.describe() == "Attending, ETA 20 min"
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.COMPLETED
    assert activation.targets.get().state == TargetState.SATISFIED
    clock.move_to(start + timedelta(hours=1))
    assert alerts_sweep()["escalated"] == 0
    assert notified(activation) == ["primary"]
    states = set(Notification.objects.filter(activation=activation).values_list("state", flat=True))
    # Nothing was sent in this test: the queued alerts are no longer needed.
    assert states == {NotificationState.CANCELLED}


def test_each_agency_must_answer_for_an_each_agency_quorum(commander, police, fire, people, clock):
    fire_officer = UserFactory(username="fire-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    rota_on_call(fire, primary=fire_officer)
    activation = activation_send(user=commander, message="Assemble", agencies=[police, fire])

    activation_acknowledge(
        activation_id=activation.pk, user=people["primary"], response=Response.ACKNOWLEDGED
    )
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.OPEN
    assert activation.targets.get(agency=police).state == TargetState.SATISFIED

    activation_acknowledge(
        activation_id=activation.pk, user=fire_officer, response=Response.ACKNOWLEDGED
    )
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.COMPLETED


def test_any_agency_quorum_completes_on_the_first_and_stops_the_others(
    commander, police, fire, people, clock
):
    fire_officer = UserFactory(username="fire-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    rota_on_call(fire, primary=fire_officer)
    escalation_policy(fire, (StepTarget.PRIMARY, 5))
    activation = activation_send(
        user=commander, message="Assemble", agencies=[police, fire], quorum=Quorum.ANY_AGENCY
    )
    activation_acknowledge(
        activation_id=activation.pk, user=fire_officer, response=Response.ACKNOWLEDGED
    )
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.COMPLETED
    assert activation.targets.get(agency=police).state == TargetState.STOPPED
    clock.move_to(timezone.now() + timedelta(hours=1))
    assert alerts_sweep()["escalated"] == 0


def test_a_quorum_of_two_per_agency_needs_two_answers(commander, police, people, clock):
    start = timezone.now()
    activation = activation_send(
        user=commander, message="Assemble", agencies=[police], quorum_per_agency=2
    )
    activation_acknowledge(
        activation_id=activation.pk, user=people["primary"], response=Response.ACKNOWLEDGED
    )
    assert activation.targets.get().state == TargetState.ESCALATING
    clock.move_to(start + FIVE)
    alerts_sweep()
    activation_acknowledge(
        activation_id=activation.pk, user=people["secondary"], response=Response.ACKNOWLEDGED
    )
    activation.refresh_from_db()
    assert activation.status == ActivationStatus.COMPLETED


def test_answering_twice_is_harmless_and_the_first_answer_stands(commander, police, people):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    first, created = activation_acknowledge(
        activation_id=activation.pk, user=people["primary"], response=Response.ACKNOWLEDGED
    )
    again, created_again = activation_acknowledge(
        activation_id=activation.pk, user=people["primary"], response=Response.CANNOT_ATTEND
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.response == Response.ACKNOWLEDGED
    assert notified(activation) == ["primary"]


def test_only_someone_the_activation_alerted_can_answer(commander, police, people):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    with pytest.raises(PermissionDenied):
        activation_acknowledge(
            activation_id=activation.pk, user=people["secondary"], response=Response.ACKNOWLEDGED
        )


@pytest.mark.parametrize(
    ("response", "eta", "field"),
    [
        ("attending", None, "eta_minutes"),
        ("attending", -5, "eta_minutes"),
        ("acknowledged", 10, "eta_minutes"),
        ("maybe", None, "response"),
    ],
)
def test_a_malformed_answer_names_the_field(commander, police, people, response, eta, field):
    activation = activation_send(user=commander, message="Assemble", agencies=[police])
    with pytest.raises(ValidationError) as refused:
        activation_acknowledge(
            activation_id=activation.pk, user=people["primary"], response=response, eta_minutes=eta
        )
    assert field in refused.value.message_dict


def test_one_agencys_failing_step_does_not_stop_the_sweep_for_others(
    commander, police, fire, people, clock, monkeypatch
):
    fire_officer = UserFactory(username="fire-duty", agency=fire, roles=[Role.DUTY_OFFICER])
    fire_second = UserFactory(username="fire-second", agency=fire, roles=[Role.DUTY_OFFICER])
    contact(fire_second, "email", "fire-second@example.org")
    rota_on_call(fire, primary=fire_officer, secondary=fire_second)
    escalation_policy(fire, (StepTarget.PRIMARY, 5), (StepTarget.SECONDARY, 5))
    start = timezone.now()
    activation = activation_send(user=commander, message="Assemble", agencies=[police, fire])
    real = services.escalation_advance

    def broken_for_police(*, target_id, **kwargs):
        if target_id == activation.targets.get(agency=police).pk:
            raise RuntimeError("a broken rota")
        return real(target_id=target_id, **kwargs)

    monkeypatch.setattr(services, "escalation_advance", broken_for_police)
    clock.move_to(start + FIVE)
    assert alerts_sweep()["escalated"] == 1
    assert "fire-second" in notified(activation)
