"""Django's PostgreSQL backend, plus a small per-process stock of idle connections.

Under ASGI, Django runs each HTTP request's sync code in a thread of its own, so a connection kept
by Django itself (``CONN_MAX_AGE``) would stay with a thread that never serves another request
(``ctpn.asgi`` closes them at the end of each request instead). Opening a PostgreSQL connection
costs more than most requests' queries together, so the ASGI server (and only it: see
``enable_reuse``) hands a finished request's connection to the next request instead of closing it:

- only a connection that is open, outside any transaction, and without errors is kept;
- never more than ``DATABASE_IDLE_CONNECTIONS`` idle ones per process; the rest are closed;
- one is never kept past ``CONN_MAX_AGE`` from when it was opened;
- a connection is used by one request at a time: taken out of the stock, then given back;
- a forked child never uses its parent's connections.

Nothing else changes: each request still gets a connection of its own, in autocommit, with the
time zone Django sets on every connection it opens.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import psycopg2.extensions
from django.conf import settings
from django.db.backends.postgresql import base

_lock = threading.Lock()
# Per database alias: (connection, opened at), most recently given back last.
_idle: dict[str, list[tuple[Any, float]]] = {}
_opened_at: dict[int, float] = {}
_state = {"enabled": False, "pid": 0}


def enable_reuse() -> None:
    """Keep finished requests' connections in this process (the ASGI server calls it at startup)."""
    with _lock:
        _state["enabled"] = True
        _state["pid"] = os.getpid()


def disable_reuse() -> None:
    """Stop keeping connections, and close the idle ones (at shutdown)."""
    with _lock:
        _state["enabled"] = False
        stock = [connection for entries in _idle.values() for connection, _ in entries]
        _idle.clear()
        _opened_at.clear()
    for connection in stock:
        _close_quietly(connection)


def idle_count(alias: str = "default") -> int:
    with _lock:
        return len(_idle.get(alias, []))


def _active() -> bool:
    return bool(_state["enabled"]) and _state["pid"] == os.getpid()


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to do
        connection.close()


def _expired(opened_at: float, max_age: int | None) -> bool:
    return max_age is not None and time.monotonic() - opened_at >= max_age


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if _active():
            max_age = self.settings_dict["CONN_MAX_AGE"]
            while True:
                with _lock:
                    entries = _idle.get(self.alias)
                    if not entries:
                        break
                    connection, opened_at = entries.pop()
                if connection.closed or _expired(opened_at, max_age):
                    _close_quietly(connection)
                    continue
                _opened_at[id(connection)] = opened_at
                return connection
        connection = super().get_new_connection(conn_params)
        if _active():
            _opened_at[id(connection)] = time.monotonic()
        return connection

    def _keepable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or self.errors_occurred:
            return False
        if self.in_atomic_block or not self.get_autocommit():
            return False
        idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        try:
            return bool(connection.info.transaction_status == idle)
        except Exception:
            return False

    def _close(self):
        if _active() and self._keepable():
            connection = self.connection
            opened_at = _opened_at.pop(id(connection), None)
            limit = settings.DATABASE_IDLE_CONNECTIONS
            max_age = self.settings_dict["CONN_MAX_AGE"]
            if opened_at is not None and not _expired(opened_at, max_age):
                with _lock:
                    entries = _idle.setdefault(self.alias, [])
                    if len(entries) < limit:
                        entries.append((connection, opened_at))
                        return
        if self.connection is not None:
            _opened_at.pop(id(self.connection), None)
        super()._close()
