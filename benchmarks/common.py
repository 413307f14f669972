"""What the benchmark programs share: Django set-up against the benchmark database, seed data,
server processes pinned to a core, memory readings, percentiles and the JSON result line.

Every program reads ``DATABASE_URL`` and ``REDIS_URL`` from the environment (``run_all.py`` gets
them from ``scripts/provision.sh``), listens and connects on 127.0.0.1 only, and bounds its own
run time. The last line a program prints is one JSON object: ``run_all.py`` reads it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# The server under test gets one core, the load (clients, trigger, Redis, PostgreSQL) the other,
# as in the baselines measured beside these benchmarks.
SERVER_CPU = 0
LOAD_CPU = 1


def cpus() -> int:
    return os.cpu_count() or 1


def pin_self(cpu: int = LOAD_CPU) -> None:
    """Pin this process to ``cpu`` (when the machine has it)."""
    if cpu < cpus() and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def raise_open_files(wanted: int = 65536) -> int:
    """Raise this process's open-file limit (clients and servers need one descriptor each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def server_env(**extra: str) -> dict[str, str]:
    """Environment of a platform process as deployed, against the benchmark database and Redis.

    Production settings (``CTPN_ENV=production``), except that plain HTTP on loopback is allowed.
    """
    env = dict(os.environ)
    env.update(
        CTPN_ENV="production",
        SECRET_KEY=os.environ.get("SECRET_KEY", "benchmark-only-not-secret-" + "x" * 40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        # Static files are not collected for a benchmark run: WhiteNoise's warning says so.
        PYTHONWARNINGS="ignore::UserWarning",
        # A load test makes more requests than any person: the rates are not what is measured.
        API_THROTTLE_ANON="10000000/minute",
        API_THROTTLE_USER="10000000/minute",
        API_THROTTLE_AUTH_TOKEN="10000000/minute",  # noqa: S106  (a rate, not a secret)
    )
    env.update(extra)
    return env


def setup_django(**extra: str) -> None:
    """Configure Django in this process with the same settings as the servers, and migrate."""
    for name, value in server_env(**extra).items():
        os.environ.setdefault(name, value)
    os.environ["CTPN_ENV"] = "production"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def memory(self) -> dict[str, int]:
        return memory_kib(self.process.pid)


def spawn(
    args: Sequence[str],
    *,
    cpu: int | None = SERVER_CPU,
    env: dict[str, str] | None = None,
    stdout: Any = None,
) -> subprocess.Popen:
    """Start ``args`` in its own process group (a stop reaches its children), pinned to ``cpu``."""
    command = list(args)
    if cpu is not None and cpu < cpus() and Path("/usr/bin/taskset").exists():
        command = ["/usr/bin/taskset", "-c", str(cpu), *command]
    return subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
        command,
        cwd=ROOT,
        env=env or server_env(),
        start_new_session=True,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
    )


def stop(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """TERM the process group, then KILL it if it has not gone within ``timeout``."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the process group: no warm shutdown, nothing acknowledged."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        stop(server.process)


def start_uvicorn(
    app: str = "ctpn.asgi:application",
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    cpu: int | None = SERVER_CPU,
) -> Server:
    port = free_port()
    process = spawn(
        [
            PYTHON,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cpu=cpu,
    )
    try:
        wait_listening(port, process)
    except Exception:
        stop(process)
        raise
    return Server("uvicorn", port, process)


def start_daphne(app: str, *, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    process = spawn(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app], env=env
    )
    try:
        wait_listening(port, process)
    except Exception:
        stop(process)
        raise
    return Server("daphne", port, process)


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory of ``pid`` now (VmRSS) and at its peak (VmHWM), in KiB."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (e.g. a prefork worker's pool)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """min/p50/p95/p99/max of durations given in seconds, in milliseconds (3 decimals)."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "min": ms(min(values_s)) if values_s else None,
        "p50": ms(percentile(values_s, 50)),
        "p95": ms(percentile(values_s, 95)),
        "p99": ms(percentile(values_s, 99)),
        "max": ms(max(values_s)) if values_s else None,
    }


def emit(result: dict[str, Any]) -> None:
    """Print the program's result as its last line, one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)


# --- Seed data ------------------------------------------------------------------------------------


@dataclass
class Seed:
    city_id: int
    police_id: int
    fire_id: int
    incident_id: int
    commander_id: int
    token: str
    cookie: str


def seed_incident(tag: str) -> Seed:
    """A city, two agencies, a strategic commander with an API token and a signed-in session
    (second factor passed), and an open incident. ``tag`` keeps names unique per run."""
    import random
    import string

    from django.contrib.auth import SESSION_KEY
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from rest_framework.authtoken.models import Token

    from coordination.models import Agency, AgencyType, City, User
    from coordination.roles import Role
    from coordination.services import user_set_roles
    from incidents.models import IncidentLevel, IncidentType
    from incidents.services import incident_open

    suffix = f"{tag}-{int(time.time() * 1000) % 10**9}"
    code = "BEN"
    while City.objects.filter(code=code).exists():
        code = "".join(random.choices(string.ascii_uppercase, k=3))
    city = City.objects.create(name=f"Bench {suffix}", code=code, time_zone="UTC")
    police = Agency.objects.create(
        city=city, name=f"Police {suffix}", short_name=f"P{suffix[-6:]}", type=AgencyType.POLICE
    )
    fire = Agency.objects.create(
        city=city, name=f"Fire {suffix}", short_name=f"F{suffix[-6:]}", type=AgencyType.FIRE_RESCUE
    )
    commander = User.objects.create_user(
        username=f"gold-{suffix}",
        password="bench-only-password-1",  # noqa: S106
        agency=police,
    )
    user_set_roles(target=commander, roles=[Role.STRATEGIC_COMMANDER])
    incident = incident_open(
        user=commander,
        title="Benchmark incident",
        type=IncidentType.MARAUDING_TERRORIST_ATTACK,
        level=IncidentLevel.LEVEL_3,
        lead_agency=police,
        participating_agencies=[fire],
    )
    token = Token.objects.create(user=commander).key
    client = Client()
    client.force_login(commander)
    session = client.session
    device = TOTPDevice.objects.create(user=commander, name="Bench authenticator", confirmed=True)
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    assert session[SESSION_KEY] == str(commander.pk)
    session.save()
    return Seed(
        city_id=city.pk,
        police_id=police.pk,
        fire_id=fire.pk,
        incident_id=incident.pk,
        commander_id=commander.pk,
        token=token,
        cookie=f"sessionid={session.session_key}",
    )


def decision_body(n: int) -> dict[str, Any]:
    """A complete decision (every Joint Decision Model section) as the API takes it."""
    from datetime import UTC, datetime, timedelta

    return {
        "information": f"Report {n}: an armed attacker at the central station.",
        "threat_assessment": "Threat is ongoing; risk to public high.",
        "working_strategy": "Save life, contain the threat, protect the public.",
        "powers_policies": "Civil Contingencies Act; joint operating principles.",
        "options": [
            {"option": "Evacuate the station", "chosen": True, "reason": "Removes the public."},
            {"option": "Shelter in place", "chosen": False, "reason": "Attacker still mobile."},
        ],
        "decision": "Evacuate the central station and close it to the public.",
        "rationale": "Protects life while the threat is located.",
        "decided_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }
