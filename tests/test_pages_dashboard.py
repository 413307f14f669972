"""The incident dashboard, its panels and the wall screen: content, local times, access."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from coordination.lessons import lesson_create
from coordination.services import (
    action_create,
    decision_position_record,
    decision_record,
    decision_supersede,
)
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open, methane_submit, timeline_add

from .factories import decision_fields, methane_fields

pytestmark = pytest.mark.django_db


def dashboard(client, incident, suffix: str = "") -> str:
    response = client.get(f"/incidents/{incident.pk}/{suffix}")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_header_shows_the_incident_in_local_time(client, commander, incident):
    client.force_login(commander)
    page = dashboard(client, incident)
    assert incident.reference in page and "Armed attack at central station" in page
    assert "Reported" in page and "Level 3: major, strategic coordination" in page
    assert "Police (POL)" in page
    local = timezone.localtime(incident.opened_at, incident.city.zone)
    assert local.strftime("%Y-%m-%d %H:%M") in page
    assert f'data-last-seq="{incident.last_event_seq}"' in page
    assert f'data-ws-path="/ws/incidents/{incident.pk}/"' in page
    assert "EXERCISE" not in page


def test_an_exercise_says_exercise_everywhere(client, commander, police):
    drill = incident_open(
        user=commander,
        title="Drill",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        is_exercise=True,
    )
    client.force_login(commander)
    for suffix in ("", "wall/", "decisions/new/", "methane/new/"):
        page = dashboard(client, drill, suffix)
        assert 'class="exercise-banner"' in page, suffix
        assert "<title>EXERCISE · " in page, suffix


def test_methane_highlights_what_changed(client, liaison, incident):
    methane_submit(incident_id=incident.pk, user=liaison, **methane_fields())
    methane_submit(
        incident_id=incident.pk,
        user=liaison,
        **methane_fields(hazards="Secondary device suspected", casualties_p1=4),
    )
    client.force_login(liaison)
    page = dashboard(client, incident, "panels/methane/")
    assert "version 2" in page
    hazards = page[page.index('data-field="hazards"') :].split("</div>")[0]
    assert (
        "changed"
        in page[page.index('data-field="hazards"') - 40 : page.index('data-field="hazards"')]
    )
    assert "Secondary device suspected" in hazards and "was: Attacker at large" in hazards
    access = page[page.index('data-field="access"') - 40 :].split("</div>")[0]
    assert "changed" not in access
    p1 = page[page.index('data-field="casualties_p1"') :].split("</div>")[0]
    assert "<mark>Changed</mark>" in p1 and "was: not given" in p1


def test_decision_log_newest_first_with_jdm_positions_and_corrections(
    client, commander, liaison, incident, police, fire
):
    first = decision_record(
        incident_id=incident.pk, author=liaison, **decision_fields(decision="Close the station.")
    )
    correction = decision_supersede(
        original=first,
        author=liaison,
        **decision_fields(decision="Close the station and the metro."),
        agreed_by=[fire],
        dissents=[(police, "Metro closure is premature.")],
    )
    client.force_login(commander)
    page = dashboard(client, incident, "panels/decisions/")

    assert page.index("D-0002") < page.index("D-0001")
    superseded = page[page.index(f'id="decision-{first.pk}"') :]
    assert "<del>Close the station.</del>" in superseded
    assert f'href="#decision-{correction.pk}"' in superseded
    newest = page[
        page.index(f'id="decision-{correction.pk}"') : page.index(f'id="decision-{first.pk}"')
    ]
    assert "<details" in newest and "Information and intelligence" in newest
    assert "Options considered" in newest and "Chosen:" in newest and "Rejected:" in newest
    assert "Agreed by: FRS" in newest
    assert "POL — “Metro closure is premature.”" in newest
    assert "TLP:AMBER" in newest
    # POL has a position on D-0002 already; D-0001 is superseded: no link to take one.
    assert "/position/" not in page


def test_a_later_position_shows_and_the_link_goes(client, commander, liaison, incident):
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    client.force_login(commander)
    link = f"/incidents/{incident.pk}/decisions/{entry.pk}/position/"
    assert link in dashboard(client, incident, "panels/decisions/")

    decision_position_record(decision=entry, user=commander, position="agree", reason="")
    page = dashboard(client, incident, "panels/decisions/")
    assert link not in page
    assert "Agreed by: POL <small>(later)</small>" in page


def test_actions_grouped_by_owner_with_overdue_flagged(client, commander, incident, police, fire):
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        action_create(
            incident_id=incident.pk,
            user=commander,
            title="Set up cordon",
            owner_agency=police,
            due_at=timezone.now() + timedelta(minutes=30),
        )
    action_create(
        incident_id=incident.pk,
        user=commander,
        title="Hose down",
        owner_agency=fire,
        due_at=timezone.now() + timedelta(hours=1),
    )
    client.force_login(commander)
    page = dashboard(client, incident, "panels/actions/")
    assert "1 overdue" in page
    assert page.index("<h3>FRS") < page.index("<h3>POL")
    cordon = page[page.index("Set up cordon") - 300 : page.index("Set up cordon")]
    assert "overdue" in cordon and "OVERDUE" in cordon
    hose = page[page.index("Hose down") - 300 : page.index("Hose down")]
    assert "OVERDUE" not in hose


def test_timeline_newest_first(client, liaison, incident):
    timeline_add(
        incident_id=incident.pk,
        user=liaison,
        text="First shots reported",
        occurred_at=timezone.now() - timedelta(minutes=20),
    )
    timeline_add(incident_id=incident.pk, user=liaison, text="Cordon in place")
    client.force_login(liaison)
    page = dashboard(client, incident, "panels/timeline/")
    assert page.index("Cordon in place") < page.index("First shots reported")
    assert "(FRS)" in page


def test_map_with_coordinates_and_text_and_the_tile_setting(client, commander, police, settings):
    placed = incident_open(
        user=commander,
        title="Placed",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_1,
        lead_agency=police,
        latitude="59.330000",
        longitude="18.058000",
        location_description="Central station, main hall",
    )
    client.force_login(commander)
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    page = dashboard(client, placed)
    assert "Central station, main hall" in page
    assert "Latitude 59.330000, longitude 18.058000" in page
    assert 'data-tile-url="https://tiles.example.org/{z}/{x}/{y}.png"' in page
    assert "leaflet.js" in page

    settings.MAP_TILE_URL = ""
    assert 'data-tile-url=""' in dashboard(client, placed)


def test_no_coordinates_no_map(client, commander, incident):
    client.force_login(commander)
    page = dashboard(client, incident)
    assert "No coordinates recorded." in page and "leaflet.js" not in page


def test_controls_follow_capabilities(client, commander, liaison, observer, incident):
    client.force_login(commander)
    page = dashboard(client, incident)
    assert "Record a joint decision" in page and 'value="activated"' in page

    client.force_login(liaison)  # may record, may not move the lifecycle
    page = dashboard(client, incident)
    assert "Record a joint decision" in page and 'value="activated"' not in page

    client.force_login(observer)
    page = dashboard(client, incident)
    assert "Record a joint decision" not in page and 'value="activated"' not in page


def test_the_administrator_of_the_city_reads_but_is_offered_no_writing(
    client, administrator, incident
):
    client.force_login(administrator)
    page = dashboard(client, incident)
    assert incident.reference in page
    assert "Record a joint decision" not in page


def test_wall_screen_is_read_only_and_live(client, commander, liaison, incident):
    decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    client.force_login(commander)
    page = dashboard(client, incident, "wall/")
    assert 'class="wall' in page
    assert "<header" not in page and "Sign out" not in page
    assert "Record a joint decision" not in page and "/position/" not in page
    assert "<form" not in page
    assert 'data-panel-url="/incidents/' in page and "?wall=1" in page
    assert "js/live.js" in page
    panel = dashboard(client, incident, "panels/header/?wall=1")
    assert "Record a joint decision" not in panel and "<form" not in panel


def test_every_panel_answers_alone(client, commander, incident):
    client.force_login(commander)
    for name in ("header", "methane", "decisions", "actions", "timeline", "agencies"):
        page = dashboard(client, incident, f"panels/{name}/")
        assert "<html" not in page, name
    assert client.get(f"/incidents/{incident.pk}/panels/nope/").status_code == 404


def test_not_visible_is_404_everywhere(client, outsider, incident):
    client.force_login(outsider)
    for suffix in ("", "wall/", "panels/header/", "panels/decisions/"):
        assert client.get(f"/incidents/{incident.pk}/{suffix}").status_code == 404, suffix
    assert client.get("/incidents/999999/").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, incident):
    for suffix in ("", "wall/"):
        response = client.get(f"/incidents/{incident.pk}/{suffix}")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_panel_without_a_session_answers_401_not_the_sign_in_page(client, incident):
    """htmx would follow a redirect and swap the sign-in page into the panel."""
    response = client.get(f"/incidents/{incident.pk}/panels/decisions/")
    assert response.status_code == 401
    assert b"<form" not in response.content


def test_the_dashboard_reads_in_a_number_of_queries_that_does_not_grow(
    client, commander, liaison, incident, police, fire
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_items(count: int) -> None:
        for n in range(count):
            decision_record(
                incident_id=incident.pk,
                author=liaison,
                **decision_fields(decision=f"Decision {n}"),
                agreed_by=[police],
                dissents=[(fire, "Not yet.")],
            )
            action_create(
                incident_id=incident.pk, user=liaison, title=f"Action {n}", owner_agency=police
            )
            timeline_add(incident_id=incident.pk, user=liaison, text=f"Entry {n}")
            methane_submit(incident_id=incident.pk, user=liaison, **methane_fields(hazards=str(n)))
            lesson_create(
                incident_id=incident.pk,
                user=liaison,
                owner_agency=police,
                title=f"Lesson {n}",
                description="Learned.",
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            dashboard(client, incident)
        return len(captured)

    client.force_login(commander)
    add_items(1)
    few = queries()
    add_items(6)
    assert queries() == few
    # The panels (lessons: the rows and their two recipient lists; meetings: one; the public
    # line: its statements and the latest brief), plus the session, the user and the second
    # factor's device.
    assert few <= 27, few


def test_every_item_shows_its_tlp_marking(client, commander, liaison, incident, police):
    decision_record(incident_id=incident.pk, author=liaison, **decision_fields(), marking="GREEN")
    action_create(
        incident_id=incident.pk, user=liaison, title="Cordon", owner_agency=police, marking="CLEAR"
    )
    timeline_add(incident_id=incident.pk, user=liaison, text="Noted", marking="AMBER")
    methane_submit(incident_id=incident.pk, user=liaison, **methane_fields(), marking="GREEN")
    client.force_login(commander)
    expected = {
        "decisions": 'class="tlp tlp-green"',
        "actions": 'class="tlp tlp-clear"',
        "timeline": 'class="tlp tlp-amber"',
        "methane": 'class="tlp tlp-green"',
    }
    for panel, marking in expected.items():
        page = dashboard(client, incident, f"panels/{panel}/")
        assert marking in page, panel
        assert "TLP:" in page, panel
