"""The OpenAPI schema and its interactive docs: clean, complete, open, and served locally."""

import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLResolver, get_resolver


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    # --fail-on-warn turns every warning (an unresolvable type, a guessed serializer, a name
    # clash between components) into an error; --validate checks the result against OpenAPI 3.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return path


def test_the_schema_generates_without_warnings_or_errors(schema_file):
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "CTPN coordination API"


def _router_paths() -> set[str]:
    """Every /api/v1/ route, written the way OpenAPI writes paths ({incident_pk}, {id})."""
    api_v1 = next(
        entry
        for entry in get_resolver().url_patterns
        if isinstance(entry, URLResolver) and str(entry.pattern) == "api/v1/"
    )
    paths = set()
    for pattern in api_v1.url_patterns:
        route = str(pattern.pattern).lstrip("^").rstrip("$")
        route = re.sub(r"\(\?P<pk>[^)]*\)", "{id}", route)
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
        route = route.replace("\\.", ".")  # a literal dot, as in export/log.pdf
        paths.add(f"/api/v1/{route}")
    return paths


def test_every_api_route_is_documented(schema_file):
    documented = set(yaml.safe_load(schema_file.read_text(encoding="utf-8"))["paths"])

    assert _router_paths() <= documented
    assert "/api/v1/incidents/{incident_pk}/decisions/verify/" in documented


def test_the_documented_writes_ask_for_the_input_serializers(schema_file):
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))
    create_decision = schema["paths"]["/api/v1/incidents/{incident_pk}/decisions/"]["post"]
    body = create_decision["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    required = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["required"]

    assert {"information", "threat_assessment", "options", "decided_at"} <= set(required)
    marking = schema["components"]["schemas"]["MarkingEnum"]["enum"]
    assert "AMBER" in marking


@pytest.mark.django_db
def test_the_schema_and_docs_answer_without_login(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/incidents/" in schema.content
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


@pytest.mark.django_db
def test_the_docs_serve_swagger_ui_from_local_static_files(client):
    html = client.get("/api/docs/").content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)

    assert not re.search(r"https?://", html), "the docs page must not load anything remote"
    assert "cdn" not in html.lower()
    scripts = [a for a in assets if a.endswith(".js")]
    assert any("swagger-ui-bundle" in a for a in scripts)
    for asset in assets:
        # Its start-up script comes from the docs view itself (no inline script), the rest static.
        assert asset.startswith("/static/") or asset == "/api/docs/?script=", asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        body = b"".join(response.streaming_content if response.streaming else [response.content])
        assert body, asset
