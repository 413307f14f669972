"""Exports of an incident's record for debrief and inquiry: the PDF (read back with pypdf) and
the CSV files show a reader exactly what they may read, say what was withheld, carry the chain
verification, and are audited."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from coordination.markings import Marking
from coordination.meetings import meeting_schedule
from coordination.models import AuditEntry
from coordination.roles import Role
from coordination.services import action_create, decision_record, decision_supersede
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open, timeline_add

from .auth import signed_in_client
from .factories import UserFactory, decision_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(incident, commander, liaison, police, fire):
    """An open decision, a superseded one with its correction, a dissent, and restricted
    decisions of the fire service that the police commander may not read."""
    first = decision_record(
        incident_id=incident.pk,
        author=commander,
        agreed_by=[police],
        dissents=[(fire, "Fire cannot commit crews yet")],
        **decision_fields(decision="OPEN-DECISION-ONE"),
    )
    decision_supersede(
        original=first, author=commander, **decision_fields(decision="OPEN-CORRECTION")
    )
    decision_record(
        incident_id=incident.pk,
        author=liaison,
        marking=Marking.RED,
        **decision_fields(decision="SECRET-RED-FIRE"),
    )
    decision_record(
        incident_id=incident.pk,
        author=liaison,
        marking=Marking.AMBER_STRICT,
        **decision_fields(decision="SECRET-STRICT-FIRE"),
    )
    timeline_add(incident_id=incident.pk, user=commander, text='=HYPERLINK("http://x")')
    timeline_add(incident_id=incident.pk, user=liaison, text="SECRET-TIMELINE", marking=Marking.RED)
    action_create(incident_id=incident.pk, user=commander, title="@SUM(A1)", owner_agency=police)
    return incident


def pdf_text(content: bytes) -> str:
    """The document's text with line breaks as spaces (a phrase may wrap at any word)."""
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_the_pdf_holds_what_the_reader_may_read_and_nothing_else(record, commander):
    client = signed_in_client(commander)
    response = client.get(reverse("pages:incident-export-pdf", args=[record.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "OPEN-DECISION-ONE" in text and "OPEN-CORRECTION" in text
    assert "SUPERSEDED by D-0002" in text
    assert "Fire cannot commit crews yet" in text
    assert "SECRET" not in text
    # Partial, and said so: two decisions and one timeline entry withheld.
    assert "2 decision log entries" in text and "1 timeline entry" in text
    assert "INTACT" in text
    final_hash = record.decisions.order_by("-sequence").first().entry_hash
    assert final_hash in text.replace(" ", "")
    assert "page 1 of" in text
    assert "TLP:AMBER" in text
    assert "EXERCISE" not in text
    assert record.reference in text and record.city.name in text


def test_the_author_sees_the_restricted_entries_and_the_banner_says_red(record, liaison):
    client = signed_in_client(liaison)
    response = client.get(reverse("incident-export-pdf", kwargs={"incident_pk": record.pk}))
    assert response.status_code == 200
    text = pdf_text(response.content)
    assert "SECRET-RED-FIRE" in text and "SECRET-STRICT-FIRE" in text
    assert "SECRET-TIMELINE" in text
    assert "TLP:RED" in text
    assert "Nothing of this incident" in text


def test_an_exercise_says_exercise_on_every_page(commander, police, fire):
    exercise = incident_open(
        user=commander,
        title="Winter exercise",
        type=IncidentType.CBRN,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        participating_agencies=[fire],
        is_exercise=True,
    )
    for number in range(12):  # enough to run over several pages
        decision_record(
            incident_id=exercise.pk,
            author=commander,
            **decision_fields(decision=f"Exercise decision {number}"),
        )
    response = signed_in_client(commander).get(
        reverse("pages:incident-export-pdf", args=[exercise.pk])
    )
    pages = PdfReader(io.BytesIO(response.content)).pages
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        text = page.extract_text()
        assert "EXERCISE" in text
        assert f"page {number} of {len(pages)}" in text


def test_csv_exports_hold_the_visible_rows_with_markings_and_no_formulas(record, commander):
    client = signed_in_client(commander)
    decisions = client.get(reverse("pages:incident-export-csv", args=[record.pk, "decisions"]))
    assert decisions.status_code == 200
    body = b"".join(decisions.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["entry"] for row in rows] == ["D-0001", "D-0002"]
    assert {row["marking"] for row in rows} == {"AMBER"}
    assert rows[0]["superseded_by"] == "D-0002"
    assert "SECRET" not in body

    timeline = client.get(reverse("incident-export-timeline", kwargs={"incident_pk": record.pk}))
    rows = list(csv.DictReader(io.StringIO(b"".join(timeline.streaming_content).decode())))
    texts = [row["text"] for row in rows]
    assert '\'=HYPERLINK("http://x")' in texts
    assert not any("SECRET" in text for text in texts)

    actions = client.get(reverse("pages:incident-export-csv", args=[record.pk, "actions"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(actions.streaming_content).decode())))
    assert [row["title"] for row in rows] == ["'@SUM(A1)"]
    assert rows[0]["marking"] == "AMBER"

    unknown = client.get(reverse("pages:incident-export-csv", args=[record.pk, "secrets"]))
    assert unknown.status_code == 404


def test_exports_are_audited_with_the_restricted_items_they_contain(record, commander, liaison):
    signed_in_client(commander).get(reverse("pages:incident-export-pdf", args=[record.pk]))
    export = AuditEntry.objects.filter(action="export", user=commander).get()
    assert export.detail["format"] == "pdf"
    assert export.detail["withheld"] == {"decisions": 2, "timeline": 1, "actions": 0}
    assert not AuditEntry.objects.filter(action="read.restricted", user=commander).exists()

    signed_in_client(liaison).get(
        reverse("pages:incident-export-csv", args=[record.pk, "decisions"])
    )
    assert AuditEntry.objects.filter(action="export", user=liaison).get().detail["what"] == (
        "decisions"
    )
    restricted = AuditEntry.objects.filter(action="read.restricted", user=liaison)
    assert sorted(e.detail["marking"] for e in restricted) == ["AMBER+STRICT", "RED"]


def test_non_participants_get_404(record, outsider, city):
    client = signed_in_client(outsider)
    for url in (
        reverse("pages:incident-export-pdf", args=[record.pk]),
        reverse("pages:incident-export-csv", args=[record.pk, "decisions"]),
        reverse("incident-export-pdf", kwargs={"incident_pk": record.pk}),
        reverse("incident-export-actions", kwargs={"incident_pk": record.pk}),
    ):
        assert client.get(url).status_code == 404, url
    assert not AuditEntry.objects.filter(action="export", user=outsider).exists()
    observer = UserFactory(agency=record.lead_agency, roles=[Role.OBSERVER])
    assert (
        signed_in_client(observer)
        .get(reverse("incident-export-actions", kwargs={"incident_pk": record.pk}))
        .status_code
        == 200
    )


def test_a_tampered_log_is_exported_as_broken_where_it_breaks(incident, commander):
    entries = [
        decision_record(incident_id=incident.pk, author=commander, **decision_fields(decision=t))
        for t in ("One", "Two", "Three")
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE coordination_decision DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE coordination_decision SET decision = 'Rewritten' WHERE id = %s", [entries[1].pk]
        )
        cursor.execute("ALTER TABLE coordination_decision ENABLE TRIGGER USER")
    response = signed_in_client(commander).get(
        reverse("pages:incident-export-pdf", args=[incident.pk])
    )
    text = pdf_text(response.content)
    assert "BROKEN at entry D-0002" in text
    assert "INTACT" not in text
    # The last hash that verified: that of the entry before the break.
    assert entries[0].entry_hash in text.replace(" ", "")


def test_decisions_name_the_meeting_they_were_taken_in(incident, commander):
    meeting = meeting_schedule(
        incident_id=incident.pk,
        user=commander,
        title="SCG-MEETING-ONE",
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    decision_record(incident_id=incident.pk, author=commander, meeting=meeting, **decision_fields())
    client = signed_in_client(commander)
    text = pdf_text(client.get(reverse("pages:incident-export-pdf", args=[incident.pk])).content)
    assert "SCG-MEETING-ONE" in text
    body = b"".join(
        client.get(
            reverse("pages:incident-export-csv", args=[incident.pk, "decisions"])
        ).streaming_content
    ).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["meeting"] for row in rows] == ["SCG-MEETING-ONE"]
