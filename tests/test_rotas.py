"""Who is on call: shifts once and repeating, cover, the hand-over instant, daylight saving."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from comms.models import Rota
from comms.rotas import (
    duty_officers,
    duty_officers_by_agency,
    on_call,
    on_call_next,
    rota_timeline,
)
from coordination.roles import Role

from .factories import RotaFactory, RotaOverrideFactory, ShiftFactory, UserFactory

pytestmark = pytest.mark.django_db

STOCKHOLM = ZoneInfo("Europe/Stockholm")
TICK = timedelta(microseconds=1)


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=STOCKHOLM)


def weekly(rota, user, first: date, *, every: int = 1, tier: str = "primary", **extra):
    """Monday 08:00 local for seven days, every ``every`` weeks."""
    return ShiftFactory(
        rota=rota,
        user=user,
        tier=tier,
        start_date=first,
        start_time=time(8),
        duration=timedelta(days=7),
        recurrence="weekly",
        interval=every,
        **extra,
    )


@pytest.fixture
def rota(police):
    return RotaFactory(agency=police, name="Strategic duty officer")


@pytest.fixture
def anna(police):
    return UserFactory(username="anna", agency=police, roles=[Role.DUTY_OFFICER])


@pytest.fixture
def bob(police):
    return UserFactory(username="bob", agency=police, roles=[Role.DUTY_OFFICER])


@pytest.fixture
def cecilia(police):
    return UserFactory(username="cecilia", agency=police, roles=[Role.DUTY_OFFICER])


def test_a_one_off_shift_covers_exactly_its_interval(rota, anna):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
    )

    assert on_call(rota=rota, at=local(2026, 5, 4, 8) - TICK).primary is None
    during = on_call(rota=rota, at=local(2026, 5, 4, 8)).primary
    assert during is not None and during.user == anna
    assert (during.since, during.until) == (local(2026, 5, 4, 8), local(2026, 5, 4, 20))
    assert not during.is_override
    assert on_call(rota=rota, at=local(2026, 5, 4, 20) - TICK).primary.user == anna
    assert on_call(rota=rota, at=local(2026, 5, 4, 20)).primary is None


def test_at_the_hand_over_instant_the_next_person_is_on_call(rota, anna, bob):
    weekly(rota, anna, date(2026, 5, 4), every=2)
    weekly(rota, bob, date(2026, 5, 11), every=2)
    handover = local(2026, 5, 11, 8)

    just_before = on_call(rota=rota, at=handover - TICK).primary
    at_instant = on_call(rota=rota, at=handover).primary
    just_after = on_call(rota=rota, at=handover + TICK).primary

    assert just_before.user == anna and just_before.until == handover
    assert at_instant.user == bob and at_instant.since == handover
    assert just_after.user == bob and at_instant.until == local(2026, 5, 18, 8)
    # The fortnightly pattern comes round again.
    assert on_call(rota=rota, at=local(2026, 5, 18, 8)).primary.user == anna


def test_a_weekly_0800_hand_over_stays_0800_local_when_the_clocks_go_forward(rota, anna, bob):
    # Stockholm moves from CET (UTC+1) to CEST (UTC+2) on Sunday 29 March 2026.
    weekly(rota, anna, date(2026, 3, 23), every=2)
    weekly(rota, bob, date(2026, 3, 30), every=2)

    before = on_call(rota=rota, at=datetime(2026, 3, 30, 5, 59, 59, tzinfo=UTC)).primary
    assert before.user == anna
    assert before.since == datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 CET
    assert before.until == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert before.until - before.since == timedelta(days=7, hours=-1)
    # 07:00 UTC would be 08:00 had the clocks not changed; by then Bob has been on for an hour.
    assert on_call(rota=rota, at=datetime(2026, 3, 30, 6, 0, tzinfo=UTC)).primary.user == bob


def test_and_when_the_clocks_go_back(rota, anna, bob):
    # CEST back to CET on Sunday 25 October 2026: that week is 169 hours long.
    weekly(rota, anna, date(2026, 10, 19), every=2)
    weekly(rota, bob, date(2026, 10, 26), every=2)

    stretch = on_call(rota=rota, at=local(2026, 10, 25, 12)).primary
    assert stretch.user == anna
    assert stretch.until == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)
    assert stretch.until - stretch.since == timedelta(days=7, hours=1)
    assert stretch.until.astimezone(STOCKHOLM).time() == time(8)


def test_a_daily_day_shift_keeps_its_local_hours_on_the_day_the_clocks_change(rota, anna):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 3, 27),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
    )
    for day in (28, 29, 30):
        start, end = local(2026, 3, day, 8), local(2026, 3, day, 20)
        assert on_call(rota=rota, at=start - TICK).primary is None
        assert on_call(rota=rota, at=start).primary.until == end
        assert on_call(rota=rota, at=end).primary is None
    # The same local hours are different UTC hours either side of the change.
    assert local(2026, 3, 28, 8).astimezone(UTC).hour == 7
    assert local(2026, 3, 30, 8).astimezone(UTC).hour == 6


def test_a_start_time_that_does_not_exist_that_day_is_read_before_the_change(rota, anna):
    # 02:30 on 29 March does not exist in Stockholm; read with the CET offset, it is 01:30 UTC.
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 3, 28),
        start_time=time(2, 30),
        duration=timedelta(hours=4),
        recurrence="daily",
    )
    held = on_call(rota=rota, at=datetime(2026, 3, 29, 2, tzinfo=UTC)).primary
    assert held.since == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_cover_takes_precedence_over_the_shift_and_hands_back(rota, anna, bob):
    weekly(rota, anna, date(2026, 5, 4))
    RotaOverrideFactory(
        rota=rota,
        user=bob,
        starts_at=local(2026, 5, 6, 12),
        ends_at=local(2026, 5, 6, 18),
        reason="Anna at a funeral",
    )

    covered = on_call(rota=rota, at=local(2026, 5, 6, 12)).primary
    assert covered.user == bob and covered.is_override
    assert (covered.since, covered.until) == (local(2026, 5, 6, 12), local(2026, 5, 6, 18))
    back = on_call(rota=rota, at=local(2026, 5, 6, 18)).primary
    assert back.user == anna and not back.is_override
    assert back.since == local(2026, 5, 6, 18)
    # Anna's own shift runs on; nothing in the rota ends her weekly duty within a year.
    assert back.until is None
    assert on_call(rota=rota, at=local(2026, 5, 6, 12) - TICK).primary.user == anna


def test_cover_on_the_secondary_leaves_the_primary_alone(rota, anna, bob, cecilia):
    weekly(rota, anna, date(2026, 5, 4))
    weekly(rota, bob, date(2026, 5, 4), tier="secondary")
    RotaOverrideFactory(
        rota=rota,
        user=cecilia,
        tier="secondary",
        starts_at=local(2026, 5, 6, 0),
        ends_at=local(2026, 5, 7, 0),
    )
    answer = on_call(rota=rota, at=local(2026, 5, 6, 9))
    assert answer.primary.user == anna and not answer.primary.is_override
    assert answer.secondary.user == cecilia and answer.secondary.is_override
    assert [a.tier for a in answer.assignments] == ["primary", "secondary"]


def test_nobody_on_call_is_none_not_an_error(rota, anna):
    empty = on_call(rota=rota, at=local(2026, 5, 6, 9))
    assert (empty.primary, empty.secondary, empty.assignments) == (None, None, [])

    weekly(rota, anna, date(2026, 5, 4))
    only_primary = on_call(rota=rota, at=local(2026, 5, 6, 9))
    assert only_primary.primary.user == anna and only_primary.secondary is None


def test_a_shift_that_starts_later_takes_over_an_overlapping_one(rota, anna, bob, cecilia):
    weekly(rota, anna, date(2026, 5, 4))
    # A day shift layered on the weekly one: it wins while it runs.
    ShiftFactory(
        rota=rota,
        user=bob,
        start_date=date(2026, 5, 6),
        start_time=time(9),
        duration=timedelta(hours=8),
    )
    assert on_call(rota=rota, at=local(2026, 5, 6, 10)).primary.user == bob
    assert on_call(rota=rota, at=local(2026, 5, 6, 17)).primary.user == anna
    # Equal starts: the newer shift wins, whatever order the database returns rows in.
    ShiftFactory(
        rota=rota,
        user=cecilia,
        start_date=date(2026, 5, 6),
        start_time=time(9),
        duration=timedelta(hours=1),
    )
    assert on_call(rota=rota, at=local(2026, 5, 6, 9, 30)).primary.user == cecilia
    assert on_call(rota=rota, at=local(2026, 5, 6, 10)).primary.user == bob


def test_a_deactivated_person_is_never_on_call(rota, anna, bob):
    weekly(rota, anna, date(2026, 5, 4))
    RotaOverrideFactory(
        rota=rota, user=bob, starts_at=local(2026, 5, 6, 0), ends_at=local(2026, 5, 7, 0)
    )
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    assert on_call(rota=rota, at=local(2026, 5, 6, 9)).primary.user == anna
    anna.is_active = False
    anna.save(update_fields=["is_active"])
    assert on_call(rota=rota, at=local(2026, 5, 6, 9)).primary is None


def test_repeating_stops_after_the_last_date(rota, anna):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
        repeat_until=date(2026, 5, 6),
    )
    assert on_call(rota=rota, at=local(2026, 5, 6, 19)).primary.user == anna
    assert on_call(rota=rota, at=local(2026, 5, 7, 9)).primary is None
    assert on_call(rota=rota, at=local(2026, 5, 3, 9)).primary is None


def test_next_hand_overs_in_order_with_gaps_and_cover(rota, anna, bob, cecilia):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
    )
    ShiftFactory(
        rota=rota,
        user=bob,
        tier="secondary",
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(days=1),
        recurrence="daily",
    )
    RotaOverrideFactory(
        rota=rota, user=cecilia, starts_at=local(2026, 5, 5, 10), ends_at=local(2026, 5, 5, 12)
    )

    handovers = on_call_next(rota=rota, after=local(2026, 5, 5, 9), limit=4)
    assert [(h.at, h.tier, h.user, h.previous_user, h.is_override) for h in handovers] == [
        (local(2026, 5, 5, 10), "primary", cecilia, anna, True),
        (local(2026, 5, 5, 12), "primary", anna, cecilia, False),
        (local(2026, 5, 5, 20), "primary", None, anna, False),
        (local(2026, 5, 6, 8), "primary", anna, None, False),
    ]
    # Bob's back-to-back daily secondary shifts are one unbroken stretch: no hand-over.
    assert all(h.tier == "primary" for h in on_call_next(rota=rota, after=local(2026, 5, 5, 9)))
    # Strictly after: a hand-over at the instant asked about is not "next".
    assert on_call_next(rota=rota, after=local(2026, 5, 5, 10), limit=1)[0].at == local(
        2026, 5, 5, 12
    )


def test_the_timeline_lists_who_holds_each_tier(rota, anna):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
    )
    segments = rota_timeline(rota=rota, start=local(2026, 5, 4, 0), end=local(2026, 5, 5, 0))
    primary = [(s.starts_at, s.ends_at, s.user) for s in segments if s.tier == "primary"]
    assert primary == [
        (local(2026, 5, 4, 0), local(2026, 5, 4, 8), None),
        (local(2026, 5, 4, 8), local(2026, 5, 4, 20), anna),
        (local(2026, 5, 4, 20), local(2026, 5, 5, 0), None),
    ]


def test_a_naive_instant_is_refused(rota):
    with pytest.raises(ValueError, match="aware"):
        on_call(rota=rota, at=datetime(2026, 5, 4, 8))


def test_duty_officers_of_an_agency_in_a_constant_number_of_queries(
    police, anna, bob, django_assert_num_queries
):
    rotas = [RotaFactory(agency=police, name=f"Rota {n}") for n in range(3)]
    for rota in rotas:
        weekly(rota, anna, date(2026, 5, 4))
        weekly(rota, bob, date(2026, 5, 4), tier="secondary")
    RotaFactory(agency=police, name="Retired", is_active=False)
    weekly(Rota.objects.get(name="Retired"), anna, date(2026, 5, 4))

    with django_assert_num_queries(3):  # rotas, shifts, overrides
        officers = duty_officers(agency=police, at=local(2026, 5, 6, 9))
    assert [(o.rota.name, o.tier, o.user.username) for o in officers] == [
        ("Rota 0", "primary", "anna"),
        ("Rota 0", "secondary", "bob"),
        ("Rota 1", "primary", "anna"),
        ("Rota 1", "secondary", "bob"),
        ("Rota 2", "primary", "anna"),
        ("Rota 2", "secondary", "bob"),
    ]


def test_on_call_reads_two_queries_however_many_shifts(rota, anna, django_assert_num_queries):
    for week in range(20):
        weekly(rota, anna, date(2026, 1, 5) + timedelta(weeks=week), every=20)
    loaded = Rota.objects.select_related("agency__city").get(pk=rota.pk)
    with django_assert_num_queries(2):  # shifts, overrides
        on_call(rota=loaded, at=local(2026, 5, 6, 9))


def test_cover_by_the_person_already_on_call_is_no_hand_over(rota, anna, bob):
    ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
    )
    ShiftFactory(
        rota=rota,
        user=bob,
        start_date=date(2026, 5, 4),
        start_time=time(20),
        duration=timedelta(hours=12),
    )
    # Anna's cover starts while her own shift runs and extends it by two hours.
    RotaOverrideFactory(
        rota=rota, user=anna, starts_at=local(2026, 5, 4, 18), ends_at=local(2026, 5, 4, 22)
    )
    held = on_call(rota=rota, at=local(2026, 5, 4, 19)).primary
    assert (held.user, held.is_override, held.since) == (anna, True, local(2026, 5, 4, 18))

    handovers = on_call_next(rota=rota, after=local(2026, 5, 4, 9))
    assert [(h.at, h.user, h.previous_user) for h in handovers] == [
        (local(2026, 5, 4, 22), bob, anna),
        (local(2026, 5, 5, 8), None, bob),
    ]


def test_someone_who_moved_to_another_agency_is_no_longer_on_its_rota(rota, anna, fire):
    weekly(rota, anna, date(2026, 5, 4))
    assert on_call(rota=rota, at=local(2026, 5, 6, 9)).primary.user == anna
    anna.agency = fire
    anna.save(update_fields=["agency"])
    assert on_call(rota=rota, at=local(2026, 5, 6, 9)).primary is None


def test_duty_officers_of_several_agencies_at_once(
    police, fire, transport, anna, django_assert_num_queries
):
    weekly(RotaFactory(agency=police, name="Police duty"), anna, date(2026, 5, 4))
    firefighter = UserFactory(agency=fire, roles=[Role.DUTY_OFFICER])
    weekly(RotaFactory(agency=fire, name="Fire duty"), firefighter, date(2026, 5, 4))

    with django_assert_num_queries(3):
        found = duty_officers_by_agency(agencies=[police, fire, transport], at=local(2026, 5, 6))
    assert {agency_id: [o.user for o in officers] for agency_id, officers in found.items()} == {
        police.pk: [anna],
        fire.pk: [firefighter],
        transport.pk: [],
    }
