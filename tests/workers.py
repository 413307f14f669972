"""Real parts for the alerting tests: Celery worker and beat processes against the test database
and test Redis, an SMTP sink (aiosmtpd) and an HTTP sink for the SMS provider and webhooks.

The worker and beat are separate processes, as deployed, so tests that use them need
``transactional_db`` (they only see committed rows). Their broker is a Redis database of its own,
emptied before each test, so a message left behind by another test or run is never consumed.
"""

import contextlib
import email
import email.policy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import time as dt_time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.utils import timezone

from comms.delivery import SIGNATURE_HEADER, signature_valid
from comms.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    Recurrence,
    Rota,
    Shift,
    StepTarget,
    Tier,
)
from comms.watchdog import HEARTBEAT_KEY
from ctpn.celery import app as celery_app

from .servers import ROOT, free_port, server_environment

# The broker's own Redis database in the tests (the application's data stays in REDIS_URL's).
BROKER_DB = 13

# Short leases, sweeps and heartbeats, so that recovery takes seconds in a test.
FAST_ALERTING = {
    "ALERT_LEASE_SECONDS": "3",
    "ALERT_HTTP_TIMEOUT_SECONDS": "2",
    "EMAIL_TIMEOUT": "2",
    "ALERT_SWEEP_SECONDS": "1",
    "ALERT_SWEEP_GRACE_SECONDS": "2",
    "ALERT_HEARTBEAT_SECONDS": "1",
    "ALERT_HEARTBEAT_STALE_SECONDS": "4",
}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail the test saying ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# --- SMTP sink ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    accepted_at: float  # time.time() when the sink answered 250
    recipients: tuple[str, ...]
    message_id: str
    idempotency_key: str
    subject: str
    body: str


class SmtpSink:
    """An SMTP server that accepts everything (except addresses it is told to refuse)."""

    def __init__(self) -> None:
        self.messages: list[ReceivedEmail] = []
        self.refused: set[str] = set()
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        received = ReceivedEmail(
            accepted_at=time.time(),
            recipients=tuple(envelope.rcpt_tos),
            message_id=str(message["Message-ID"] or ""),
            idempotency_key=str(message["X-CTPN-Idempotency-Key"] or ""),
            subject=str(message["Subject"] or ""),
            body=body.get_content() if body is not None else "",
        )
        with self.lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"

    def received(self) -> list[ReceivedEmail]:
        with self.lock:
            return list(self.messages)

    def to(self, address: str) -> list[ReceivedEmail]:
        return [m for m in self.received() if address in m.recipients]


@pytest.fixture
def smtp_sink(settings) -> Iterator[SmtpSink]:
    """A real SMTP server on a free port; this process's e-mail goes to it too."""
    sink = SmtpSink()
    # aiosmtpd logs every SMTP command at INFO: thousands of lines in a 200-recipient test.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink.controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_TIMEOUT = 2
    yield sink
    sink.controller.stop()


# --- HTTP sink ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    received_at: float
    path: str
    headers: dict[str, str]  # names in lower case: HTTP header names ignore case
    body: bytes
    signature_ok: bool | None  # None when the path has no webhook secret

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class HttpSink:
    """An HTTP server recording every POST. Paths given a secret check the webhook signature
    (HMAC-SHA256 of the body) and answer 401 when it does not match; ``answers[path]`` lists the
    status codes to give the next requests to that path (then 200)."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        secret = self.secrets.get(path)
        ok = (
            None
            if secret is None
            else signature_valid(secret, body, headers.get(SIGNATURE_HEADER.lower()))
        )
        with self.lock:
            self.requests.append(ReceivedRequest(time.time(), path, headers, body, ok))
            scripted = self.answers.get(path)
            status = scripted.pop(0) if scripted else 200
        return 401 if ok is False else status


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = sink.record(self.path, headers, body)
            answer = json.dumps({"id": str(uuid.uuid4())}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


# --- Celery worker and beat --------------------------------------------------------------------


def broker_url_for_tests() -> str:
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BROKER_DB}", parts.query, ""))


# Everything this test process sends to Celery goes to the tests' own broker database, from the
# first message on: Celery keeps its producer pool for the URL it first used.
celery_app.conf.broker_url = broker_url_for_tests()


@pytest.fixture
def alerting_broker() -> Iterator[str]:
    """The tests' broker database, emptied (and the heartbeats forgotten) before and after."""
    url = broker_url_for_tests()
    redis.Redis.from_url(url).flushdb()
    redis.Redis.from_url(settings.REDIS_URL).delete(HEARTBEAT_KEY)
    yield url
    redis.Redis.from_url(url).flushdb()


# The queues of the Procfile's workers (settings.CELERY_TASK_ROUTES).
DELIVERY_QUEUES = "delivery,celery"
ESCALATION_QUEUES = "escalation"
ALL_QUEUES = f"{DELIVERY_QUEUES},{ESCALATION_QUEUES}"


