"""Who is on call: the primary and secondary duty officer of a rota at any instant.

The rules, in the order they apply to one tier (primary or secondary) of one rota:

1. Every interval is half-open, ``[start, end)``: at a shift's end instant the next person is
   already on call, and the person whose shift ended is not.
2. Cover (a ``RotaOverride``) takes precedence over any shift.
3. Among entries of the same kind covering the same instant, the one that started last wins (a
   shift that begins takes over from one still running); equal starts go to the newer entry
   (higher id). So the answer never depends on the order rows come out of the database.
4. Shifts repeat on the city's wall clock (see ``Shift``), so hand-overs stay at the same local
   time across daylight-saving changes. A wall-clock time that does not exist on the day the
   clocks go forward (02:30 in Stockholm) is read with the offset before the change, and an
   ambiguous one (the repeated hour in autumn) as its first occurrence.
5. People whose account is deactivated, or who have moved to another agency, are never on call
   for it; the next entry in precedence applies.

Each query loads the rota's shifts and overrides with one query each and resolves the timeline
in memory (a sweep over the start and end instants), however many instants it answers about.
"""

import heapq
import itertools
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import F, Q

from coordination.models import Agency, User

from .models import (
    LATEST_INSTANT,
    EscalationPolicy,
    EscalationStep,
    Recurrence,
    Rota,
    RotaOverride,
    Shift,
    StepTarget,
    Tier,
)

# How far before the instant asked about a stretch on call is traced back: "on call since".
LOOKBACK = timedelta(days=35)
# How far ahead the end of a stretch (and the next hand-overs) is looked for. A stretch running
# past it is reported as open-ended (``until`` None): nothing in the rota ends it within a year.
HORIZONS = (timedelta(days=35), timedelta(days=400))

TIERS: tuple[str, ...] = (Tier.PRIMARY, Tier.SECONDARY)


