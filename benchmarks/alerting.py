"""What the alerting benchmarks share: an SMTP sink (aiosmtpd) and real Celery worker and beat
processes against the benchmark database, with their own broker database in Redis."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import common

BROKER_DB = 12


@dataclass(frozen=True)
class Accepted:
    at: float  # time.time() when the sink answered 250
    recipients: tuple[str, ...]
    key: str  # X-CTPN-Idempotency-Key


class SmtpSink:
    """Accepts every message; records when, to whom, and its idempotency key."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Accepted] = []
        self.lock = threading.Lock()
        self.port = common.free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(
                Accepted(
                    time.time(),
                    tuple(envelope.rcpt_tos),
                    str(message["X-CTPN-Idempotency-Key"] or ""),
                )
            )
        return "250 Message accepted for delivery"

    def received(self) -> list[Accepted]:
        with self.lock:
            return list(self.messages)

    def first_by_address(self) -> dict[str, float]:
        seen: dict[str, float] = {}
        for message in self.received():
            for address in message.recipients:
                seen.setdefault(address, message.at)
        return seen

    def __enter__(self) -> SmtpSink:
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def broker_url() -> str:
    import os

    parts = urlsplit(os.environ["REDIS_URL"])
    return urlunsplit((parts.scheme, parts.netloc, f"/{BROKER_DB}", parts.query, ""))


def wait_for(condition: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


ESCALATION_QUEUES = "escalation"


@dataclass
class Celery:
    """Worker and beat processes of one benchmark; ``stop_all`` ends every one of them."""

    env: dict[str, str]
    folder: Path
    processes: list = field(default_factory=list)

    def start_worker(self, concurrency: int = 2, queues: str = "delivery,celery") -> Any:
        """A worker as the Procfile's: deliveries by default, ``ESCALATION_QUEUES`` for the
        escalation worker."""
        import redis

        from comms.watchdog import HEARTBEAT_KEY

        hostname = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        log = (self.folder / f"worker-{hostname}.log").open("ab")
        process = common.spawn(
            [
                common.PYTHON,
                "-m",
                "celery",
                "-A",
                "ctpn",
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
            cpu=None,
            env=self.env,
            stdout=log,
        )
        self.processes.append(process)
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        wait_for(
            lambda: (
                process.poll() is not None or client.hexists(HEARTBEAT_KEY, f"worker:{hostname}")
            ),
            60,
        )
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}")
        time.sleep(0.3)  # the pool forks after the heartbeat starts
        return process

    def start_beat(self) -> Any:
        log = (self.folder / "beat.log").open("ab")
        process = common.spawn(
            [
                common.PYTHON,
                "-m",
                "celery",
                "-A",
                "ctpn",
                "beat",
                "--loglevel=warning",
                "--schedule",
                str(self.folder / "celerybeat-schedule"),
            ],
            cpu=None,
            env=self.env,
            stdout=log,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            common.stop(process, timeout=5)


def alerting_env(sink: SmtpSink, **extra: str) -> dict[str, str]:
    return common.server_env(
        CELERY_BROKER_URL=broker_url(),
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        EMAIL_TIMEOUT="5",
        PUBLIC_BASE_URL="http://127.0.0.1",
        **extra,
    )


def use_broker() -> None:
    """This process sends its tasks to the benchmark's broker database, emptied first."""
    import redis

    from ctpn.celery import app

    app.conf.broker_url = broker_url()
    redis.Redis.from_url(broker_url()).flushdb()


def peak_memory_kib(process: Any) -> dict[str, int]:
    """Peak resident memory (VmHWM) of a worker's main process and of its largest pool child."""
    main = common.memory_kib(process.pid).get("VmHWM", 0)
    children = [common.memory_kib(pid).get("VmHWM", 0) for pid in common.children_of(process.pid)]
    return {"main_hwm_kib": main, "largest_child_hwm_kib": max(children, default=0)}
