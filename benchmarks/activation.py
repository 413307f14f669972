"""Activation dispatch: one activation to R recipients by e-mail, a real prefork Celery worker
(``-c 2``) and a local SMTP sink (aiosmtpd), beside the escalation worker (``-c 2``, its own
queue; the sweep runs there).

    python -m benchmarks.activation --recipients 500

Run 1: time from the activation's ``created_at`` (set in the transaction that queues the
notifications) to the first and to the last recipient's e-mail accepted by the sink (250), and
the worker's peak resident memory (main process and largest pool child, VmHWM).
Run 2: a new activation; the worker is killed (SIGKILL, its pool too) after ``--kill-after``
e-mails were accepted, a new worker and beat (the sweep) are started: recipients never reached
within ``--timeout`` seconds (lost) and e-mails accepted more than once (duplicates; each repeat
carries the same idempotency key).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from . import alerting, common


def seed_crowd(recipients: int):
    from comms.models import ContactMethod, EscalationPolicy, EscalationStep, ResponderGroup
    from coordination.models import Agency, User

    seed = common.seed_incident("activation")
    police = Agency.objects.get(pk=seed.police_id)
    users = User.objects.bulk_create(
        User(username=f"officer-{seed.incident_id}-{n:04d}", agency=police, password="!")  # noqa: S106  (unusable)
        for n in range(recipients)
    )
    ContactMethod.objects.bulk_create(
        ContactMethod(user=user, kind="email", address=f"{user.username}@example.org")
        for user in users
    )
    group = ResponderGroup.objects.create(agency=police, name="Everyone")
    group.members.set(users)
    policy = EscalationPolicy.objects.create(agency=police, name="Default", is_default=True)
    EscalationStep.objects.create(
        policy=policy, position=1, target="group", group=group, wait_minutes=30
    )
    commander = User.objects.get(pk=seed.commander_id)
    return commander, police, {f"{u.username}@example.org" for u in users}


def activation_run(commander, police, sink: alerting.SmtpSink, message: str):
    from comms.services import activation_send

    return activation_send(user=commander, message=message, agencies=[police])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=500)
    parser.add_argument("--kill-after", type=int, default=0, help="default: a fifth")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    kill_after = args.kill_after or max(1, args.recipients // 5)
    common.setup_django()
    alerting.use_broker()
    commander, police, addresses = seed_crowd(args.recipients)
    folder = Path(tempfile.mkdtemp(prefix="ctpn-bench-"))
    result: dict = {"benchmark": "activation", "recipients": args.recipients}
    with alerting.SmtpSink() as sink:
        env = alerting.alerting_env(
            sink,
            ALERT_LEASE_SECONDS="10",
            ALERT_HTTP_TIMEOUT_SECONDS="5",
            ALERT_SWEEP_SECONDS="1",
            ALERT_SWEEP_GRACE_SECONDS="2",
        )
        celery = alerting.Celery(env=env, folder=folder)
        try:
            worker = celery.start_worker()
            celery.start_worker(queues=alerting.ESCALATION_QUEUES)
            activation = activation_run(commander, police, sink, "Stand up the SCG")
            started = activation.created_at.timestamp()
            alerting.wait_for(lambda: len(sink.first_by_address()) >= len(addresses), args.timeout)
            accepted = sorted(sink.first_by_address().values())
            memory = alerting.peak_memory_kib(worker)
            first = accepted[0] - started if accepted else None
            last = accepted[-1] - started if accepted else None
            print(
                f"{args.recipients} recipients: first accepted {first:.3f} s, "
                f"last {last:.3f} s, {len(accepted)} reached; worker {memory}",
                flush=True,
            )
            result["normal"] = {
                "first_s": round(first, 3) if first is not None else None,
                "last_s": round(last, 3) if last is not None else None,
                "reached": len(accepted),
                "messages": len(sink.received()),
            }
            result["worker_memory"] = memory

            # Run 2: a worker killed mid-way.
            with sink.lock:
                sink.messages.clear()
            celery.start_beat()
            activation = activation_run(commander, police, sink, "Second call: stand up the SCG")
            started = activation.created_at.timestamp()
            alerting.wait_for(lambda: len(sink.received()) >= kill_after, args.timeout, 0.002)
            common.kill(worker)
            killed_at = time.time()
            before_kill = len(sink.received())
            celery.start_worker()
            alerting.wait_for(lambda: len(sink.first_by_address()) >= len(addresses), args.timeout)
            time.sleep(1.0)  # anything sent twice arrives now
            received = sink.received()
            reached = sink.first_by_address()
            keys: dict[str, int] = {}
            for message in received:
                keys[message.key] = keys.get(message.key, 0) + 1
            lost = len(addresses - set(reached))
            duplicates = sum(count - 1 for count in keys.values())
            last = max(reached.values()) - started if reached else None
            print(
                f"worker killed after {before_kill} accepted: lost {lost}, duplicates "
                f"{duplicates}, last accepted {last:.3f} s after the activation",
                flush=True,
            )
            result["killed"] = {
                "accepted_before_kill": before_kill,
                "killed_after_s": round(killed_at - started, 3),
                "lost": lost,
                "duplicates": duplicates,
                "last_s": round(last, 3) if last is not None else None,
            }
        finally:
            celery.stop_all()
    common.emit(result)


if __name__ == "__main__":
    main()
