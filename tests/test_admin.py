"""The Django admin lists everything; the decision log and incident records are read-only there."""

import pytest
from django.contrib import admin
from django.urls import reverse

from coordination.models import Decision
from coordination.services import decision_record

from .factories import UserFactory, decision_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    superuser = UserFactory(username="root", agency=None, is_superuser=True, is_staff=True)
    client.force_login(superuser)
    return client


def test_every_model_of_the_platform_is_listed(superuser_client, incident, liaison):
    decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    ours = [m for m in admin.site._registry if m._meta.app_label in {"coordination", "incidents"}]
    assert {m.__name__ for m in ours} >= {
        "City",
        "Agency",
        "User",
        "Decision",
        "Action",
        "Incident",
        "MethaneReport",
        "TimelineEntry",
        "IncidentEvent",
    }
    for model in ours:
        meta = model._meta
        response = superuser_client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        )
        assert response.status_code == 200, meta.label


def test_the_decision_log_cannot_be_added_changed_or_deleted_in_the_admin(
    superuser_client, incident, liaison
):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())

    assert superuser_client.get(reverse("admin:coordination_decision_add")).status_code == 403
    change_url = reverse("admin:coordination_decision_change", args=[entry.pk])
    page = superuser_client.get(change_url)
    assert page.status_code == 200  # shown, read-only
    assert b'name="_save"' not in page.content
    assert superuser_client.post(change_url, {"decision": "changed"}).status_code == 403
    delete_url = reverse("admin:coordination_decision_delete", args=[entry.pk])
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Decision.objects.get(pk=entry.pk).decision == entry.decision


def test_the_directory_is_editable(superuser_client, police):
    url = reverse("admin:coordination_agency_change", args=[police.pk])
    response = superuser_client.post(
        url,
        {
            "city": police.city_id,
            "name": "Police Authority",
            "short_name": "POL",
            "type": "police",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    police.refresh_from_db()
    assert police.name == "Police Authority"
