"""Pages of the decision log are served from the cache when the same reader reads them again and
nothing has happened in the incident since; never across readers, never stale after a change, and
never for a page showing a restricted entry (each such read is audited)."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coordination.models import AuditEntry
from coordination.services import (
    decision_marking_change,
    decision_position_record,
    decision_record,
)

from .factories import decision_fields

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def url(incident) -> str:
    return f"/api/v1/incidents/{incident.pk}/decisions/"


def log_reads(queries) -> list[str]:
    return [q["sql"] for q in queries if 'FROM "coordination_decision"' in q["sql"]]


def test_a_second_read_is_served_without_reading_the_log(api, incident, commander):
    for _ in range(3):
        decision_record(incident_id=incident.pk, author=commander, **decision_fields())
    client = api(commander)
    first = client.get(url(incident))
    with CaptureQueriesContext(connection) as queries:
        second = client.get(url(incident))
    assert second.status_code == 200
    assert second.json() == first.json()
    assert log_reads(queries) == []
    # Another page, or another ordering, is another entry.
    with CaptureQueriesContext(connection) as queries:
        client.get(url(incident) + "?ordering=-sequence")
    assert log_reads(queries) != []


def test_a_position_recorded_later_shows_on_the_next_read(api, incident, commander, liaison):
    decision = decision_record(incident_id=incident.pk, author=commander, **decision_fields())
    client = api(commander)
    before = client.get(url(incident)).json()["results"][0]
    decision_position_record(decision=decision, user=liaison, position="agree", reason="")
    after = client.get(url(incident)).json()["results"][0]
    assert len(after["positions"]) == len(before["positions"]) + 1


def test_readers_never_share_a_cached_page(api, incident, commander, liaison):
    decision_record(incident_id=incident.pk, author=commander, **decision_fields())
    decision_record(
        incident_id=incident.pk,
        author=commander,
        marking="RED",
        recipient_people=[commander],
        **decision_fields(decision="For gold only"),
    )
    for reader, count in ((liaison, 1), (commander, 2), (liaison, 1), (commander, 2)):
        results = api(reader).get(url(incident)).json()["results"]
        assert len(results) == count, reader.username


def test_a_marking_raised_hides_the_entry_on_the_next_read(api, incident, commander, liaison):
    decision = decision_record(incident_id=incident.pk, author=commander, **decision_fields())
    reader = api(liaison)
    assert len(reader.get(url(incident)).json()["results"]) == 1
    decision_marking_change(
        decision_id=decision.pk,
        user=commander,
        marking="RED",
        recipient_people=[commander],
        reason="Names a source",
    )
    assert reader.get(url(incident)).json()["results"] == []


def test_every_read_of_a_page_with_a_restricted_entry_is_audited(api, incident, commander):
    decision_record(
        incident_id=incident.pk,
        author=commander,
        marking="RED",
        recipient_people=[commander],
        **decision_fields(),
    )
    client = api(commander)
    reads = AuditEntry.objects.filter(action="read.restricted")
    before = reads.count()
    for _ in range(3):
        assert len(client.get(url(incident)).json()["results"]) == 1
    assert reads.count() == before + 3
