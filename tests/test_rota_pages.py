"""The rota pages: who is on call now and next, one rota, and the forms administrators use."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.urls import reverse

from comms.models import RotaOverride, Shift
from coordination.roles import Role

from .factories import RotaFactory, RotaOverrideFactory, ShiftFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 6, 7, 30, tzinfo=UTC)  # 09:30 in Stockholm


@pytest.fixture
def rota(police):
    return RotaFactory(agency=police, name="Strategic duty officer")


@pytest.fixture
def anna(police):
    return UserFactory(
        username="anna",
        first_name="Anna",
        last_name="Berg",
        agency=police,
        roles=[Role.DUTY_OFFICER],
    )


@pytest.fixture
def bob(police):
    return UserFactory(
        username="bob", first_name="Bob", last_name="Ek", agency=police, roles=[Role.DUTY_OFFICER]
    )


@pytest.fixture
def daily(rota, anna):
    return ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 1),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
    )


def test_signing_in_is_required(client, rota):
    for url in (reverse("rotas"), reverse("rota", args=[rota.pk])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]


@time_machine.travel(NOW, tick=False)
def test_who_is_on_call_now_and_next_in_local_time(client, liaison, rota, daily, fire):
    client.force_login(liaison)
    page = client.get(reverse("rotas")).content.decode()
    assert "Strategic duty officer" in page
    assert "Anna Berg" in page
    assert "20:00 CEST" in page  # Anna until 20:00 local, not 18:00 UTC
    assert "Nobody on call" in page  # no secondary
    # Every agency of the city is listed, a rota or not.
    assert "Fire (FRS)" in page and "No active rota." in page


def test_another_citys_rotas_are_not_listed_nor_shown(client, liaison, oslo_police):
    theirs = RotaFactory(agency=oslo_police, name="Oslo vakthavende")
    client.force_login(liaison)
    assert "Oslo vakthavende" not in client.get(reverse("rotas")).content.decode()
    assert client.get(reverse("rota", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("rota-shift-add", args=[theirs.pk])).status_code == 404


@time_machine.travel(NOW, tick=False)
def test_a_rotas_page_shows_the_coming_stretches_shifts_and_cover(
    client, liaison, rota, daily, bob
):
    RotaOverrideFactory(
        rota=rota,
        user=bob,
        starts_at=datetime(2026, 5, 7, 10, tzinfo=UTC),
        ends_at=datetime(2026, 5, 7, 12, tzinfo=UTC),
        reason="Training day",
    )
    client.force_login(liaison)
    page = client.get(reverse("rota", args=[rota.pk])).content.decode()
    assert "Bob Ek (cover)" in page and "Training day" in page
    assert "Thu 2026-05-07 12:00 CEST" in page  # cover starts at 10:00 UTC
    assert "calendar.ics?token=" in page
    assert "every day" in page and "12 h" in page
    # Not an administrator: no forms, no remove buttons.
    assert "Add a shift" not in page and "Remove" not in page


@time_machine.travel(NOW, tick=False)
def test_an_administrator_adds_a_shift_typed_in_local_time(client, administrator, rota, anna):
    client.force_login(administrator)
    page = client.get(reverse("rota", args=[rota.pk])).content.decode()
    assert "Add a shift" in page and "Add cover" in page
    response = client.post(
        reverse("rota-shift-add", args=[rota.pk]),
        {
            "shift-user": anna.pk,
            "shift-tier": "secondary",
            "shift-starts_at": "2026-05-11T08:00",
            "shift-ends_at": "2026-05-18T08:00",
            "shift-recurrence": "weekly",
            "shift-interval": "1",
            "shift-repeat_until": "",
            "shift-note": "",
        },
    )
    assert response.status_code == 302
    shift = Shift.objects.get()
    assert (shift.start_date, shift.start_time, shift.duration) == (
        date(2026, 5, 11),
        time(8),
        timedelta(days=7),
    )
    assert shift.tier == "secondary" and shift.created_by == administrator


@time_machine.travel(NOW, tick=False)
def test_a_bad_shift_shows_the_form_again_with_the_error(client, administrator, rota, anna):
    client.force_login(administrator)
    response = client.post(
        reverse("rota-shift-add", args=[rota.pk]),
        {
            "shift-user": anna.pk,
            "shift-tier": "primary",
            "shift-starts_at": "2026-05-11T08:00",
            "shift-ends_at": "2026-05-11T07:00",
            "shift-recurrence": "once",
            "shift-interval": "1",
        },
    )
    assert response.status_code == 400
    assert "Must be after the start." in response.content.decode()
    assert not Shift.objects.exists()

    garbled = client.post(
        reverse("rota-shift-add", args=[rota.pk]),
        {"shift-user": "x", "shift-starts_at": "soon", "shift-interval": "0"},
    )
    assert garbled.status_code == 400
    assert not Shift.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_an_administrator_adds_and_removes_cover(client, administrator, rota, daily, bob):
    client.force_login(administrator)
    response = client.post(
        reverse("rota-override-add", args=[rota.pk]),
        {
            "cover-user": bob.pk,
            "cover-tier": "primary",
            "cover-starts_at": "2026-05-06T10:00",
            "cover-ends_at": "2026-05-06T14:00",
            "cover-reason": "Anna at the dentist",
        },
    )
    assert response.status_code == 302
    cover = RotaOverride.objects.get()
    assert cover.starts_at == datetime(2026, 5, 6, 8, tzinfo=UTC)
    page = client.get(reverse("rota", args=[rota.pk])).content.decode()
    assert "Anna at the dentist" in page

    removed = client.post(reverse("rota-override-delete", args=[rota.pk, cover.pk]))
    assert removed.status_code == 302 and not RotaOverride.objects.exists()
    client.post(reverse("rota-shift-delete", args=[rota.pk, daily.pk]))
    assert not Shift.objects.exists()


def test_only_administrators_may_post_the_forms(client, liaison, rota, daily, anna):
    client.force_login(liaison)
    assert client.post(reverse("rota-shift-add", args=[rota.pk]), {}).status_code == 403
    assert client.post(reverse("rota-override-add", args=[rota.pk]), {}).status_code == 403
    delete = reverse("rota-shift-delete", args=[rota.pk, daily.pk])
    assert client.post(delete).status_code == 403
    assert client.post(reverse("rota-calendar-revoke", args=[rota.pk])).status_code == 403
    assert Shift.objects.count() == 1


def test_a_shift_of_another_rota_is_not_found_under_this_one(
    client, administrator, rota, police, anna
):
    other = RotaFactory(agency=police, name="Tactical")
    theirs = ShiftFactory(rota=other, user=anna)
    client.force_login(administrator)
    response = client.post(reverse("rota-shift-delete", args=[rota.pk, theirs.pk]))
    assert response.status_code == 404
    assert Shift.objects.filter(pk=theirs.pk).exists()


def test_the_pages_take_a_constant_number_of_queries(
    client, liaison, police, anna, django_assert_max_num_queries
):
    for n in range(6):
        rota = RotaFactory(agency=police, name=f"Rota {n}")
        ShiftFactory(rota=rota, user=anna, recurrence="daily", duration=timedelta(hours=12))
    client.force_login(liaison)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("rotas")).status_code == 200


@pytest.mark.parametrize(
    ("duration", "label"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(hours=12), "12 h"),
        (timedelta(days=1, hours=4, minutes=30), "1 day 4 h 30 min"),
    ],
)
def test_shift_lengths_read_as_people_say_them(duration, label):
    assert Shift(duration=duration).duration_label == label
