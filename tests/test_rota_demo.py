"""The demo data includes a working on-call rota, contact methods and escalation per agency."""

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from comms.demo import FICTION_SMS_FIRST, FICTION_SMS_LAST
from comms.models import ContactMethod, EscalationPolicy, Rota, Shift
from comms.rotas import duty_officers
from coordination.models import Agency, User

pytestmark = pytest.mark.django_db


def test_every_demo_agency_has_a_primary_and_secondary_on_call_now_and_idempotently():
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    assert "duty-ssbf-2" in output.getvalue()  # the new logins are printed with the others
    counts = (Rota.objects.count(), Shift.objects.count(), ContactMethod.objects.count())

    agencies = list(Agency.objects.all())
    assert len(agencies) == 8 and counts[0] == 8
    now = timezone.now()
    for agency in agencies:
        officers = duty_officers(agency=agency, at=now)
        assert [o.tier for o in officers] == ["primary", "secondary"], agency
        assert len({o.user.pk for o in officers}) == 2
        policy = EscalationPolicy.objects.get(agency=agency, is_default=True)
        assert policy.steps.count() == 3

    for user in User.objects.exclude(username="platform"):
        assert user.contact_methods.filter(kind="email").exists(), user
    numbers = [
        int(a[1:])
        for a in ContactMethod.objects.filter(kind="sms").values_list("address", flat=True)
    ]
    assert len(numbers) == 16
    assert all(FICTION_SMS_FIRST <= n <= FICTION_SMS_LAST for n in numbers)

    call_command("seed_demo", stdout=io.StringIO())
    assert (Rota.objects.count(), Shift.objects.count(), ContactMethod.objects.count()) == counts
