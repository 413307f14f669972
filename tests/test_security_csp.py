"""Content Security Policy: scripts and styles only from our own files, nothing inline anywhere."""

import os
import re
import subprocess
import sys

import pytest

from .factories import UserFactory
from .servers import ROOT

TEMPLATES = ROOT / "templates"
SCRIPTS = ROOT / "static" / "js"


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


@pytest.mark.django_db
def test_pages_carry_a_policy_with_nothing_inline(client, liaison):
    client.force_login(liaison)
    response = client.get("/incidents/")

    policy = policy_of(response)

    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "https://tile.openstreetmap.org"]
    assert policy["connect-src"] == ["'self'", "ws://testserver"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_the_websocket_origin_follows_the_scheme(client, liaison, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client.force_login(liaison)
    response = client.get("/incidents/", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="testserver")
    assert policy_of(response)["connect-src"] == ["'self'", "wss://testserver"]


@pytest.mark.django_db
def test_the_sign_in_page_admin_and_api_docs_carry_it_too(client):
    UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    for path in ["/accounts/login/", "/admin/login/", "/api/docs/"]:
        response = client.get(path)
        assert policy_of(response)["script-src"] == ["'self'"], path


def test_the_map_tile_server_is_allowed_for_images():
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "ctpn.settings",
        "CTPN_MAP_TILE_URL": "https://{s}.tiles.city.example:8443/{z}/{x}/{y}.png",
    }
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['img-src'])"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[\"'self'\", 'data:', 'https://*.tiles.city.example:8443']"


INLINE_IN_TEMPLATES = [
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<style", re.I), "a style element"),
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline script"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"\shx-on", re.I), "an htmx inline handler"),
]


def test_no_template_has_inline_script_style_or_handlers():
    found = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for pattern, what in INLINE_IN_TEMPLATES:
            for match in pattern.finditer(text):
                found.append(f"{template.relative_to(ROOT)}: {what}: {match.group(0)!r}")
    assert found == []


def test_no_script_of_ours_writes_inline_styles_or_evaluates_strings():
    found = []
    forbidden = [
        (re.compile(r"\.style\.cssText|setAttribute\(\s*[\"']style"), "an inline style"),
        (re.compile(r"\beval\(|new Function\(|setTimeout\(\s*[\"']"), "evaluated code"),
        (re.compile(r"\.on[a-z]+\s*=\s*[\"']"), "a handler from a string"),
    ]
    for script in SCRIPTS.glob("*.js"):
        text = script.read_text()
        for pattern, what in forbidden:
            found += [f"{script.name}: {what}" for _ in pattern.finditer(text)]
    assert found == []


def test_the_inline_checks_can_fail(tmp_path):
    sample = '<p style="color:red" onclick="go()">x</p><script>alert(1)</script>'
    hits = [what for pattern, what in INLINE_IN_TEMPLATES if pattern.search(sample)]
    assert hits == ["a style attribute", "an inline script", "an inline event handler"]


COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def violations_on(tab, path: str, ready: str) -> list[str]:
    console: list[str] = []
    tab.on(
        "console",
        lambda message: (
            console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    tab.goto(path)
    tab.wait_for_selector(ready)
    tab.wait_for_timeout(300)  # late scripts (the live client, htmx swaps) have run
    return [*tab.evaluate("window.__cspViolations"), *console]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_the_policy_in_a_real_browser(signed_in, incident, commander, asgi_server):
    root = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    pages = [
        (commander, f"/incidents/{incident.pk}/", "#live-status[data-state=live]"),
        (commander, f"/incidents/{incident.pk}/wall/", "#live-status[data-state=live]"),
        (commander, f"/incidents/{incident.pk}/decisions/new/", "form"),
        (commander, "/incidents/", "main"),
        (commander, "/alerts/", "main"),
        (commander, "/activations/", "main"),
        (commander, "/activations/new/", "form.activation-form"),
        (commander, "/rotas/", "main"),
        (commander, "/accounts/password_change/", "form"),
        (root, "/admin/", "#content"),
        (root, "/admin/coordination/user/", "#changelist"),
        (root, f"/admin/coordination/user/{commander.pk}/change/", "#user_form"),
        (root, "/api/docs/", ".swagger-ui .info"),
    ]
    found = {}
    for user, path, ready in pages:
        tab = signed_in(user, bypass_csp=False)
        tab.add_init_script(COLLECT_VIOLATIONS)
        violations = violations_on(tab, path, ready)
        if violations:
            found[path] = violations
    anonymous = signed_in(commander, bypass_csp=False).context.browser.new_context(
        base_url=asgi_server.url
    )
    tab = anonymous.new_page()
    tab.add_init_script(COLLECT_VIOLATIONS)
    if violations := violations_on(tab, "/accounts/login/", "form.login"):
        found["/accounts/login/"] = violations
    anonymous.close()
    assert found == {}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_browser_reports_an_inline_script_it_refuses(signed_in, commander):
    """The check above can fail: an inline script injected into a page is reported."""
    tab = signed_in(commander, bypass_csp=False)
    tab.add_init_script(COLLECT_VIOLATIONS)
    violations_on(tab, "/incidents/", "main")
    tab.evaluate(
        "() => { const s = document.createElement('div');"
        " s.innerHTML = '<img src=x onerror=alert(1)>'; document.body.append(s); }"
    )
    tab.wait_for_timeout(300)
    assert any("script-src" in v for v in tab.evaluate("window.__cspViolations"))
