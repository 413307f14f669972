"""Markings in a real browser: an item whose marking is raised leaves the open dashboards of
those who may no longer read it, without a reload, and the live feed never shows it to them."""

import pytest

from coordination.services import decision_marking_change, decision_record

from .factories import decision_fields

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE = "#live-status[data-state=live]"


def test_a_raised_decision_leaves_the_dashboards_of_those_not_named(
    signed_in, incident, liaison, commander
):
    secret = "Move the cordon to the north gate"
    entry = decision_record(
        incident_id=incident.pk, author=liaison, **decision_fields(decision=secret)
    )
    gold = signed_in(commander)
    gold.goto(f"/incidents/{incident.pk}/")
    gold.wait_for_selector(LIVE)
    assert secret in gold.content()
    last = incident.last_event_seq + 1  # the decision's event

    decision_marking_change(decision_id=entry.pk, user=liaison, marking="RED")

    gold.wait_for_function(f"window.ctpnLive.state.last === {last + 1}")
    gold.wait_for_function(
        "text => !document.querySelector('[data-panel=decisions]').textContent.includes(text)",
        arg=secret,
    )
    assert secret not in gold.content()
