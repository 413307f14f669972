"""The whole OpenAPI schema, exercised by schemathesis against the platform as deployed (uvicorn):
no request, however odd, gets a 5xx, and every documented answer matches its schema.

Bounded: a few examples per operation, so a run takes a minute or two. The session's server runs
with throttling out of the way (see ``tests/servers.py``), so the run is not cut short by 429s.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from coordination.models import Agency
from coordination.roles import Role

from .factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ST = str(Path(sys.executable).with_name("st"))
CHECKS = "not_a_server_error,response_schema_conformance"
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"


def schemathesis(server, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [
            ST,
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/api/schema/",
            "--checks",
            CHECKS,
            "--seed",
            "2026",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--no-shrink",
            "--no-color",
            "--output-truncate",
            "true",
            "--suppress-health-check",
            "all",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,  # bounded: the whole API at a few examples each, on a loaded machine
        check=False,
    )


@pytest.fixture
def token_of_a_capable_person():
    """The demo city and its exercise (every kind of record), and a person who may do almost
    everything there: open and run incidents, log, send activations, manage the directory and
    rotas."""
    call_command("seed_demo", verbosity=0)
    police = Agency.objects.get(short_name="POL")
    person = UserFactory(
        username="fuzzer",
        agency=police,
        roles=[
            Role.ADMINISTRATOR,
            Role.TACTICAL_COMMANDER,
            Role.DUTY_OFFICER,
            Role.COMMUNICATIONS_LEAD,
        ],
    )
    return Token.objects.create(user=person).key


REPORTS = Path(__file__).resolve().parent.parent / "artifacts" / "schemathesis"


def report(result: subprocess.CompletedProcess, name: str) -> str:
    """The run's whole output goes to artifacts/; the failure message shows its end."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.txt").write_text(result.stdout + result.stderr)
    return (result.stdout[-12000:] + result.stderr[-3000:]).strip()


def test_the_whole_api_as_a_capable_person(asgi_server, token_of_a_capable_person):
    result = schemathesis(
        asgi_server,
        "--header",
        f"Authorization: Token {token_of_a_capable_person}",
        "--max-examples",
        "6",
        "--phases",
        "examples,coverage,fuzzing",
    )
    output = report(result, "capable-person")
    assert result.returncode == 0, output
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested and int(tested.group(1)) >= 60, output
    # The token works: only the SMS provider's endpoint (its own bearer token) refuses it.
    refused = re.search(r"(\d+) operations? returned only 401/403", result.stdout)
    assert refused is None or refused.group(1) == "1", output


def test_the_whole_api_as_a_stranger(asgi_server, token_of_a_capable_person):
    result = schemathesis(asgi_server, "--max-examples", "3", "--phases", "examples,fuzzing")
    output = report(result, "stranger")
    assert result.returncode == 0, output
    assert re.search(r"Tested: \d{2}", result.stdout), output
