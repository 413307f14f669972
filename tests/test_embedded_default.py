"""Settings from the environment: the embedded default needs nothing; production refuses to start
without what it must have. These run real processes, as `make run` and a deployment would."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603  (our own manage.py, fixed arguments)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of the platform's variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"DATABASE_URL", "REDIS_URL", "CTPN_ENV", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}
        and not key.startswith("DJANGO_")
    }
    # Nothing listens here: publishing fails quietly, as when the local Redis is not up yet.
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    env.update(extra)
    return env


def test_production_refuses_to_start_without_secret_key_and_allowed_hosts():
    base = {"CTPN_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1/x"}

    missing_key = manage("check", env=clean_env(**base, ALLOWED_HOSTS="ctpn.example"))
    assert missing_key.returncode != 0
    assert "SECRET_KEY must be set" in missing_key.stderr

    missing_hosts = manage("check", env=clean_env(**base, SECRET_KEY="s" * 50))
    assert missing_hosts.returncode != 0
    assert "ALLOWED_HOSTS must be set" in missing_hosts.stderr

    complete = manage(
        "check", env=clean_env(**base, SECRET_KEY="s" * 50, ALLOWED_HOSTS="ctpn.example")
    )
    assert complete.returncode == 0, complete.stderr


def test_a_malformed_variable_is_named():
    result = manage("check", env=clean_env(DEBUG="perhaps"))
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_embedded_default_migrates_seeds_idempotently_and_guards_the_log(tmp_path):
    """No DATABASE_URL: SQLite in the data folder, demo data, append-only triggers, verify."""
    env = clean_env(CTPN_DATA_DIR=str(tmp_path))
    env.pop("REDIS_URL")  # the embedded default's own Redis address (nothing runs there now)

    for command in (["migrate", "--noinput"], ["seed_demo"], ["seed_demo"]):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stderr
    assert "demo data already loaded" in result.stdout
    assert "gold" in result.stdout and "ctpn-demo-2026" in result.stdout

    verified = manage("verify_decision_log", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "STO-2026-0001: intact, 5 entries" in verified.stdout

    database = tmp_path / "ctpn.sqlite3"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM incidents_incident").fetchone() == (1,)
        for statement in (
            "UPDATE coordination_decision SET decision = 'changed'",
            "DELETE FROM coordination_decision",
            "DELETE FROM coordination_decisionposition",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
