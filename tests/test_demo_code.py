"""The demo's second factor can be used without an authenticator app."""

import io

import pytest
from django.core.management import call_command

from coordination.mfa import second_factor_verify
from coordination.models import User

pytestmark = pytest.mark.django_db


def test_the_printed_code_signs_a_demo_commander_in():
    call_command("seed_demo", stdout=io.StringIO())
    output = io.StringIO()
    call_command("demo_code", stdout=output)
    code = output.getvalue().strip()
    assert len(code) == 6 and code.isdigit()
    gold = User.objects.get(username="gold")
    second_factor_verify(user=gold, code=code, request=None, field="otp")  # raises when wrong
