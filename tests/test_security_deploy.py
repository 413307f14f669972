"""Production settings pass Django's deployment checklist with nothing to report."""

import os
import secrets
import subprocess
import sys

from .servers import ROOT


def production_environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "SESSION_", "DEBUG", "LOGIN_", "API_THROTTLE"))
    }
    env.update(
        CTPN_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="ctpn.city.example",
        # The checks never connect: any well-formed URLs will do.
        DATABASE_URL="postgres://ctpn:secret@db.city.example:5432/ctpn",
        REDIS_URL="redis://redis.city.example:6379/0",
        PYTHONPATH=str(ROOT),
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_reports_nothing_with_production_settings():
    result = check_deploy(production_environment())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_check_deploy_would_fail_on_a_warning():
    """The check above can fail: turning HSTS off is reported and fails the run."""
    env = production_environment()
    env["SECURE_HSTS_SECONDS"] = "0"

    result = check_deploy(env)

    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


def test_production_settings_are_hardened():
    env = production_environment()
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.SECURE_REFERRER_POLICY, "
        "s.X_FRAME_OPTIONS, s.DEBUG)"
    )
    env["DJANGO_SETTINGS_MODULE"] = "ctpn.settings"
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [
        "True",
        "True",
        "True",
        "31536000",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "same-origin",
        "DENY",
        "False",
    ]
