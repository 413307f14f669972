"""In a real browser, with a real Celery worker and beat: the exercise director starts a short
scenario from the exercise page, and a player's dashboard receives its three injects (1 s, 3 s,
5 s after the start) live, in order, without a reload, each marked EXERCISE."""

import pytest

from comms.models import ExerciseInject, InjectState

from .exercising import director_of, message, run_of
from .workers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIVE = "#live-status[data-state=live]"
INJECT_LINES = "#live-feed li[data-kind='exercise.inject']"


def test_a_players_dashboard_receives_the_injects_live_in_order(
    signed_in, asgi_server, alerting_processes, police, fire, liaison
):
    alerting_processes.start_worker()
    alerting_processes.start_beat()
    director = director_of(police)
    run = run_of(
        director,
        [
            message(1, "Inject one", "Calls about stabbings at the north gate."),
            message(3, "Inject two", "Second location rumoured."),
            message(5, "Inject three", "Media enquiry from the broadcaster."),
        ],
        [fire],
    )

    player = signed_in(liaison)
    player.goto(f"/incidents/{run.incident_id}/")
    player.wait_for_selector(LIVE)
    assert "EXERCISE" in player.locator(".exercise-banner").inner_text()
    player.evaluate("window.notReloaded = true")
    assert player.locator(INJECT_LINES).count() == 0

    control = signed_in(director)
    control.goto(f"/exercises/{run.pk}/")
    control.get_by_role("button", name="Start the exercise").click()
    control.wait_for_url(f"**/exercises/{run.pk}/")
    assert "Running" in control.locator("#exercise-status").inner_text()

    player.wait_for_function(
        "n => document.querySelectorAll(\"#live-feed li[data-kind='exercise.inject']\").length"
        " >= n",
        arg=3,
        timeout=30_000,
    )
    assert player.evaluate("window.notReloaded") is True
    # The feed puts the newest line first: arrival order is the reverse of the list.
    lines = player.locator(INJECT_LINES).all_inner_texts()
    arrived = list(reversed(lines))
    assert len(arrived) == 3
    for line, title in zip(arrived, ("Inject one", "Inject two", "Inject three"), strict=True):
        assert title in line
    assert all(line.count("EXERCISE inject") == 1 for line in arrived)
    seqs = [
        int(s) for s in player.locator(INJECT_LINES).evaluate_all("l => l.map(e => e.dataset.seq)")
    ]
    assert seqs == sorted(seqs, reverse=True)
    # The injects panel was redrawn live with all three, newest first.
    panel = player.locator("#panel-injects li[data-inject-position]")
    panel.nth(2).wait_for()
    assert panel.evaluate_all("l => l.map(e => e.dataset.injectPosition)") == ["3", "2", "1"]
    assert "Media enquiry from the broadcaster." in player.locator("#panel-injects").inner_text()

    released = wait_for(
        lambda: list(
            ExerciseInject.objects.filter(run=run, state=InjectState.RELEASED)
            .order_by("position")
            .values_list("released_at", flat=True)
        ),
        5,
        "the releases to be recorded",
    )
    assert released == sorted(released)
    assert len(released) == 3
