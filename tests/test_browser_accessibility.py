"""axe-core in a real browser on the pages people use under stress: no serious or critical
violations on the incident list, the dashboard, the decision form and the wall screen."""

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from coordination.services import action_create, decision_record, decision_supersede
from incidents.models import IncidentLevel, IncidentType
from incidents.services import incident_open, methane_submit, timeline_add

from .factories import decision_fields, methane_fields

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def serious_violations(tab) -> list[str]:
    tab.add_script_tag(path=str(AXE))
    result = tab.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def busy_exercise(commander, liaison, police, fire):
    """An exercise with something in every panel, so every panel's markup is checked."""
    drill = incident_open(
        user=commander,
        title="Stadium evacuation drill",
        type=IncidentType.OTHER,
        level=IncidentLevel.LEVEL_2,
        lead_agency=police,
        participating_agencies=[fire],
        latitude="59.372000",
        longitude="18.000000",
        location_description="National stadium",
        is_exercise=True,
    )
    methane_submit(incident_id=drill.pk, user=liaison, **methane_fields())
    methane_submit(incident_id=drill.pk, user=liaison, **methane_fields(hazards="Crowd crush"))
    first = decision_record(
        incident_id=drill.pk,
        author=liaison,
        **decision_fields(),
        agreed_by=[fire],
        dissents=[(police, "Too early.")],
    )
    decision_supersede(original=first, author=liaison, **decision_fields(decision="Corrected."))
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        action_create(
            incident_id=drill.pk,
            user=liaison,
            title="Open gates",
            owner_agency=police,
            due_at=timezone.now() + timedelta(minutes=10),
        )
    action_create(incident_id=drill.pk, user=liaison, title="Stage pumps", owner_agency=fire)
    timeline_add(incident_id=drill.pk, user=liaison, text="Crowd moving to exits")
    return drill


def test_no_serious_violations(signed_in, commander, liaison, incident, busy_exercise):
    gold = signed_in(commander)
    pages = {
        "incident list": "/incidents/",
        "exercise list": "/incidents/?show=exercises",
        "dashboard": f"/incidents/{busy_exercise.pk}/",
        "wall screen": f"/incidents/{busy_exercise.pk}/wall/",
        "position form": (
            f"/incidents/{busy_exercise.pk}/decisions/"
            f"{busy_exercise.decisions.order_by('-sequence').first().pk}/position/"
        ),
    }
    found = {}
    for name, url in pages.items():
        gold.goto(url)
        if name in ("dashboard", "wall screen"):
            gold.wait_for_selector("#live-status[data-state=live]")
            gold.locator("details").first.evaluate("d => d.open = true")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            gold.screenshot(
                path=str(SCREENSHOTS / f"{name.replace(' ', '-')}-busy.png"), full_page=True
            )
        found[name] = serious_violations(gold)

    fire = signed_in(liaison)
    fire.goto(f"/incidents/{incident.pk}/decisions/new/")
    found["decision form, stepped"] = serious_violations(fire)
    fire.click("fieldset[data-step='1'] [data-step-action=next]")  # shows the field's error
    found["decision form, refusing an empty step"] = serious_violations(fire)
    fire.goto(f"/incidents/{incident.pk}/methane/new/")
    found["methane form"] = serious_violations(fire)

    assert {name: v for name, v in found.items() if v} == {}
