"""Escalation policies: ordered steps, validated; whom each step reaches; read over the API."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from comms.models import EscalationPolicy, EscalationStep
from comms.rotas import escalation_policy_default, escalation_step_recipients
from comms.services import StepSpec, escalation_policy_save, responder_group_save
from coordination.roles import Role

from .factories import ResponderGroupFactory, RotaFactory, ShiftFactory, UserFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 5, 6, 10, tzinfo=ZoneInfo("Europe/Stockholm"))


@pytest.fixture
def heads(police, commander):
    return ResponderGroupFactory(agency=police, name="Agency heads", members=[commander])


@pytest.fixture
def rota(police):
    return RotaFactory(agency=police, name="Strategic duty officer")


@pytest.fixture
def officers(police, rota):
    """Anna primary and Bob secondary, all week."""
    anna = UserFactory(username="anna", agency=police, roles=[Role.DUTY_OFFICER])
    bob = UserFactory(username="bob", agency=police, roles=[Role.DUTY_OFFICER])
    for person, tier in ((anna, "primary"), (bob, "secondary")):
        ShiftFactory(
            rota=rota,
            user=person,
            tier=tier,
            start_date=date(2026, 5, 4),
            start_time=time(8),
            duration=timedelta(days=7),
            recurrence="weekly",
        )
    return anna, bob


def standard_steps(group):
    return [
        StepSpec(target="primary", wait_minutes=5),
        StepSpec(target="secondary", wait_minutes=10),
        StepSpec(target="group", group=group, wait_minutes=15),
    ]


def test_an_administrator_sets_up_the_standard_policy(administrator, police, heads, rota):
    policy = escalation_policy_save(
        user=administrator,
        agency=police,
        name="Standard",
        steps=standard_steps(heads),
        repeat_count=2,
        rota=rota,
        is_default=True,
    )
    steps = list(policy.steps.order_by("position"))
    assert [(s.position, s.target, s.group, s.wait_minutes) for s in steps] == [
        (1, "primary", None, 5),
        (2, "secondary", None, 10),
        (3, "group", heads, 15),
    ]
    assert escalation_policy_default(agency=police) == policy


def test_saving_again_replaces_the_steps_and_a_new_default_takes_over(administrator, police, heads):
    first = escalation_policy_save(
        user=administrator,
        agency=police,
        name="First",
        steps=standard_steps(heads),
        is_default=True,
    )
    escalation_policy_save(
        user=administrator,
        agency=police,
        name="First",
        steps=[StepSpec(target="group", group=heads, wait_minutes=0)],
        policy=first,
        is_default=True,
    )
    assert list(first.steps.values_list("target", flat=True)) == ["group"]
    second = escalation_policy_save(
        user=administrator,
        agency=police,
        name="Second",
        steps=standard_steps(heads),
        is_default=True,
    )
    first.refresh_from_db()
    assert not first.is_default and second.is_default
    assert escalation_policy_default(agency=police) == second


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [StepSpec(target="everyone")]}, "steps"),
        ({"steps": [StepSpec(target="primary", wait_minutes=-1)]}, "steps"),
        ({"steps": [StepSpec(target="primary", wait_minutes=24 * 60 + 1)]}, "steps"),
        ({"steps": [StepSpec(target="group")]}, "steps"),
        ({"steps": [StepSpec(target="primary", wait_minutes=5)] * 21}, "steps"),
        ({"repeat_count": -1}, "repeat_count"),
        ({"repeat_count": 11}, "repeat_count"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(administrator, police, heads, changes, field):
    fields = {"name": "Standard", "steps": standard_steps(heads), "repeat_count": 1, **changes}
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(user=administrator, agency=police, **fields)
    assert field in refused.value.message_dict
    assert not EscalationPolicy.objects.exists() and not EscalationStep.objects.exists()


def test_a_group_of_another_agency_is_refused(administrator, police, fire):
    theirs = ResponderGroupFactory(agency=fire, name="Fire heads")
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(
            user=administrator,
            agency=police,
            name="Standard",
            steps=[StepSpec(target="group", group=theirs)],
        )
    assert "another agency" in refused.value.message_dict["steps"][0]


def test_a_rota_of_another_agency_is_refused(administrator, police, fire, heads):
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(
            user=administrator,
            agency=police,
            name="Standard",
            steps=standard_steps(heads),
            rota=RotaFactory(agency=fire),
        )
    assert "rota" in refused.value.message_dict


def test_repeating_without_any_wait_is_refused(administrator, police):
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(
            user=administrator,
            agency=police,
            name="Storm",
            steps=[StepSpec(target="primary", wait_minutes=0)],
            repeat_count=3,
        )
    assert "repeat_count" in refused.value.message_dict


def test_two_policies_of_one_agency_cannot_share_a_name(administrator, police, heads):
    escalation_policy_save(
        user=administrator, agency=police, name="Std", steps=standard_steps(heads)
    )
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(
            user=administrator, agency=police, name="STD", steps=standard_steps(heads)
        )
    assert "name" in refused.value.message_dict


def test_only_administrators_of_the_city_write_policies(liaison, police, heads, oslo_police):
    with pytest.raises(PermissionDenied):
        escalation_policy_save(
            user=liaison, agency=police, name="Mine", steps=standard_steps(heads)
        )
    oslo_admin = UserFactory(agency=oslo_police, roles=[Role.ADMINISTRATOR])
    with pytest.raises(police.DoesNotExist):  # another city's agency: not found at all
        escalation_policy_save(
            user=oslo_admin, agency=police, name="Mine", steps=standard_steps(heads)
        )


def test_a_responder_group_holds_people_of_its_agency_only(administrator, police, liaison):
    with pytest.raises(ValidationError) as refused:
        responder_group_save(user=administrator, agency=police, name="Heads", members=[liaison])
    assert "members" in refused.value.message_dict


def test_each_step_reaches_the_right_people(administrator, police, heads, rota, officers):
    anna, bob = officers
    policy = escalation_policy_save(
        user=administrator, agency=police, name="Standard", steps=standard_steps(heads), rota=rota
    )
    primary, secondary, group = policy.steps.order_by("position")
    assert escalation_step_recipients(step=primary, at=AT) == [anna]
    assert escalation_step_recipients(step=secondary, at=AT) == [bob]
    assert escalation_step_recipients(step=group, at=AT) == list(heads.members.all())


def test_a_policy_without_a_rota_reaches_every_active_rotas_duty_officer(
    administrator, police, heads, rota, officers
):
    anna, _bob = officers
    other = RotaFactory(agency=police, name="Tactical duty officer")
    carl = UserFactory(username="carl", agency=police, roles=[Role.DUTY_OFFICER])
    ShiftFactory(
        rota=other,
        user=carl,
        start_date=date(2026, 5, 6),
        start_time=time(0),
        duration=timedelta(days=1),
    )
    policy = escalation_policy_save(
        user=administrator, agency=police, name="All", steps=standard_steps(heads)
    )
    first = policy.steps.get(position=1)
    assert escalation_step_recipients(step=first, at=AT) == [anna, carl]
    # Nobody on call: an empty list, for the escalation to move on.
    assert escalation_step_recipients(step=first, at=datetime(2026, 4, 1, tzinfo=AT.tzinfo)) == []


def test_the_api_lists_policies_of_the_city_read_only(api, liaison, administrator, police, heads):
    policy = escalation_policy_save(
        user=administrator, agency=police, name="Standard", steps=standard_steps(heads)
    )
    response = api(liaison).get("/api/v1/escalation-policies/")
    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert listed["id"] == policy.pk
    assert [s["target"] for s in listed["steps"]] == ["primary", "secondary", "group"]
    assert listed["steps"][2]["group_name"] == "Agency heads"
    assert api(administrator).post("/api/v1/escalation-policies/", {}).status_code == 405
    groups = api(liaison).get("/api/v1/responder-groups/").json()["results"]
    assert [g["name"] for g in groups] == ["Agency heads"]


def test_another_citys_policies_are_invisible(api, police, heads, administrator, oslo_police):
    policy = escalation_policy_save(
        user=administrator, agency=police, name="Standard", steps=standard_steps(heads)
    )
    stranger = UserFactory(agency=oslo_police, roles=[Role.ADMINISTRATOR])
    assert api(stranger).get("/api/v1/escalation-policies/").json()["results"] == []
    assert api(stranger).get(f"/api/v1/escalation-policies/{policy.pk}/").status_code == 404


def test_an_inactive_rota_is_refused(administrator, police, heads, rota):
    rota.is_active = False
    rota.save(update_fields=["is_active"])
    with pytest.raises(ValidationError) as refused:
        escalation_policy_save(
            user=administrator, agency=police, name="Std", steps=standard_steps(heads), rota=rota
        )
    assert "rota" in refused.value.message_dict


def test_a_group_member_who_left_the_agency_is_not_notified(
    administrator, police, heads, commander, fire
):
    policy = escalation_policy_save(
        user=administrator, agency=police, name="Std", steps=standard_steps(heads)
    )
    group_step = policy.steps.get(target="group")
    assert escalation_step_recipients(step=group_step, at=AT) == [commander]
    commander.agency = fire
    commander.save(update_fields=["agency"])
    assert escalation_step_recipients(step=group_step, at=AT) == []
