"""The WebSocket is cut server-side while decisions are recorded: after reconnecting the dashboard
shows each of them exactly once, in order (invariant 2, seen from the browser)."""

import time

import pytest

from coordination.services import decision_record

from .factories import decision_fields
from .servers import start_asgi_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_server():
    """A server of this test's own, which the test stops and brings back on the same port."""
    servers = [start_asgi_server(CTPN_MAP_TILE_URL="")]
    yield servers
    stop_server(servers[-1].process)


def feed_seqs(tab) -> list[int]:
    return [
        int(s) for s in tab.eval_on_selector_all("#live-feed li", "l => l.map(e => e.dataset.seq)")
    ]


def test_decisions_recorded_while_cut_off_appear_once_in_order(
    signed_in, own_server, incident, liaison, commander
):
    server = own_server[0]
    gold = signed_in(commander, server=server)
    gold.goto(f"/incidents/{incident.pk}/")
    gold.wait_for_selector("#live-status[data-state=live]")
    first_seq = incident.last_event_seq + 1

    stop_server(server.process)
    gold.wait_for_selector("#live-status[data-state=reconnecting]")
    assert gold.locator("#live-status").get_attribute("role") == "status"
    assert "Reconnecting" in gold.locator("#live-status").inner_text()

    decision_record(
        incident_id=incident.pk, author=liaison, **decision_fields(decision="Close the station.")
    )
    decision_record(
        incident_id=incident.pk, author=liaison, **decision_fields(decision="Open a rest centre.")
    )

    own_server.append(start_asgi_server(port=server.port, CTPN_MAP_TILE_URL=""))
    gold.wait_for_selector("#live-status[data-state=live]", timeout=30_000)
    gold.wait_for_function("document.querySelectorAll('#live-feed li').length >= 2")
    panel = gold.locator("#panel-decisions")
    panel.locator(".decision-text", has_text="Open a rest centre.").wait_for()
    panel.locator(".decision-text", has_text="Close the station.").wait_for()

    time.sleep(1)  # anything duplicated (a late hello, a second replay) would have landed by now
    assert feed_seqs(gold) == [first_seq + 1, first_seq]  # newest first, each once
    labels = panel.locator("li.decision .label").all_inner_texts()
    assert labels == ["D-0002", "D-0001"]
    assert gold.evaluate("window.ctpnLive.state.last") == first_seq + 1


def test_a_gap_in_live_events_is_filled_from_the_api(
    signed_in, asgi_server, incident, liaison, commander
):
    """An event the page never received live (as if the broadcast was lost) is fetched when the
    next one shows the gap."""
    gold = signed_in(commander)
    gold.goto(f"/incidents/{incident.pk}/")
    gold.wait_for_selector("#live-status[data-state=live]")
    start = incident.last_event_seq
    # Pretend the page had rendered one event earlier, so the next live event leaves a gap of one
    # which only the API can fill: the event of the page's own render is then applied from it.
    gold.evaluate("window.ctpnLive.state.last -= 1")

    decision_record(incident_id=incident.pk, author=liaison, **decision_fields())
    gold.wait_for_function("document.querySelectorAll('#live-feed li').length >= 2")
    time.sleep(0.5)
    assert feed_seqs(gold) == [start + 1, start]


def test_a_signed_out_page_stops_retrying_and_says_so(signed_in, own_server, incident, commander):
    from django.contrib.sessions.models import Session

    server = own_server[0]
    gold = signed_in(commander, server=server)
    gold.goto(f"/incidents/{incident.pk}/")
    gold.wait_for_selector("#live-status[data-state=live]")

    stop_server(server.process)
    gold.wait_for_selector("#live-status[data-state=reconnecting]")
    Session.objects.all().delete()  # signed out meanwhile (e.g. from another tab)
    own_server.append(start_asgi_server(port=server.port, CTPN_MAP_TILE_URL=""))

    gold.wait_for_selector("#live-status[data-state=stopped]", timeout=30_000)
    assert "signed out" in gold.locator("#live-status").inner_text()
    later = []
    gold.on("request", lambda request: later.append(request.url))
    gold.on("websocket", lambda socket: later.append(socket.url))
    # Longer than the replay's retry pause and the first reconnect delays. (Playwright delivers
    # the page's events while it waits itself, not during a plain sleep.)
    gold.wait_for_timeout(3_000)
    assert later == []
    assert gold.evaluate("window.ctpnLive.state.stopped") is True