@dataclass(frozen=True)
class Occurrence:
    """One concrete duty period: an occurrence of a shift or an override, in UTC."""

    tier: str
    user_id: int
    starts_at: datetime
    ends_at: datetime
    is_override: bool
    source_id: int  # the Shift's or RotaOverride's id

    @property
    def precedence(self) -> tuple[bool, datetime, int]:
        return (self.is_override, self.starts_at, self.source_id)


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which one tier of a rota is held by one person (or nobody).

    ``starts_at`` / ``ends_at`` are None when the stretch reaches past the window looked at.
    """

    tier: str
    user: User | None
    starts_at: datetime | None
    ends_at: datetime | None
    is_override: bool

    @property
    def tier_label(self) -> str:
        return Tier(self.tier).label


@dataclass(frozen=True)
class Assignment:
    """Who holds one tier at an instant, since when and until when (None: beyond the horizon)."""

    tier: str
    user: User
    since: datetime | None
    until: datetime | None
    is_override: bool

    @property
    def tier_label(self) -> str:
        return Tier(self.tier).label


@dataclass(frozen=True)
class OnCall:
    """The answer for one rota at one instant. ``primary``/``secondary`` are None when nobody
    holds that tier."""

    rota: Rota
    at: datetime
    primary: Assignment | None
    secondary: Assignment | None

    @property
    def assignments(self) -> list[Assignment]:
        return [a for a in (self.primary, self.secondary) if a is not None]


@dataclass(frozen=True)
class Handover:
    """The instant one tier of a rota passes from one person (or nobody) to another."""

    at: datetime
    tier: str
    user: User | None
    previous_user: User | None
    is_override: bool

    @property
    def tier_label(self) -> str:
        return Tier(self.tier).label


@dataclass(frozen=True)
class DutyOfficer:
    """One duty officer of an agency at an instant: the holder of one tier of one active rota."""

    rota: Rota
    tier: str
    user: User
    until: datetime | None
    is_override: bool

    @property
    def tier_label(self) -> str:
        return Tier(self.tier).label


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a UTC offset).")
    if value >= LATEST_INSTANT:
        raise ValueError(f"{name} must be before {LATEST_INSTANT:%Y}.")
    return value


def _local_instant(day: date, shift: Shift, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of the occurrence of ``shift`` that starts on local ``day``."""
    naive_start = datetime.combine(day, shift.start_time)
    naive_end = naive_start + shift.duration
    start = naive_start.replace(tzinfo=zone)
    end = naive_end.replace(tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def wall_clock_instants(shift: Shift) -> tuple[datetime, datetime]:
    """The UTC start and end of a shift's first occurrence."""
    return _local_instant(shift.start_date, shift, shift.rota.agency.city.zone)


def shift_step_days(shift: Shift) -> int | None:
    """Days between two occurrences, or None for a one-off shift."""
    if shift.recurrence == Recurrence.DAILY:
        return shift.interval
    if shift.recurrence == Recurrence.WEEKLY:
        return 7 * shift.interval
    return None


def shift_occurrences(
    shift: Shift, *, zone: zoneinfo.ZoneInfo, start: datetime, end: datetime
) -> list[Occurrence]:
    """The occurrences of ``shift`` that overlap ``[start, end)``, earliest first."""
    step = shift_step_days(shift)
    # Local dates, with slack for the largest UTC offsets; the precise filter is below.
    first_day = start.astimezone(zone).date() - shift.duration - timedelta(days=2)
    last_day = end.astimezone(zone).date() + timedelta(days=2)
    if step is None:
        indices: Iterable[int] = [0]
    else:
        first_k = max(0, -(-(first_day - shift.start_date).days // step))
        last_date = min(last_day, shift.repeat_until or last_day)
        last_k = (last_date - shift.start_date).days // step
        indices = range(first_k, last_k + 1)
    found = []
    for k in indices:
        day = shift.start_date + timedelta(days=k * (step or 0))
        starts_at, ends_at = _local_instant(day, shift, zone)
        if starts_at < end and ends_at > start:
            found.append(
                Occurrence(
                    tier=shift.tier,
                    user_id=shift.user_id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    is_override=False,
                    source_id=shift.pk,
                )
            )
    return found


def _override_occurrence(override: RotaOverride) -> Occurrence:
    return Occurrence(
        tier=override.tier,
        user_id=override.user_id,
        starts_at=override.starts_at,
        ends_at=override.ends_at,
        is_override=True,
        source_id=override.pk,
    )


def _resolve(
    occurrences: Sequence[Occurrence], *, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, Occurrence | None]]:
    """Split ``[start, end)`` of one tier into stretches, each with the winning occurrence.

    A sweep over the start and end instants with a heap of running occurrences ordered by
    precedence; expired ones are dropped when they surface at the top.
    """
    instants = {start, end}
    for occ in occurrences:
        for instant in (occ.starts_at, occ.ends_at):
            if start < instant < end:
                instants.add(instant)
    pending = sorted(occurrences, key=lambda o: o.starts_at)
    running: list[tuple[tuple[int, float, int], int, Occurrence]] = []
    stretches: list[tuple[datetime, datetime, Occurrence | None]] = []
    index = 0
    ordered = sorted(instants)
    for left, right in itertools.pairwise(ordered):
        while index < len(pending) and pending[index].starts_at <= left:
            occ = pending[index]
            # heapq is a min-heap: negate the precedence by wrapping it in a sortable inverse.
            heapq.heappush(running, (_inverse(occ.precedence), index, occ))
            index += 1
        while running and running[0][2].ends_at <= left:
            heapq.heappop(running)
        winner = running[0][2] if running else None
        if stretches and _same_holder(stretches[-1][2], winner):
            stretches[-1] = (stretches[-1][0], right, stretches[-1][2])
        else:
            stretches.append((left, right, winner))
    return stretches


def _inverse(precedence: tuple[bool, datetime, int]) -> tuple[int, float, int]:
    is_override, starts_at, source_id = precedence
    return (-int(is_override), -starts_at.timestamp(), -source_id)


def _user_id(occ: Occurrence | None) -> int | None:
    return occ.user_id if occ is not None else None


def _same_holder(a: Occurrence | None, b: Occurrence | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.user_id == b.user_id and a.is_override == b.is_override


@dataclass
class _RotaData:
    """A rota's shifts and overrides, loaded once, with the users they name."""

    rota: Rota
    shifts: list[Shift]
    overrides: list[RotaOverride]

    def users(self) -> dict[int, User]:
        found = {shift.user_id: shift.user for shift in self.shifts}
        found.update((override.user_id, override.user) for override in self.overrides)
        return found

    def timeline(
        self, *, start: datetime, end: datetime
    ) -> dict[str, list[tuple[datetime, datetime, Occurrence | None]]]:
        zone = self.rota.agency.city.zone
        per_tier: dict[str, list[Occurrence]] = defaultdict(list)
        for shift in self.shifts:
            for occ in shift_occurrences(shift, zone=zone, start=start, end=end):
                per_tier[occ.tier].append(occ)
        for override in self.overrides:
            if override.starts_at < end and override.ends_at > start:
                per_tier[override.tier].append(_override_occurrence(override))
        return {tier: _resolve(per_tier[tier], start=start, end=end) for tier in TIERS}


def _load(rotas: Sequence[Rota], *, start: datetime, end: datetime) -> dict[int, _RotaData]:
    """Shifts and overrides of ``rotas`` that may touch ``[start, end)``: two queries in all."""
    data = {rota.pk: _RotaData(rota=rota, shifts=[], overrides=[]) for rota in rotas}
    if not data:
        return data
    # A shift may have started up to its (bounded) duration before the window; a one-off that
    # ended before it, or a repeat that stopped before it, cannot matter.
    earliest_start_day = start.date() - timedelta(days=31)
    shifts = (
        # Someone who has since moved to another agency no longer stands on its rotas.
        Shift.objects.filter(
            rota_id__in=data, user__is_active=True, user__agency_id=F("rota__agency_id")
        )
        .filter(start_date__lte=end.date() + timedelta(days=2))
        .filter(
            Q(recurrence=Recurrence.ONCE, start_date__gte=earliest_start_day)
            | (
                ~Q(recurrence=Recurrence.ONCE)
                & (Q(repeat_until__isnull=True) | Q(repeat_until__gte=earliest_start_day))
            )
        )
        .select_related("user")
        .order_by("id")
    )
    for shift in shifts:
        data[shift.rota_id].shifts.append(shift)
    overrides = (
        RotaOverride.objects.filter(
            rota_id__in=data,
            user__is_active=True,
            user__agency_id=F("rota__agency_id"),
            starts_at__lt=end,
            ends_at__gt=start,
        )
        .select_related("user")
        .order_by("id")
    )
    for override in overrides:
        data[override.rota_id].overrides.append(override)
    return data


def _assignment(
    stretches: list[tuple[datetime, datetime, Occurrence | None]],
    *,
    at: datetime,
    start: datetime,
    end: datetime,
    users: dict[int, User],
    tier: str,
) -> tuple[Assignment | None, bool]:
    """The assignment holding ``at``, and whether its end was cut off by the window."""
    for left, right, occ in stretches:
        if left <= at < right:
            if occ is None:
                return None, right >= end
            return (
                Assignment(
                    tier=tier,
                    user=users[occ.user_id],
                    since=None if left <= start else left,
                    until=None if right >= end else right,
                    is_override=occ.is_override,
                ),
                right >= end,
            )
    return None, False


def _on_call_from(data: _RotaData, at: datetime) -> OnCall:
    users = data.users()
    found: dict[str, Assignment | None] = {}
    for horizon in HORIZONS:
        start, end = at - LOOKBACK, at + horizon
        timeline = data.timeline(start=start, end=end)
        cut = False
        for tier in TIERS:
            found[tier], tier_cut = _assignment(
                timeline[tier], at=at, start=start, end=end, users=users, tier=tier
            )
            cut = cut or (tier_cut and found[tier] is not None)
        if not cut:
            break
    return OnCall(
        rota=data.rota, at=at, primary=found[Tier.PRIMARY], secondary=found[Tier.SECONDARY]
    )


def _rota_with_city(rota: Rota) -> Rota:
    # The rota's city time zone is needed to expand shifts; read it once, not per shift.
    if not Rota.agency.is_cached(rota) or not Agency.city.is_cached(rota.agency):
        return Rota.objects.select_related("agency__city").get(pk=rota.pk)
    return rota


def on_call(*, rota: Rota, at: datetime) -> OnCall:
    """Who is the primary and the secondary duty officer of ``rota`` at the instant ``at``.

    Each answer says since and until when the person holds the tier without a break (None when
    that lies beyond the look-back of 35 days or the look-ahead of 400 days) and whether cover
    (an override) puts them there. Raises ValueError for a naive ``at``.
    """
    at = _aware(at, "at")
    rota = _rota_with_city(rota)
    data = _load([rota], start=at - LOOKBACK, end=at + HORIZONS[-1])[rota.pk]
    return _on_call_from(data, at)


def _handovers(data: _RotaData, *, after: datetime, within: timedelta) -> list[Handover]:
    start, end = after - LOOKBACK, after + within
    users = data.users()
    timeline = data.timeline(start=start, end=end)
    handovers = []
    for tier in TIERS:
        # A person whose cover runs straight into their own shift (or back) hands over to
        # nobody: only a change of person is a hand-over.
        changes = [
            stretch
            for index, stretch in enumerate(timeline[tier])
            if index == 0 or _user_id(stretch[2]) != _user_id(timeline[tier][index - 1][2])
        ]
        for (_left, _right, before), (left, _r, occ) in itertools.pairwise(changes):
            if left <= after:
                continue
            handovers.append(
                Handover(
                    at=left,
                    tier=tier,
                    user=users[occ.user_id] if occ else None,
                    previous_user=users[before.user_id] if before else None,
                    is_override=bool(occ and occ.is_override),
                )
            )
    handovers.sort(key=lambda h: (h.at, TIERS.index(h.tier)))
    return handovers


def on_call_next(
    *, rota: Rota, after: datetime, limit: int = 10, within: timedelta = timedelta(days=60)
) -> list[Handover]:
    """The next hand-overs of ``rota`` strictly after ``after``, soonest first (primary before
    secondary at the same instant), at most ``limit`` of them and no further than ``within``.

    A hand-over to nobody (a gap in the rota) is listed too, with ``user`` None. Only a change
    of person counts: someone whose cover runs straight into their own shift hands over nothing.
    """
    after = _aware(after, "after")
    rota = _rota_with_city(rota)
    data = _load([rota], start=after - LOOKBACK, end=after + within)[rota.pk]
    return _handovers(data, after=after, within=within)[:limit]


def on_call_overview(
    *, rotas: Sequence[Rota], at: datetime, next_limit: int = 2
) -> list[tuple[OnCall, list[Handover]]]:
    """Who is on call now and the next hand-overs, for many rotas at once (two queries in all):
    what a "who is on call" page shows. Rotas need their agency and city selected."""
    at = _aware(at, "at")
    loaded = _load(rotas, start=at - LOOKBACK, end=at + HORIZONS[-1])
    return [
        (
            _on_call_from(loaded[rota.pk], at),
            _handovers(loaded[rota.pk], after=at, within=timedelta(days=60))[:next_limit],
        )
        for rota in rotas
    ]


def rota_timeline(*, rota: Rota, start: datetime, end: datetime) -> list[Segment]:
    """The resolved rota over ``[start, end)``: who holds each tier, stretch by stretch, in time
    order (primary before secondary at the same instant). Gaps appear with ``user`` None."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return []
    rota = _rota_with_city(rota)
    data = _load([rota], start=start, end=end)[rota.pk]
    users = data.users()
    segments = []
    for tier, stretches in data.timeline(start=start, end=end).items():
        for left, right, occ in stretches:
            segments.append(
                Segment(
                    tier=tier,
                    user=users[occ.user_id] if occ else None,
                    starts_at=left,
                    ends_at=right,
                    is_override=bool(occ and occ.is_override),
                )
            )
    segments.sort(key=lambda s: (s.starts_at, TIERS.index(s.tier)))
    return segments


def duty_officers(*, agency: Agency, at: datetime) -> list[DutyOfficer]:
    """The duty officers of ``agency`` at ``at``: primary then secondary of each active rota,
    rotas in name order. Three queries (rotas, shifts, overrides), however many rotas."""
    return duty_officers_by_agency(agencies=[agency], at=at)[agency.pk]


def duty_officers_by_agency(
    *, agencies: Iterable[Agency], at: datetime
) -> dict[int, list[DutyOfficer]]:
    """``duty_officers`` for many agencies at once (an activation to several agencies), keyed
    by agency id; an agency without an active rota maps to an empty list. Three queries."""
    at = _aware(at, "at")
    officers: dict[int, list[DutyOfficer]] = {agency.pk: [] for agency in agencies}
    rotas = list(
        Rota.objects.filter(agency_id__in=officers, is_active=True)
        .select_related("agency__city")
        .order_by("name", "id")
    )
    loaded = _load(rotas, start=at - LOOKBACK, end=at + HORIZONS[-1])
    for rota in rotas:
        answer = _on_call_from(loaded[rota.pk], at)
        officers[rota.agency_id].extend(
            DutyOfficer(
                rota=rota,
                tier=assignment.tier,
                user=assignment.user,
                until=assignment.until,
                is_override=assignment.is_override,
            )
            for assignment in answer.assignments
        )
    return officers


def escalation_step_recipients(*, step: EscalationStep, at: datetime) -> list[User]:
    """The people an escalation step notifies at ``at``, each once, in a stable order.

    Primary/secondary: the holders of that tier of the policy's rota (or, for a policy without
    one, of every active rota of its agency). Group: the group's active members who are still
    of its agency.
    """
    at = _aware(at, "at")
    policy = step.policy
    if step.target == StepTarget.GROUP:
        assert step.group is not None
        members = step.group.members.filter(is_active=True, agency_id=step.group.agency_id)
        return list(members.order_by("username", "id"))
    if policy.rota is not None:
        holders = on_call(rota=policy.rota, at=at).assignments
        users = [a.user for a in holders if a.tier == step.target]
    else:
        officers = duty_officers(agency=policy.agency, at=at)
        users = [o.user for o in officers if o.tier == step.target]
    recipients: dict[int, User] = {}
    for user in users:
        recipients.setdefault(user.pk, user)
    return list(recipients.values())


def escalation_policy_default(*, agency: Agency) -> EscalationPolicy | None:
    """The policy an activation of ``agency`` escalates along, with its steps in order, or None
    when the agency has not chosen one."""
    return (
        EscalationPolicy.objects.filter(agency=agency, is_default=True)
        .select_related("rota__agency__city", "agency")
        .prefetch_related("steps__group")
        .first()
    )


@dataclass(frozen=True)
class PlannedEntry:
    """A shift occurrence or an override as planned, before precedence is applied: what a
    calendar shows."""

    occurrence: Occurrence
    user: User
    shift: Shift | None
    override: RotaOverride | None


def planned_entries(*, rota: Rota, start: datetime, end: datetime) -> list[PlannedEntry]:
    """Every shift occurrence and override of ``rota`` overlapping ``[start, end)``, by start."""
    start, end = _aware(start, "start"), _aware(end, "end")
    rota = _rota_with_city(rota)
    data = _load([rota], start=start, end=end)[rota.pk]
    zone = rota.agency.city.zone
    entries = [
        PlannedEntry(occurrence=occ, user=shift.user, shift=shift, override=None)
        for shift in data.shifts
        for occ in shift_occurrences(shift, zone=zone, start=start, end=end)
    ]
    entries.extend(
        PlannedEntry(
            occurrence=_override_occurrence(override),
            user=override.user,
            shift=None,
            override=override,
        )
        for override in data.overrides
    )
    entries.sort(
        key=lambda e: (
            e.occurrence.starts_at,
            TIERS.index(e.occurrence.tier),
            e.occurrence.source_id,
        )
    )
    return entries
