"""The live client's rules, in a real browser against the real server: events it may not read
advance its count silently, alerts are handed on and not shown, a tab coming back catches up,
and an event delivered twice is applied once."""

import pytest
from django.db import transaction

from coordination.services import decision_record
from ctpn import realtime
from incidents.events import event_append
from incidents.models import Incident

from .factories import decision_fields

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE = "#live-status[data-state=live]"


def open_dashboard(tab, incident):
    tab.goto(f"/incidents/{incident.pk}/")
    tab.wait_for_selector(LIVE)
    return tab


def feed_seqs(tab) -> list[int]:
    return [
        int(s) for s in tab.eval_on_selector_all("#live-feed li", "l => l.map(e => e.dataset.seq)")
    ]


def test_an_event_the_user_may_not_read_only_advances_the_count(
    signed_in, incident, liaison, commander
):
    gold = open_dashboard(signed_in(commander), incident)
    start = incident.last_event_seq
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        # A RED event that names nobody: no reader may see it, and the stream must hide it.
        event_append(
            incident=locked, kind="timeline.added", payload={"text": "secret"}, marking="RED"
        )
    decision_record(incident_id=incident.pk, author=liaison, **decision_fields())

    gold.wait_for_function(f"window.ctpnLive.state.last === {start + 2}")
    gold.locator("#live-feed li").first.wait_for()
    assert feed_seqs(gold) == [start + 2]
    assert "secret" not in gold.content()


def test_alerts_are_handed_to_the_page_not_rendered(signed_in, incident, commander):
    gold = open_dashboard(signed_in(commander), incident)
    gold.evaluate(
        "document.addEventListener('ctpn:alert', e => { window.alerts = (window.alerts || [])"
        ".concat([e.detail]); })"
    )
    realtime.publish(
        realtime.user_topic(commander.pk),
        {"type": "alert", "alert": {"id": 7, "message": "Strategic cell to assemble at 14:00"}},
    )
    gold.wait_for_function("window.alerts && window.alerts.length === 1")
    assert gold.evaluate("window.alerts[0].message") == "Strategic cell to assemble at 14:00"
    assert feed_seqs(gold) == []
    assert "Strategic cell to assemble" not in gold.locator("#live").inner_text()


def test_a_tab_becoming_visible_catches_up(signed_in, incident, liaison, commander):
    gold = open_dashboard(signed_in(commander), incident)
    # As if the page had slept through an event whose broadcast it never got.
    gold.evaluate("window.ctpnLive.state.last -= 1")
    gold.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    gold.locator("#live-feed li").first.wait_for()
    assert feed_seqs(gold) == [incident.last_event_seq]


def test_an_event_delivered_twice_is_applied_once(signed_in, incident, liaison, commander):
    from incidents.events import event_message
    from incidents.models import IncidentEvent

    gold = signed_in(commander)
    frames: list[str] = []
    gold.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    open_dashboard(gold, incident)
    entry = decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    gold.locator("#live-feed li").first.wait_for()

    # The same message again, as a replay racing a live broadcast would deliver it.
    event = IncidentEvent.objects.get(incident=incident, subject_id=entry.pk)
    realtime.publish(
        realtime.incident_topic(incident.pk), {"type": "event", "event": event_message(event)}
    )
    marker = f'"seq":{event.seq},'
    for _ in range(50):
        if sum(marker in str(frame) for frame in frames) >= 2:
            break
        gold.wait_for_timeout(100)
    assert sum(marker in str(frame) for frame in frames) == 2  # it did arrive twice
    gold.wait_for_timeout(300)
    assert feed_seqs(gold) == [event.seq]
    assert gold.locator("#panel-decisions li.decision").count() == 1