@dataclass
class AlertingProcesses:
    """Start, kill and stop the worker and beat of one test; everything stops at teardown."""

    env: dict[str, str]
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
            [sys.executable, "-m", "celery", "-A", "ctpn", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill reaches the pool too
        )
        log.close()
        self.processes.append(process)
        return process

    def start_worker(self, concurrency: int = 2, queues: str = ALL_QUEUES) -> subprocess.Popen:
        """A prefork worker consuming ``queues`` (by default every one, as a single worker of a
        small deployment does; ``DELIVERY_QUEUES`` or ``ESCALATION_QUEUES`` for the dedicated
        workers of the Procfile); returns once its heartbeat shows it is consuming."""
        number = len(self.workers) + 1
        hostname = f"alerts-test-{number}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        process = self._spawn(
            f"worker{number}",
            [
                "worker",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "-Q",
                queues,
                "-n",
                hostname,
                "--loglevel=warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        )
        self.workers.append((hostname, process))
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        wait_for(
            lambda: (
                process.poll() is not None or client.hexists(HEARTBEAT_KEY, f"worker:{hostname}")
            ),
            30,
            "the worker to start",
        )
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{self.log_tail()}")
        # The heartbeat starts with the consumer's timer; give the pool a moment to fork.
        time.sleep(0.3)
        return process

    def start_beat(self) -> subprocess.Popen:
        process = self._spawn(
            "beat",
            [
                "beat",
                "--loglevel=warning",
                "--schedule",
                str(self.folder / "celerybeat-schedule"),
                "--pidfile",
                str(self.folder / "beat.pid"),
            ],
        )
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        wait_for(
            lambda: (
                process.poll() is not None
                or any(k.startswith(b"beat") for k in client.hkeys(HEARTBEAT_KEY))
            ),
            30,
            "beat to start",
        )
        if process.poll() is not None:
            pytest.fail(f"beat exited with {process.returncode}:\n{self.log_tail()}")
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the process and its pool: no warm shutdown, no acknowledgement, nothing."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.folder.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


@pytest.fixture
def alerting_env(alerting_broker, smtp_sink, http_sink) -> dict[str, str]:
    """Environment of the worker and beat: the test database, Redis, the sinks, short timings."""
    return server_environment(
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=alerting_broker,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_sink.port),
        SMS_PROVIDER_URL=f"{http_sink.url}/sms",
        SMS_PROVIDER_TOKEN="sms-test-token",
        PUBLIC_BASE_URL="http://ctpn.test",
        **FAST_ALERTING,
    )


@pytest.fixture
def alerting_processes(
    transactional_db, alerting_env, tmp_path, settings
) -> Iterator[AlertingProcesses]:
    """Worker and beat processes for one test (started by the test). This process uses the same
    short timings, so the services it calls directly agree with the worker's."""
    for name, value in FAST_ALERTING.items():
        setattr(settings, name, int(value))
    settings.PUBLIC_BASE_URL = alerting_env["PUBLIC_BASE_URL"]
    settings.SMS_PROVIDER_URL = alerting_env["SMS_PROVIDER_URL"]
    settings.SMS_PROVIDER_TOKEN = alerting_env["SMS_PROVIDER_TOKEN"]
    processes = AlertingProcesses(env=alerting_env, folder=tmp_path)
    try:
        yield processes
    finally:
        # Before the database is flushed: a worker mid-transaction would block the flush.
        processes.stop_all()


# --- Alerting configuration for the tests ------------------------------------------------------


def rota_on_call(agency, *, primary, secondary=None, name: str = "Duty officer") -> Rota:
    """A rota of ``agency`` whose primary (and secondary) hold it around the clock, every day."""
    rota = Rota.objects.create(agency=agency, name=name)
    start = timezone.now().astimezone(agency.city.zone).date() - timedelta(days=2)
    for tier, user in ((Tier.PRIMARY, primary), (Tier.SECONDARY, secondary)):
        if user is not None:
            Shift.objects.create(
                rota=rota,
                tier=tier,
                user=user,
                start_date=start,
                start_time=dt_time(0, 0),
                duration=timedelta(days=1),
                recurrence=Recurrence.DAILY,
            )
    return rota


def escalation_policy(agency, *steps: tuple[str, int], group=None, repeat_count: int = 0):
    """The agency's default policy: ``(target, wait_minutes)`` steps, e.g. ("primary", 5)."""
    policy = EscalationPolicy.objects.create(
        agency=agency, name="Default", is_default=True, repeat_count=repeat_count
    )
    for position, (target, wait) in enumerate(steps, start=1):
        EscalationStep.objects.create(
            policy=policy,
            position=position,
            target=target,
            group=group if target == StepTarget.GROUP else None,
            wait_minutes=wait,
        )
    return policy


def contact(user, kind: str, address: str, secret: str = "") -> ContactMethod:
    return ContactMethod.objects.create(
        user=user, kind=kind, address=address, signing_secret=secret
    )
