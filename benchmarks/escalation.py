"""Escalation precision: escalation steps due at known instants, taken by a real prefork Celery
worker for escalation (``-c 2``, its own queue, beside a delivery worker ``-c 2``) and beat (the
sweep), with the platform's scheduling (``apply_async(eta=...)``
and the sweep every ``ALERT_SWEEP_SECONDS``).

    python -m benchmarks.escalation --steps 100

One activation calls ``--steps`` agencies; each agency's policy alerts one officer, then (second
step) another. After the first steps, each target's second step is made due at a known instant
(``--lead`` seconds ahead, ``--spacing`` apart) and scheduled as the platform schedules it. The
instant a step is taken is the ``created_at`` of the notification it creates (the worker's clock
when it ran the step). Lateness = taken - due: min/p50/p99/max and the count taken early (a step
is never taken before it is due: must be 0).

Second part: ``--killed-steps`` more steps become due while the worker that holds their scheduled
tasks is killed (SIGKILL); a new worker is started and beat's sweep takes them: lateness again.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from . import alerting, common


def seed_agencies(count: int):
    from comms.models import (
        ContactMethod,
        EscalationPolicy,
        EscalationStep,
        ResponderGroup,
    )
    from coordination.models import Agency, AgencyType, City, User

    seed = common.seed_incident("escalation")
    city = City.objects.get(pk=seed.city_id)
    agencies = Agency.objects.bulk_create(
        Agency(city=city, name=f"Agency {n}", short_name=f"A{n}", type=AgencyType.OTHER)
        for n in range(count)
    )
    for agency in agencies:
        first, second = User.objects.bulk_create(
            User(username=f"duty-{agency.pk}-{tier}", agency=agency, password="!")  # noqa: S106  (unusable)
            for tier in ("first", "second")
        )
        ContactMethod.objects.bulk_create(
            ContactMethod(user=user, kind="email", address=f"{user.username}@example.org")
            for user in (first, second)
        )
        policy = EscalationPolicy.objects.create(agency=agency, name="Default", is_default=True)
        for position, (user, name) in enumerate(((first, "First"), (second, "Second")), 1):
            group = ResponderGroup.objects.create(agency=agency, name=name)
            group.members.set([user])
            EscalationStep.objects.create(
                policy=policy, position=position, target="group", group=group, wait_minutes=30
            )
    return User.objects.get(pk=seed.commander_id), agencies


def schedule(targets, start, spacing: float) -> dict[int, float]:
    """Make each target's next step due at ``start + i * spacing`` and schedule it as the
    platform does (``_escalate_on_commit``); returns target id -> due instant (epoch seconds)."""
    from django.db import transaction

    from comms.models import ActivationTarget
    from comms.services import _escalate_on_commit

    due: dict[int, float] = {}
    with transaction.atomic():
        for i, target in enumerate(targets):
            at = start + timedelta(seconds=i * spacing)
            ActivationTarget.objects.filter(pk=target.pk).update(next_step_at=at)
            target.refresh_from_db()
            _escalate_on_commit(target)
            due[target.pk] = at.timestamp()
    return due


def lateness(due: dict[int, float]) -> tuple[list[float], int]:
    """(lateness of each step taken, count not taken) for the second steps of ``due``'s targets."""
    from comms.models import Notification

    taken = dict(
        Notification.objects.filter(target_id__in=list(due), step="group Second", channel="email")
        .order_by("created_at")
        .values_list("target_id", "created_at")
    )
    late = [taken[pk].timestamp() - at for pk, at in due.items() if pk in taken]
    return late, len(due) - len(late)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--killed-steps", type=int, default=20)
    parser.add_argument("--lead", type=float, default=3.0)
    parser.add_argument("--spacing", type=float, default=0.1)
    args = parser.parse_args(argv)
    common.setup_django()
    alerting.use_broker()
    from django.utils import timezone

    from comms.models import ActivationTarget
    from comms.services import activation_send

    commander, agencies = seed_agencies(args.steps + args.killed_steps)
    folder = Path(tempfile.mkdtemp(prefix="ctpn-bench-"))
    result: dict = {"benchmark": "escalation", "steps": args.steps}
    with alerting.SmtpSink() as sink:
        env = alerting.alerting_env(
            sink,
            ALERT_LEASE_SECONDS="10",
            ALERT_HTTP_TIMEOUT_SECONDS="5",
        )
        celery = alerting.Celery(env=env, folder=folder)
        try:
            celery.start_worker()  # deliveries
            worker = celery.start_worker(queues=alerting.ESCALATION_QUEUES)
            celery.start_beat()
            activation = activation_send(user=commander, message="Escalate", agencies=agencies)
            targets = list(ActivationTarget.objects.filter(activation=activation).order_by("pk"))
            timed, killed = targets[: args.steps], targets[args.steps :]
            # The first steps' e-mails are sent before the timed steps fall due (the steps
            # have their own queue and worker now, but the machine's two cores do not).
            alerting.wait_for(lambda: len(sink.received()) >= len(targets), 120, 0.1)

            start = timezone.now() + timedelta(seconds=args.lead)
            due = schedule(timed, start, args.spacing)
            last_due = max(due.values())
            alerting.wait_for(lambda: lateness(due)[1] == 0, last_due - time.time() + 30, 0.2)
            late, missing = lateness(due)
            early = sum(1 for value in late if value < 0)
            figures = common.summary_ms(late)
            print(f"{args.steps} steps: lateness ms {figures}, early {early}, not taken {missing}")
            result["normal"] = {"lateness_ms": figures, "early": early, "not_taken": missing}

            if killed:
                start = timezone.now() + timedelta(seconds=args.lead)
                due = schedule(killed, start, args.spacing)
                time.sleep(max(0.0, args.lead - 1.0))
                common.kill(worker)  # it holds every scheduled step in memory
                celery.start_worker(queues=alerting.ESCALATION_QUEUES)
                alerting.wait_for(lambda: lateness(due)[1] == 0, 60, 0.2)
                late, missing = lateness(due)
                early = sum(1 for value in late if value < 0)
                figures = common.summary_ms(late)
                print(
                    f"{len(killed)} steps due while their worker was killed: lateness ms "
                    f"{figures}, early {early}, not taken {missing}"
                )
                result["killed"] = {
                    "steps": len(killed),
                    "lateness_ms": figures,
                    "early": early,
                    "not_taken": missing,
                }
        finally:
            celery.stop_all()
    common.emit(result)


if __name__ == "__main__":
    main()
