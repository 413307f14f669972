"""In real browsers against the ASGI server: the police communications lead drafts a statement
naming the fire brigade, the fire lead sees it arrive live and approves it, the police lead
publishes it, and the public page shows it to somebody who never signed in."""

import pytest

from coordination.roles import Role

from .factories import UserFactory
from .test_browser_accessibility import serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE = "#live-status[data-state=live]"


def test_a_statement_is_drafted_approved_published_and_public(
    signed_in, page, asgi_server, incident, police, fire
):
    police_lead = UserFactory(
        username="police-comms", agency=police, roles=[Role.COMMUNICATIONS_LEAD]
    )
    fire_lead = UserFactory(username="fire-comms", agency=fire, roles=[Role.COMMUNICATIONS_LEAD])

    fire_tab = signed_in(fire_lead)
    fire_tab.goto(f"/incidents/{incident.pk}/")
    fire_tab.wait_for_selector(LIVE)
    panel = fire_tab.locator("#panel-public-line")
    assert "No public line published yet." in panel.inner_text()

    police_tab = signed_in(police_lead)
    police_tab.goto(f"/incidents/{incident.pk}/")
    police_tab.click("#panel-public-line >> text=Draft a statement")
    assert serious_violations(police_tab) == []
    police_tab.fill("#id_headline", "Central station closed")
    police_tab.fill("#id_body", "Avoid the area and follow police instructions.")
    police_tab.check(f"input[name=approver_agencies][value='{fire.pk}']")
    police_tab.click("button[type=submit].primary")
    police_tab.wait_for_url("**/statements/*/")
    assert "Statement drafted" in police_tab.locator(".messages").inner_text()
    assert police_tab.locator("[data-agency=FRS][data-decision=waiting]").count() == 1
    assert serious_violations(police_tab) == []

    # The fire lead's dashboard shows the draft without a reload, waiting for fire.
    fire_tab.evaluate("window.notReloaded = true")
    panel.locator("[data-agency=FRS][data-decision=waiting]").wait_for()
    assert fire_tab.evaluate("window.notReloaded") is True
    panel.get_by_role("button", name="Approve version 1").click()
    fire_tab.wait_for_url("**/statements/*/")
    assert "FRS: approved (version 1)." in fire_tab.locator(".messages").inner_text()
    fire_tab.goto(f"/incidents/{incident.pk}/")
    fire_tab.wait_for_selector(LIVE)
    fire_tab.evaluate("window.notReloaded = true")

    police_tab.goto(f"/incidents/{incident.pk}/")
    police_tab.wait_for_selector(LIVE)
    police_panel = police_tab.locator("#panel-public-line")
    assert police_panel.locator("[data-agency=FRS][data-decision=approved]").count() == 1
    police_panel.get_by_role("button", name="Publish").click()
    police_tab.wait_for_url("**/statements/*/")
    assert "Published as the public line." in police_tab.locator(".messages").inner_text()

    # Nobody signed in: the public page of the city shows the line.
    page.goto(f"{asgi_server.url}/public/sto/statements/")
    article = page.locator("article.public-statement")
    assert article.count() == 1
    assert "Central station closed" in article.inner_text()
    assert "Avoid the area and follow police instructions." in article.inner_text()
    assert "police-comms" not in page.content()
    assert serious_violations(page) == []
    # And the fire lead's dashboard, still open, shows it as the current line without a reload.
    panel.locator(".statement-current", has_text="Central station closed").wait_for()
    assert fire_tab.evaluate("window.notReloaded") is True


def test_the_brief_pages_are_accessible(signed_in, incident, commander):
    from comms.briefs import brief_generate, brief_issue

    first = brief_generate(incident_id=incident.pk, user=commander)
    brief_issue(brief_id=first.pk, user=commander)
    draft = brief_generate(incident_id=incident.pk, user=commander, administration="Gold room")
    tab = signed_in(commander)
    for path in (
        f"/incidents/{incident.pk}/briefs/",
        f"/incidents/{incident.pk}/briefs/{first.pk}/",
        f"/incidents/{incident.pk}/briefs/{draft.pk}/",
        f"/incidents/{incident.pk}/briefs/{draft.pk}/changes/",
    ):
        tab.goto(path)
        assert tab.locator("h1").count() == 1, path
        assert serious_violations(tab) == [], path
