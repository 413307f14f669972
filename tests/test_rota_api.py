"""The rota API: who is on call, shifts and cover; the access rule; bad input answers 400."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from comms.models import RotaOverride, Shift
from coordination.roles import Role

from .factories import RotaFactory, RotaOverrideFactory, ShiftFactory, UserFactory

pytestmark = pytest.mark.django_db

STOCKHOLM = ZoneInfo("Europe/Stockholm")


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
def oslo_rota(oslo_police):
    return RotaFactory(agency=oslo_police, name="Oslo duty officer")


@pytest.fixture
def daily(rota, anna):
    """Anna, every day 08:00-20:00 Stockholm time from 4 May 2026."""
    return ShiftFactory(
        rota=rota,
        user=anna,
        start_date=date(2026, 5, 4),
        start_time=time(8),
        duration=timedelta(hours=12),
        recurrence="daily",
    )


def on_call_url(rota) -> str:
    return f"/api/v1/rotas/{rota.pk}/on-call/"


def test_rotas_of_the_callers_city_are_listed(api, liaison, rota, oslo_rota):
    response = api(liaison).get("/api/v1/rotas/")
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["results"]] == ["Strategic duty officer"]
    detail = api(liaison).get(f"/api/v1/rotas/{rota.pk}/").json()
    assert detail["time_zone"] == "Europe/Stockholm"
    assert detail["calendar_url"].startswith(
        f"http://testserver/rotas/{rota.pk}/calendar.ics?token="
    )


def test_another_citys_rota_is_not_found_for_every_action(api, administrator, oslo_rota):
    client = api(administrator)
    assert client.get(f"/api/v1/rotas/{oslo_rota.pk}/").status_code == 404
    assert client.get(on_call_url(oslo_rota)).status_code == 404
    assert client.get(f"/api/v1/rotas/{oslo_rota.pk}/shifts/").status_code == 404
    assert client.post(f"/api/v1/rotas/{oslo_rota.pk}/shifts/", {}).status_code == 404
    assert client.post(f"/api/v1/rotas/{oslo_rota.pk}/overrides/", {}).status_code == 404
    assert client.post(f"/api/v1/rotas/{oslo_rota.pk}/revoke-calendar/").status_code == 404


def test_on_call_at_an_instant_with_the_next_hand_overs(api, liaison, rota, daily, anna):
    response = api(liaison).get(on_call_url(rota), {"at": "2026-05-05T09:00:00+02:00"})
    assert response.status_code == 200
    body = response.json()
    assert body["at"] == "2026-05-05T07:00:00Z"
    assert body["primary"]["user"] == anna.pk
    assert body["primary"]["until"] == "2026-05-05T18:00:00Z"
    assert body["primary"]["is_override"] is False
    assert body["secondary"] is None
    assert [(h["at"], h["user"]) for h in body["next"][:2]] == [
        ("2026-05-05T18:00:00Z", None),
        ("2026-05-06T06:00:00Z", anna.pk),
    ]


def test_on_call_defaults_to_now(api, liaison, rota, daily, anna):
    with time_machine.travel(datetime(2026, 5, 6, 7, 30, tzinfo=UTC), tick=False):
        morning = api(liaison).get(on_call_url(rota)).json()
    with time_machine.travel(datetime(2026, 5, 6, 19, 30, tzinfo=UTC), tick=False):
        night = api(liaison).get(on_call_url(rota)).json()
    assert morning["at"] == "2026-05-06T07:30:00Z" and morning["primary"]["user"] == anna.pk
    assert night["primary"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"at": "yesterday"}, "at"),
        ({"at": "1999-12-31T23:00:00Z"}, "at"),
        ({"at": "9999-12-31T23:59:59Z"}, "at"),
        ({"at": "2100-01-01T00:00:00Z"}, "at"),
        ({"next": "many"}, "next"),
        ({"next": "-1"}, "next"),
        ({"next": "51"}, "next"),
    ],
)
def test_bad_on_call_queries_answer_400_naming_the_parameter(api, liaison, rota, query, field):
    response = api(liaison).get(on_call_url(rota), query)
    assert response.status_code == 400
    assert field in response.json()


def shift_body(person, **overrides):
    body = {
        "user": person.pk,
        "tier": "primary",
        "starts_at": "2026-05-04T08:00:00+02:00",
        "ends_at": "2026-05-11T08:00:00+02:00",
        "recurrence": "weekly",
        "interval": 2,
    }
    body.update(overrides)
    return body


@time_machine.travel(datetime(2026, 5, 1, 12, tzinfo=UTC), tick=False)
def test_an_administrator_adds_a_weekly_shift_read_on_the_local_clock(
    api, administrator, rota, anna
):
    response = api(administrator).post(f"/api/v1/rotas/{rota.pk}/shifts/", shift_body(anna))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["start_date"], body["start_time"], body["duration"]) == (
        "2026-05-04",
        "08:00:00",
        "7 00:00:00",
    )
    assert body["first_starts_at"] == "2026-05-04T06:00:00Z"
    shift = Shift.objects.get(pk=body["id"])
    assert shift.created_by == administrator

    listed = api(administrator).get(f"/api/v1/rotas/{rota.pk}/shifts/").json()
    assert [s["id"] for s in listed["results"]] == [shift.pk]
    assert (
        api(administrator).delete(f"/api/v1/rotas/{rota.pk}/shifts/{shift.pk}/").status_code == 204
    )
    assert not Shift.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user": 999999}, "user"),
        ({"tier": "tertiary"}, "tier"),
        ({"starts_at": "next monday"}, "starts_at"),
        ({"ends_at": "2026-05-04T07:00:00+02:00"}, "ends_at"),
        ({"ends_at": "2026-06-04T08:00:00+02:00", "recurrence": "once"}, "ends_at"),
        ({"recurrence": "monthly"}, "recurrence"),
        ({"interval": 0}, "interval"),
        ({"interval": "two"}, "interval"),
        ({"recurrence": "daily", "interval": 1}, "ends_at"),  # 7 days long, repeating daily
        ({"repeat_until": "2026-05-01"}, "repeat_until"),
        ({"repeat_until": "someday"}, "repeat_until"),
        ({"repeat_until": "9999-12-31"}, "repeat_until"),
        ({"starts_at": "9999-12-31T08:00:00Z", "ends_at": "9999-12-31T09:00:00Z"}, "starts_at"),
        ({"starts_at": "0001-01-01T08:00:00Z"}, "starts_at"),
        ({"note": "x" * 201}, "note"),
    ],
)
@time_machine.travel(datetime(2026, 5, 1, 12, tzinfo=UTC), tick=False)
def test_bad_shifts_answer_400_naming_the_field(api, administrator, rota, anna, overrides, field):
    response = api(administrator).post(
        f"/api/v1/rotas/{rota.pk}/shifts/", shift_body(anna, **overrides)
    )
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Shift.objects.exists()


def test_a_shift_for_someone_of_another_agency_is_refused(api, administrator, rota, liaison):
    response = api(administrator).post(f"/api/v1/rotas/{rota.pk}/shifts/", shift_body(liaison))
    assert response.status_code == 400
    assert "agency" in response.json()["user"][0]


def test_a_person_of_another_city_is_not_even_found(api, administrator, rota, oslo_police):
    stranger = UserFactory(agency=oslo_police)
    response = api(administrator).post(f"/api/v1/rotas/{rota.pk}/shifts/", shift_body(stranger))
    assert response.status_code == 400
    assert "does not exist" in response.json()["user"][0]


def test_only_administrators_change_rotas(api, liaison, anna, rota, daily):
    client = api(liaison)
    assert client.post(f"/api/v1/rotas/{rota.pk}/shifts/", shift_body(anna)).status_code == 403
    assert client.delete(f"/api/v1/rotas/{rota.pk}/shifts/{daily.pk}/").status_code == 403
    assert client.post(f"/api/v1/rotas/{rota.pk}/overrides/", {}).status_code == 403
    assert client.post(f"/api/v1/rotas/{rota.pk}/revoke-calendar/").status_code == 403
    assert Shift.objects.count() == 1


@time_machine.travel(datetime(2026, 5, 5, 6, tzinfo=UTC), tick=False)
def test_cover_through_the_api_changes_who_is_on_call(api, administrator, rota, daily, bob):
    response = api(administrator).post(
        f"/api/v1/rotas/{rota.pk}/overrides/",
        {
            "user": bob.pk,
            "starts_at": "2026-05-05T10:00:00+02:00",
            "ends_at": "2026-05-05T12:00:00+02:00",
            "reason": "Anna in court",
        },
    )
    assert response.status_code == 201, response.json()
    override_id = response.json()["id"]
    at = {"at": "2026-05-05T11:00:00+02:00"}
    primary = api(administrator).get(on_call_url(rota), at).json()["primary"]
    assert (primary["user"], primary["is_override"]) == (bob.pk, True)

    deleted = api(administrator).delete(f"/api/v1/rotas/{rota.pk}/overrides/{override_id}/")
    assert deleted.status_code == 204
    assert api(administrator).get(on_call_url(rota), at).json()["primary"]["is_override"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"starts_at": "2026-05-05T12:00:00Z", "ends_at": "2026-05-05T10:00:00Z"}, "ends_at"),
        ({"starts_at": "2026-05-01T10:00:00Z", "ends_at": "2026-05-02T10:00:00Z"}, "ends_at"),
        ({"starts_at": "2026-05-05T10:00:00Z", "ends_at": "2027-06-05T10:00:00Z"}, "ends_at"),
        ({"starts_at": "2026-05-05T10:00:00Z"}, "ends_at"),
        (
            {"starts_at": "2026-05-05T10:00:00Z", "ends_at": "2026-05-05T12:00:00Z", "tier": 3},
            "tier",
        ),
    ],
)
@time_machine.travel(datetime(2026, 5, 5, 6, tzinfo=UTC), tick=False)
def test_bad_cover_answers_400_naming_the_field(api, administrator, rota, bob, body, field):
    response = api(administrator).post(
        f"/api/v1/rotas/{rota.pk}/overrides/", {"user": bob.pk, **body}
    )
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not RotaOverride.objects.exists()


def test_an_override_of_another_rota_is_not_found_under_this_one(
    api, administrator, rota, police, bob
):
    other = RotaFactory(agency=police, name="Tactical")
    cover = RotaOverrideFactory(rota=other, user=bob)
    response = api(administrator).delete(f"/api/v1/rotas/{rota.pk}/overrides/{cover.pk}/")
    assert response.status_code == 404
    assert RotaOverride.objects.filter(pk=cover.pk).exists()


def test_revoking_the_calendar_gives_a_new_url(api, administrator, rota):
    before = api(administrator).get(f"/api/v1/rotas/{rota.pk}/").json()["calendar_url"]
    response = api(administrator).post(f"/api/v1/rotas/{rota.pk}/revoke-calendar/")
    assert response.status_code == 200
    assert response.json()["calendar_url"] != before


def test_anonymous_callers_are_refused(api, rota):
    assert api().get("/api/v1/rotas/").status_code in (401, 403)
    assert api().get(on_call_url(rota)).status_code in (401, 403)


@pytest.fixture
def write_urls(rota, daily):
    return [
        ("post", f"/api/v1/rotas/{rota.pk}/shifts/"),
        ("post", f"/api/v1/rotas/{rota.pk}/overrides/"),
        ("post", "/api/v1/me/contact-methods/"),
        ("post", "/api/v1/contact-methods/"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        '{"user": ',
        "not json at all",
        "[1, 2, 3]",
        "null",
        '"a string"',
        '{"user": [], "starts_at": {}, "ends_at": null, "tier": [], "interval": 1e400}',
        '{"kind": {}, "address": ["x"], "label": null}',
        '{"note": "a\\u0000b", "reason": "a\\u0000b", "address": "a\\u0000b@x.org"}',
    ],
)
def test_malformed_bodies_are_bad_requests_never_errors(api, write_urls, body):
    client = api(UserFactory(agency=None, is_superuser=True, is_staff=True))
    for method, target in write_urls:
        response = getattr(client, method)(target, body, content_type="application/json")
        assert response.status_code == 400, (target, body, response.status_code)
    assert (Shift.objects.count(), RotaOverride.objects.count()) == (1, 0)


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/rotas/?agency=abc",
        "/api/v1/rotas/?is_active=perhaps",
        "/api/v1/escalation-policies/?is_default=2",
        "/api/v1/me/contact-methods/?kind=pigeon",
    ],
)
def test_bad_filters_are_bad_requests(api, administrator, rota, query):
    assert api(administrator).get(query).status_code == 400
