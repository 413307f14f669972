"""In a real browser against the ASGI server: the dashboard updates live, the decision form works
step by step and by keyboard alone, presence shows who is there, the wall screen says EXERCISE."""

from pathlib import Path

import pytest

from coordination.roles import Role
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open

from .factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
LIVE = "#live-status[data-state=live]"


def screenshot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_dashboard(tab, incident):
    tab.goto(f"/incidents/{incident.pk}/")
    tab.wait_for_selector(LIVE)
    return tab


def fill_decision_step_by_step(tab, decision: str) -> None:
    """The liaison's way through the Joint Decision Model form, one step at a time."""
    step = tab.locator("fieldset[data-step='1']")
    assert step.is_visible() and not tab.locator("fieldset[data-step='2']").is_visible()
    tab.fill("#id_information", "Shots reported at the central station; two attackers.")
    # Next checks the step first: with a section empty it stays where it is.
    tab.click("fieldset[data-step='1'] [data-step-action=next]")
    tab.fill("#id_threat_assessment", "Attackers mobile; high risk to the public.")
    tab.click("fieldset[data-step='2'] [data-step-action=next]")
    assert tab.locator("fieldset[data-step='2']").is_visible()  # working strategy still empty
    tab.fill("#id_working_strategy", "Save life, contain, protect the public.")
    tab.click("fieldset[data-step='2'] [data-step-action=next]")
    tab.fill("#id_powers_policies", "Joint operating principles for MTA.")
    tab.click("fieldset[data-step='3'] [data-step-action=next]")
    tab.fill("#id_option_1", "Evacuate the station")
    tab.check("#id_option_1_chosen")
    tab.fill("#id_option_1_reason", "Removes the public from harm.")
    tab.fill("#id_option_2", "Shelter in place")
    tab.fill("#id_option_2_reason", "Attackers still mobile.")
    tab.click("fieldset[data-step='4'] [data-step-action=next]")
    tab.fill("#id_decision", decision)
    tab.fill("#id_rationale", "Protects life while the threat is located.")
    tab.click("button[type=submit].primary")


def test_a_decision_recorded_step_by_step_appears_on_the_commanders_dashboard_live(
    signed_in, incident, liaison, commander
):
    gold = open_dashboard(signed_in(commander), incident)
    gold.evaluate("window.notReloaded = true")
    assert gold.locator("#live-feed li[data-seq]").count() == 0

    fire = signed_in(liaison)
    fire.goto(f"/incidents/{incident.pk}/decisions/new/")
    screenshot(fire, "decision-form")
    fill_decision_step_by_step(fire, "Evacuate the central station now.")
    fire.wait_for_url(f"**/incidents/{incident.pk}/")
    assert "Decision D-0001 recorded." in fire.locator(".messages").inner_text()

    decisions = gold.locator("#panel-decisions")
    decisions.locator(".decision-text", has_text="Evacuate the central station now.").wait_for()
    assert gold.evaluate("window.notReloaded") is True
    feed = gold.locator("#live-feed li[data-seq]")
    assert feed.count() == 1
    assert "Decision D-0001 recorded" in feed.first.inner_text()
    assert decisions.locator("li.decision").count() == 1
    screenshot(gold, "dashboard")


def test_presence_shows_the_other_user_arriving_and_leaving(
    signed_in, incident, liaison, commander
):
    gold = open_dashboard(signed_in(commander), incident)
    presence = gold.locator("#presence-list")
    presence.get_by_text(f"{commander} (POL)").wait_for()
    assert str(liaison) not in presence.inner_text()

    fire = open_dashboard(signed_in(liaison), incident)
    presence.get_by_text(f"{liaison} (FRS)").wait_for()
    fire.locator("#presence-list").get_by_text(f"{commander} (POL)").wait_for()

    fire.goto("/incidents/")  # leaves the dashboard
    presence.get_by_text(f"{liaison} (FRS)").wait_for(state="detached")
    assert f"{commander} (POL)" in presence.inner_text()


def test_the_wall_screen_of_an_exercise_says_exercise(signed_in, commander, police):
    drill = incident_open(
        user=commander,
        title="Stadium evacuation drill",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        latitude="59.372000",
        longitude="18.000000",
        location_description="National stadium",
        is_exercise=True,
    )
    wall = signed_in(commander)
    wall.goto(f"/incidents/{drill.pk}/wall/")
    banner = wall.locator(".exercise-banner")
    assert banner.is_visible()
    assert "EXERCISE" in banner.inner_text()
    assert wall.title().startswith("EXERCISE")
    assert wall.locator("header.site").count() == 0 and wall.locator("form").count() == 0
    wall.wait_for_selector(LIVE)
    # Big type for across the room.
    size = wall.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert size >= 20
    screenshot(wall, "wall-screen")


