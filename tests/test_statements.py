"""Public statements: a communications lead drafts, the partners named approve or ask for
changes, a new version needs every approval again, and only the owning agency publishes, once
everyone has approved. One statement per incident is the current public line."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from comms.models import PublicStatement, ReviewDecision, StatementStatus, StatementVersion
from comms.statements import (
    ApprovalsMissing,
    statement_approvals,
    statement_approve,
    statement_draft,
    statement_publish,
    statement_request_changes,
    statement_revise,
    statement_withdraw,
)
from coordination.models import AgencyType
from coordination.roles import Role
from ctpn.errors import Conflict
from incidents.models import IncidentEvent, IncidentStatus
from incidents.services import incident_transition

from .factories import AgencyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ambulance(city, incident, commander):
    agency = AgencyFactory(city=city, name="Ambulance", short_name="AMB", type=AgencyType.AMBULANCE)
    incident.participating_agencies.add(agency)
    return agency


@pytest.fixture
def police_comms(police):
    return UserFactory(username="police-comms", agency=police, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def police_comms_2(police):
    return UserFactory(username="police-comms-2", agency=police, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def fire_comms(fire):
    return UserFactory(username="fire-comms", agency=fire, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def ambulance_comms(ambulance):
    return UserFactory(username="amb-comms", agency=ambulance, roles=[Role.COMMUNICATIONS_LEAD])


@pytest.fixture
def transport_comms(transport):
    return UserFactory(username="trn-comms", agency=transport, roles=[Role.COMMUNICATIONS_LEAD])


def draft(incident, user, *approvers, headline="Station closed", body="Avoid the area."):
    return statement_draft(
        incident_id=incident.pk,
        user=user,
        headline=headline,
        body=body,
        approver_agencies=list(approvers),
    )


def kinds(incident) -> list[str]:
    return list(
        IncidentEvent.objects.filter(incident=incident, kind__startswith="statement.")
        .order_by("seq")
        .values_list("kind", flat=True)
    )


# --- the services ---------------------------------------------------------------------------------


def test_a_named_partner_approves_and_the_owner_publishes(
    incident, police_comms, fire_comms, fire, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        statement = draft(incident, police_comms, fire)
    assert statement.status == StatementStatus.DRAFT and statement.marking == "AMBER"
    assert [a.decision for a in statement_approvals(statement)] == [None]

    review = statement_approve(statement_id=statement.pk, user=fire_comms)
    assert review.version.number == 1 and review.decision == ReviewDecision.APPROVED
    published = statement_publish(statement_id=statement.pk, user=police_comms)

    published.refresh_from_db()
    assert published.status == StatementStatus.PUBLISHED
    assert published.marking == "CLEAR"
    assert published.published_by == police_comms and published.published_at is not None
    assert kinds(incident) == ["statement.drafted", "statement.approved", "statement.published"]
    event = IncidentEvent.objects.get(incident=incident, kind="statement.published")
    assert event.marking == "CLEAR" and event.payload["headline"] == "Station closed"


def test_requesting_changes_needs_a_comment_and_is_recorded(
    incident, police_comms, fire_comms, fire
):
    statement = draft(incident, police_comms, fire)
    with pytest.raises(ValidationError) as refused:
        statement_request_changes(statement_id=statement.pk, user=fire_comms, comment="  ")
    assert "comment" in refused.value.message_dict
    assert kinds(incident) == ["statement.drafted"]

    statement_request_changes(
        statement_id=statement.pk, user=fire_comms, comment="Say which exits are open."
    )
    statement.refresh_from_db()
    [approval] = statement_approvals(statement)
    assert approval.decision == ReviewDecision.CHANGES_REQUESTED
    assert approval.review is not None and approval.review.comment == "Say which exits are open."
    assert kinds(incident)[-1] == "statement.changes_requested"
    with pytest.raises(ApprovalsMissing):
        statement_publish(statement_id=statement.pk, user=police_comms)


def test_a_new_version_resets_approvals_and_keeps_the_earlier_text(
    incident, police_comms, fire_comms, fire
):
    statement = draft(incident, police_comms, fire, headline="First", body="First body.")
    statement_approve(statement_id=statement.pk, user=fire_comms)
    statement_revise(
        statement_id=statement.pk, user=police_comms, headline="Second", body="Second body."
    )
    statement.refresh_from_db()

    assert statement.current_version.number == 2
    assert [a.decision for a in statement_approvals(statement)] == [None]
    first = StatementVersion.objects.get(statement=statement, number=1)
    assert (first.headline, first.body) == ("First", "First body.")
    assert statement.reviews.get().version == first  # the approval names the version approved
    with pytest.raises(ApprovalsMissing) as refused:
        statement_publish(statement_id=statement.pk, user=police_comms)
    assert [a.short_name for a in refused.value.missing] == ["FRS"]
    assert kinds(incident)[-1] == "statement.revised"

    statement_approve(statement_id=statement.pk, user=fire_comms)
    statement_publish(statement_id=statement.pk, user=police_comms)
    statement.refresh_from_db()
    assert statement.status == StatementStatus.PUBLISHED


def test_a_revision_must_change_the_wording(incident, police_comms, fire):
    statement = draft(incident, police_comms, fire, headline="Same", body="Same.")
    with pytest.raises(ValidationError):
        statement_revise(
            statement_id=statement.pk, user=police_comms, headline="Same", body="Same."
        )


def test_publishing_waits_for_every_named_partner(
    incident, police_comms, fire_comms, ambulance_comms, fire, ambulance
):
    statement = draft(incident, police_comms, fire, ambulance)
    with pytest.raises(ApprovalsMissing) as refused:
        statement_publish(statement_id=statement.pk, user=police_comms)
    assert "AMB" in refused.value.message and "FRS" in refused.value.message
    statement_approve(statement_id=statement.pk, user=ambulance_comms)
    with pytest.raises(ApprovalsMissing) as refused:
        statement_publish(statement_id=statement.pk, user=police_comms)
    assert [a.short_name for a in refused.value.missing] == ["FRS"]
    statement_approve(statement_id=statement.pk, user=fire_comms)
    assert statement_publish(statement_id=statement.pk, user=police_comms).status == "published"


def test_only_the_owning_agency_publishes_revises_and_withdraws(
    incident, police_comms, police_comms_2, fire_comms, fire, commander
):
    statement = draft(incident, police_comms, fire)
    statement_approve(statement_id=statement.pk, user=fire_comms)
    for step in (statement_publish, statement_withdraw):
        with pytest.raises(PermissionDenied):
            step(statement_id=statement.pk, user=fire_comms)
    with pytest.raises(PermissionDenied):  # a commander is no communications lead
        statement_publish(statement_id=statement.pk, user=commander)
    with pytest.raises(PermissionDenied):
        statement_revise(statement_id=statement.pk, user=fire_comms, headline="X", body="Y")
    # Any communications lead of the owning agency may publish, not only the author.
    statement_publish(statement_id=statement.pk, user=police_comms_2)
    statement.refresh_from_db()
    assert statement.published_by == police_comms_2


def test_only_the_agencies_named_answer(
    incident, police_comms, fire_comms, ambulance_comms, fire, ambulance
):
    statement = draft(incident, police_comms, fire)
    with pytest.raises(PermissionDenied):
        statement_approve(statement_id=statement.pk, user=ambulance_comms)
    with pytest.raises(PermissionDenied):  # the owner approves by publishing
        statement_approve(statement_id=statement.pk, user=police_comms)


def test_a_draft_names_partners_of_the_incident_only(incident, police_comms, police, transport):
    with pytest.raises(ValidationError) as refused:
        draft(incident, police_comms, transport)
    assert "approver_agencies" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        draft(incident, police_comms, police)
    assert "approver_agencies" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        statement_draft(
            incident_id=incident.pk, user=police_comms, headline="", body="x", marking="RED"
        )
    assert "headline" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        statement_draft(
            incident_id=incident.pk, user=police_comms, headline="x", body="x", marking="RED"
        )
    assert "marking" in refused.value.message_dict
    assert PublicStatement.objects.count() == 0


def test_publishing_supersedes_the_current_line(incident, police_comms, fire_comms, fire):
    first = draft(incident, police_comms, headline="First line")
    statement_publish(statement_id=first.pk, user=police_comms)
    second = draft(incident, police_comms, fire, headline="Second line")
    statement_approve(statement_id=second.pk, user=fire_comms)
    statement_publish(statement_id=second.pk, user=police_comms)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == StatementStatus.SUPERSEDED and first.superseded_by == second
    assert first.superseded_at == second.published_at
    assert PublicStatement.objects.filter(incident=incident, status="published").get() == second
    assert kinds(incident)[-2:] == ["statement.superseded", "statement.published"]


def test_the_database_holds_one_current_statement_per_incident(incident, police_comms):
    first = draft(incident, police_comms, headline="First line")
    second = draft(incident, police_comms, headline="Second line")
    statement_publish(statement_id=first.pk, user=police_comms)
    with pytest.raises(IntegrityError), transaction.atomic():
        PublicStatement.objects.filter(pk=second.pk).update(
            status="published", marking="CLEAR", published_at=timezone.now()
        )


def test_a_published_statement_is_always_clear_in_the_database(incident, police_comms):
    statement = draft(incident, police_comms)
    with pytest.raises(IntegrityError), transaction.atomic():
        PublicStatement.objects.filter(pk=statement.pk).update(published_at=timezone.now())


def test_only_a_draft_changes(incident, police_comms, fire_comms, fire):
    statement = draft(incident, police_comms, fire)
    statement_withdraw(statement_id=statement.pk, user=police_comms)
    for call in (
        lambda: statement_approve(statement_id=statement.pk, user=fire_comms),
        lambda: statement_publish(statement_id=statement.pk, user=police_comms),
        lambda: statement_revise(
            statement_id=statement.pk, user=police_comms, headline="a", body="b"
        ),
        lambda: statement_withdraw(statement_id=statement.pk, user=police_comms),
    ):
        with pytest.raises(Conflict):
            call()
    assert kinds(incident) == ["statement.drafted", "statement.withdrawn"]


def test_a_closed_incident_takes_no_statement(incident, police_comms, commander):
    incident_transition(incident_id=incident.pk, user=commander, to=IncidentStatus.CLOSED)
    with pytest.raises(Conflict):
        draft(incident, police_comms)


# --- the API --------------------------------------------------------------------------------------


def api_url(incident, statement=None, step="") -> str:
    base = f"/api/v1/incidents/{incident.pk}/statements/"
    if statement is None:
        return base
    return f"{base}{statement.pk}/{step + '/' if step else ''}"


def test_the_api_drafts_approves_and_publishes(api, incident, police_comms, fire_comms, fire):
    created = api(police_comms).post(
        api_url(incident),
        {"headline": "Station closed", "body": "Avoid the area.", "approver_agencies": [fire.pk]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and body["current_version"]["number"] == 1
    assert body["approvals"] == [{"agency": fire.pk, "agency_name": "FRS", "decision": None}]
    statement = PublicStatement.objects.get(pk=body["id"])

    refused = api(police_comms).post(api_url(incident, statement, "publish"))
    assert refused.status_code == 409
    assert refused.json()["missing_agencies"] == [
        {"id": fire.pk, "short_name": "FRS", "name": "Fire"}
    ]
    assert "FRS" in refused.json()["detail"]

    changes = api(fire_comms).post(
        api_url(incident, statement, "request-changes"), {}, format="json"
    )
    assert changes.status_code == 400 and "comment" in changes.json()
    asked = api(fire_comms).post(
        api_url(incident, statement, "request-changes"), {"comment": "Name the exits."}, "json"
    )
    assert asked.json()["approvals"][0]["decision"] == "changes_requested"
    revised = api(police_comms).post(
        api_url(incident, statement, "revise"),
        {"headline": "Station closed", "body": "Avoid the area; use the north exit."},
        format="json",
    )
    assert revised.status_code == 200 and revised.json()["current_version"]["number"] == 2
    assert revised.json()["approvals"][0]["decision"] is None
    assert [v["number"] for v in revised.json()["versions"]] == [1, 2]
    approved = api(fire_comms).post(api_url(incident, statement, "approve"), {}, format="json")
    assert approved.json()["approvals"][0]["decision"] == "approved"
    published = api(police_comms).post(api_url(incident, statement, "publish"))
    assert published.status_code == 200
    assert published.json()["status"] == "published" and published.json()["marking"] == "CLEAR"


def test_the_api_names_the_field_at_fault(api, incident, police_comms, oslo_police, transport):
    client = api(police_comms)
    blank = client.post(api_url(incident), {"headline": "", "body": "x"}, format="json")
    assert blank.status_code == 400 and "headline" in blank.json()
    foreign = client.post(
        api_url(incident),
        {"headline": "x", "body": "x", "approver_agencies": [oslo_police.pk]},
        format="json",
    )
    assert foreign.status_code == 400 and "approver_agencies" in foreign.json()
    outsider = client.post(
        api_url(incident),
        {"headline": "x", "body": "x", "approver_agencies": [transport.pk]},
        format="json",
    )
    assert outsider.status_code == 400 and "approver_agencies" in outsider.json()
    red = client.post(api_url(incident), {"headline": "x", "body": "x", "marking": "RED"}, "json")
    assert red.status_code == 400 and "marking" in red.json()
    assert PublicStatement.objects.count() == 0


def test_non_participants_get_404_and_roles_without_the_capability_403(
    api, incident, police_comms, transport_comms, liaison, observer, fire
):
    statement = draft(incident, police_comms, fire)
    outsider = api(transport_comms)
    assert outsider.get(api_url(incident)).status_code == 404
    assert outsider.get(api_url(incident, statement)).status_code == 404
    assert outsider.post(api_url(incident, statement, "approve"), {}, "json").status_code == 404
    assert (
        outsider.post(api_url(incident), {"headline": "x", "body": "y"}, "json").status_code == 404
    )

    reader = api(observer)
    assert reader.get(api_url(incident)).json()["count"] == 1
    assert reader.get(api_url(incident, statement)).status_code == 200
    assert reader.post(api_url(incident, statement, "publish")).status_code == 403
    assert api(liaison).post(api_url(incident, statement, "approve"), {}, "json").status_code == 403


def test_the_api_refuses_a_missing_statement_with_404(api, incident, police_comms):
    assert api(police_comms).post(f"{api_url(incident)}999999/publish/").status_code == 404


# --- the pages ------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_public_line_with_approval_per_agency(
    client, incident, police_comms, fire_comms, fire, ambulance
):
    current = draft(incident, police_comms, headline="Current line")
    statement_publish(statement_id=current.pk, user=police_comms)
    pending = draft(incident, police_comms, fire, ambulance, headline="Pending line")
    statement_approve(statement_id=pending.pk, user=fire_comms)

    client.force_login(fire_comms)
    for url in (f"/incidents/{incident.pk}/", f"/incidents/{incident.pk}/public-line/"):
        page = client.get(url).content.decode()
        assert "Public line" in page and "Current line" in page and "Pending line" in page
        assert 'data-agency="FRS" data-decision="approved"' in page
        assert 'data-agency="AMB" data-decision="waiting"' in page
    wall = client.get(f"/incidents/{incident.pk}/wall/").content.decode()
    assert "Current line" in wall and "Approve version" not in wall


def test_the_pages_draft_review_and_publish(client, incident, police_comms, fire_comms, fire):
    client.force_login(police_comms)
    form = client.get(f"/incidents/{incident.pk}/statements/new/")
    assert form.status_code == 200 and "FRS" in form.content.decode()
    blank = client.post(
        f"/incidents/{incident.pk}/statements/new/",
        {"headline": "", "body": "", "marking": "AMBER"},
    )
    assert blank.status_code == 400
    made = client.post(
        f"/incidents/{incident.pk}/statements/new/",
        {
            "headline": "Station closed",
            "body": "Avoid it.",
            "marking": "AMBER",
            "approver_agencies": [fire.pk],
        },
    )
    statement = PublicStatement.objects.get()
    assert made.status_code == 302 and made["Location"].endswith(f"/statements/{statement.pk}/")

    early = client.post(f"/incidents/{incident.pk}/statements/{statement.pk}/publish/")
    assert early.status_code == 409 and "Not yet approved by FRS" in early.content.decode()

    client.force_login(fire_comms)
    no_comment = client.post(
        f"/incidents/{incident.pk}/statements/{statement.pk}/review/",
        {"decision": "request_changes", "comment": ""},
    )
    assert no_comment.status_code == 400
    approved = client.post(
        f"/incidents/{incident.pk}/statements/{statement.pk}/review/", {"decision": "approve"}
    )
    assert approved.status_code == 302

    client.force_login(police_comms)
    published = client.post(f"/incidents/{incident.pk}/statements/{statement.pk}/publish/")
    assert published.status_code == 302
    statement.refresh_from_db()
    assert statement.status == StatementStatus.PUBLISHED


def test_pages_of_an_incident_one_cannot_see_answer_404(
    client, incident, police_comms, transport_comms
):
    statement = draft(incident, police_comms)
    client.force_login(transport_comms)
    for url in (
        f"/incidents/{incident.pk}/statements/{statement.pk}/",
        f"/incidents/{incident.pk}/statements/new/",
        f"/incidents/{incident.pk}/public-line/",
    ):
        assert client.get(url).status_code == 404
    assert (
        client.post(f"/incidents/{incident.pk}/statements/{statement.pk}/publish/").status_code
        == 404
    )


def test_the_public_line_panel_reads_in_a_number_of_queries_that_does_not_grow(
    client, incident, police_comms, fire_comms, fire, ambulance
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_statements(count: int) -> None:
        for n in range(count):
            statement = draft(incident, police_comms, fire, ambulance, headline=f"Line {n}")
            statement_approve(statement_id=statement.pk, user=fire_comms)
            statement_revise(
                statement_id=statement.pk, user=police_comms, headline=f"Line {n}", body="v2"
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/incidents/{incident.pk}/public-line/").status_code == 200
        return len(captured)

    client.force_login(police_comms)
    add_statements(1)
    few = queries()
    add_statements(5)
    assert queries() == few


def test_the_database_keeps_versions_and_answers_as_written(
    incident, police_comms, fire_comms, fire
):
    from django.db import DatabaseError

    from comms.models import StatementReview

    statement = draft(incident, police_comms, fire, body="As approved.")
    statement_approve(statement_id=statement.pk, user=fire_comms)
    with pytest.raises(DatabaseError), transaction.atomic():
        StatementVersion.objects.filter(statement=statement).update(body="Rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        StatementReview.objects.filter(statement=statement).update(decision="changes_requested")
    assert StatementVersion.objects.get(statement=statement).body == "As approved."
