"""Real servers for the tests that need the platform as deployed: an ASGI server (uvicorn) serving
HTTP and WebSockets against the test database, for browsers and WebSocket clients.

pytest-django's ``live_server`` speaks WSGI only, so it cannot carry the dashboard's WebSocket. The
server here is a separate process, like production: it reads the test database only after a test
has committed its data, so tests that use it need ``transactional_db``.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the test database pytest-django created (``test_<name>``)."""
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )


def server_environment(**extra: str) -> dict[str, str]:
    """Environment for a server process of the platform against the test database and Redis."""
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=test_database_url(),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DEBUG="false",
        CTPN_ENV="embedded",
    )
    env.update(extra)
    return env


def wait_until_listening(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer within {timeout} s")


# Map tiles from a port nothing listens on: pages must work with no tile server reachable, and the
# tests must not depend on (or leak requests to) a public one.
UNREACHABLE_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"


# Browsers and the schema fuzzer make many requests from one address in a short time: the
# session's server counts them at rates no test reaches (the throttling tests set their own).
UNTHROTTLED = {
    "API_THROTTLE_ANON": "1000000/minute",
    "API_THROTTLE_USER": "1000000/minute",
    "API_THROTTLE_AUTH_TOKEN": "1000000/minute",
}


@dataclass
class AsgiServer:
    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start_asgi_server(workers: int = 1, port: int | None = None, **env: str) -> AsgiServer:
    """Start uvicorn; on ``port`` if given (e.g. to bring a stopped server back where its clients
    will reconnect), else on a free one."""
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "ctpn.asgi:application",
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
        cwd=ROOT,
        env=server_environment(**env),
    )
    server = AsgiServer(url=f"http://127.0.0.1:{port}", process=process)
    try:
        wait_until_listening(server.url, process)
    except Exception:
        stop_server(process)
        raise
    return server


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker) -> Iterator[AsgiServer]:
    """The platform under uvicorn, as deployed, for the whole session (it starts in ~2 s)."""
    with django_db_blocker.unblock():
        server = start_asgi_server(CTPN_MAP_TILE_URL=UNREACHABLE_TILES, **UNTHROTTLED)
    yield server
    stop_server(server.process)