def tab_to(tab, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching ``selector`` has the focus, as a keyboard user would."""
    focused = "(s) => document.activeElement && document.activeElement.matches(s)"
    for _ in range(limit):
        if tab.evaluate(focused, selector):
            return
        tab.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with the Tab key")


def test_the_decision_form_by_keyboard_alone(signed_in, incident, liaison):
    from coordination.models import Decision

    fire = signed_in(liaison)
    fire.goto(f"/incidents/{incident.pk}/decisions/new/")
    keys = fire.keyboard

    tab_to(fire, "#id_information")
    keys.type("Reports of a vehicle driven into pedestrians.")
    tab_to(fire, "fieldset[data-step='1'] [data-step-action=next]")
    keys.press("Enter")
    # Focus moves into the next step by itself.
    assert fire.evaluate("document.activeElement.id") == "id_threat_assessment"
    keys.type("Vehicle stopped; driver detained; secondary threat unknown.")
    keys.press("Tab")
    keys.type("Save life; secure the scene.")
    tab_to(fire, "fieldset[data-step='2'] [data-step-action=next]")
    keys.press("Enter")
    keys.type("Police powers of cordon.")
    tab_to(fire, "fieldset[data-step='3'] [data-step-action=next]")
    keys.press("Enter")
    assert fire.evaluate("document.activeElement.id") == "id_option_1"
    keys.type("Close the street")
    keys.press("Tab")
    keys.press("Space")  # chosen
    keys.press("Tab")
    keys.type("Keeps the public away from the scene.")
    # Back and forth keeps what was typed.
    tab_to(fire, "fieldset[data-step='4'] [data-step-action=back]")
    keys.press("Enter")
    assert fire.input_value("#id_powers_policies") == "Police powers of cordon."
    tab_to(fire, "fieldset[data-step='3'] [data-step-action=next]")
    keys.press("Enter")
    tab_to(fire, "fieldset[data-step='4'] [data-step-action=next]")
    keys.press("Enter")
    assert fire.evaluate("document.activeElement.id") == "id_decision"
    keys.type("Close the street to all traffic.")
    keys.press("Tab")
    keys.type("Allows forensic work and protects the public.")
    tab_to(fire, "button[type=submit].primary")
    keys.press("Enter")

    fire.wait_for_url(f"**/incidents/{incident.pk}/")
    entry = Decision.objects.get(incident=incident)
    assert entry.decision == "Close the street to all traffic."
    assert entry.options == [
        {
            "option": "Close the street",
            "chosen": True,
            "reason": "Keeps the public away from the scene.",
        }
    ]


def test_the_keyboard_focus_is_visible(signed_in, incident, liaison):
    fire = signed_in(liaison)
    fire.goto(f"/incidents/{incident.pk}/")
    fire.keyboard.press("Tab")
    assert fire.evaluate("document.activeElement.className") == "skip-link"
    assert fire.locator(".skip-link").is_visible()
    outline = fire.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_a_liaison_of_another_agency_sees_the_dissent_recorded_live(
    signed_in, incident, liaison, commander
):
    """Agreeing or dissenting later shows on the other dashboards too."""
    from coordination.services import decision_record

    from .factories import decision_fields

    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    fire = open_dashboard(signed_in(liaison), incident)
    gold = signed_in(commander)
    gold.goto(f"/incidents/{incident.pk}/decisions/{entry.pk}/position/")
    gold.check("input[name=position][value=dissent]")
    gold.fill("#id_reason", "Evacuation routes are not yet secured.")
    gold.click("button[type=submit].primary")
    gold.wait_for_url(f"**/incidents/{incident.pk}/")

    fire.locator("#panel-decisions").get_by_text(
        "Evacuation routes are not yet secured."
    ).wait_for()
    assert "POL dissents from D-0001" in fire.locator("#live-feed").inner_text()


def test_a_second_browser_user_in_another_city_is_refused_the_socket(
    signed_in, incident, oslo_police
):
    stranger = UserFactory(agency=oslo_police, roles=[Role.STRATEGIC_COMMANDER])
    tab = signed_in(stranger)
    response = tab.goto(f"/incidents/{incident.pk}/")
    assert response is not None and response.status == 404


def test_the_decision_form_works_without_javascript(signed_in, incident, liaison):
    from coordination.models import Decision

    fire = signed_in(liaison, javascript=False)
    fire.goto(f"/incidents/{incident.pk}/decisions/new/")
    # Every step is on the page at once, in order, with one submit button.
    assert fire.locator("fieldset[data-step]").count() == 5
    assert all(fire.locator(f"fieldset[data-step='{n}']").is_visible() for n in range(1, 6))
    assert fire.locator("[data-step-action]").count() == 0
    fire.fill("#id_information", "Suspicious package at the town hall.")
    fire.fill("#id_threat_assessment", "Unknown device.")
    fire.fill("#id_working_strategy", "Protect the public.")
    fire.fill("#id_powers_policies", "Cordon powers.")
    fire.fill("#id_option_1", "Evacuate 100 m")
    fire.check("#id_option_1_chosen")
    fire.fill("#id_option_1_reason", "Standard stand-off.")
    fire.fill("#id_decision", "Evacuate within 100 m.")
    fire.fill("#id_rationale", "Standard stand-off for an unknown device.")
    fire.click("button[type=submit].primary")
    fire.wait_for_url(f"**/incidents/{incident.pk}/")
    assert Decision.objects.get(incident=incident).decision == "Evacuate within 100 m."


def test_a_refused_decision_opens_the_step_with_the_error(signed_in, incident, liaison):
    """The server found a problem the browser could not (a late entry without its reason)."""
    from datetime import timedelta

    from django.utils import timezone

    fire = signed_in(liaison)
    fire.goto(f"/incidents/{incident.pk}/decisions/new/")
    an_hour_ago = timezone.localtime(timezone.now() - timedelta(hours=1), incident.city.zone)
    fill_decision_step_by_step_until_last(fire)
    fire.fill("#id_decided_at", an_hour_ago.strftime("%Y-%m-%dT%H:%M"))
    fire.click("button[type=submit].primary")

    fire.locator("#form-errors").wait_for()
    assert fire.locator("fieldset[data-step='5']").is_visible()
    assert not fire.locator("fieldset[data-step='1']").is_visible()
    assert "Error:" in fire.locator("#id_late_entry_reason_error").inner_text()
    # What was typed is still there, one step back.
    fire.click("fieldset[data-step='5'] [data-step-action=back]")
    assert fire.input_value("#id_option_1") == "Evacuate the station"


def fill_decision_step_by_step_until_last(tab) -> None:
    tab.fill("#id_information", "Shots reported.")
    tab.click("fieldset[data-step='1'] [data-step-action=next]")
    tab.fill("#id_threat_assessment", "High.")
    tab.fill("#id_working_strategy", "Save life.")
    tab.click("fieldset[data-step='2'] [data-step-action=next]")
    tab.fill("#id_powers_policies", "JOPs.")
    tab.click("fieldset[data-step='3'] [data-step-action=next]")
    tab.fill("#id_option_1", "Evacuate the station")
    tab.fill("#id_option_1_reason", "Removes the public.")
    tab.click("fieldset[data-step='4'] [data-step-action=next]")
    tab.fill("#id_decision", "Evacuate.")
    tab.fill("#id_rationale", "Life first.")


def test_the_wall_screen_and_the_header_follow_the_incident_live(
    signed_in, incident, liaison, commander
):
    from coordination.services import action_create
    from incidents.services import incident_transition, methane_submit, timeline_add

    from .factories import methane_fields

    wall = signed_in(liaison)
    wall.goto(f"/incidents/{incident.pk}/wall/")
    wall.wait_for_selector(LIVE)

    incident_transition(incident_id=incident.pk, user=commander, to="activated")
    methane_submit(incident_id=incident.pk, user=liaison, **methane_fields(hazards="Smoke"))
    action_create(
        incident_id=incident.pk,
        user=commander,
        title="Close the metro",
        owner_agency=commander.agency,
    )
    timeline_add(incident_id=incident.pk, user=liaison, text="Cordon in place")

    wall.locator("#panel-header .status", has_text="Activated").wait_for()
    wall.locator("#panel-methane").get_by_text("Smoke").wait_for()
    wall.locator("#panel-actions").get_by_text("Close the metro").wait_for()
    wall.locator("#panel-timeline").get_by_text("Cordon in place").wait_for()
    # Still read-only after the panels were swapped in.
    assert wall.locator("form").count() == 0
    assert wall.locator("a", has_text="Record a joint decision").count() == 0
    assert wall.locator("#live-feed li[data-seq]").count() == 4
