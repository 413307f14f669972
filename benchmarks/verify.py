"""Decision chain verification: seconds for ``decision_log_verify`` over N entries.

    python -m benchmarks.verify --entries 100000

On a shared machine the wall-clock seconds follow the load; the CPU seconds of this process
(``cpu_seconds``) move much less, so compare those between runs made at different times.

The log is built fast and for real: entries are made in memory, each hashed by the model's own
``compute_hash`` (the single definition of the canonical content) and chained to the one before,
then inserted in bulk. The database's append-only triggers only refuse UPDATE and DELETE, so they
stay on. The verification is then timed ``--repeat`` times and must report the chain intact.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from . import common


def build_log(incident_id: int, author_id: int, agency_id: int, entries: int) -> float:
    from coordination.models import GENESIS_HASH, Decision

    started = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    previous = GENESIS_HASH
    batch: list[Decision] = []
    for sequence in range(1, entries + 1):
        at = base + timedelta(seconds=sequence)
        entry = Decision(
            incident_id=incident_id,
            sequence=sequence,
            information=f"Report {sequence}: an armed attacker at the central station.",
            threat_assessment="Threat is ongoing; risk to public high.",
            working_strategy="Save life, contain the threat, protect the public.",
            powers_policies="Civil Contingencies Act; joint operating principles.",
            options=[
                {"option": "Evacuate the station", "chosen": True, "reason": "Removes the public."}
            ],
            decision="Evacuate the central station and close it to the public.",
            rationale="Protects life while the threat is located.",
            decided_at=at,
            recorded_at=at,
            author_id=author_id,
            author_agency_id=agency_id,
            prev_hash=previous,
        )
        entry.entry_hash = entry.compute_hash([])
        previous = entry.entry_hash
        batch.append(entry)
        if len(batch) == 5000:
            Decision.objects.bulk_create(batch)
            batch = []
    if batch:
        Decision.objects.bulk_create(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    common.pin_self(common.SERVER_CPU)
    common.setup_django()
    from coordination.services import decision_log_verify

    seed = common.seed_incident("verify")
    build = build_log(seed.incident_id, seed.commander_id, seed.police_id, args.entries)
    print(f"built {args.entries} chained entries in {build:.2f} s", flush=True)
    times = []
    cpu = []
    report = None
    for _ in range(args.repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        report = decision_log_verify(incident_id=seed.incident_id)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        print(
            f"verified {report.entries} entries in {times[-1]:.3f} s (CPU {cpu[-1]:.3f} s), "
            f"intact={report.intact}"
        )
    assert report is not None
    common.emit(
        {
            "benchmark": "verify",
            "entries": args.entries,
            "intact": report.intact,
            "verified_entries": report.entries,
            "build_seconds": round(build, 3),
            "seconds": [round(t, 3) for t in times],
            "best_seconds": round(min(times), 3),
            "median_seconds": round(sorted(times)[len(times) // 2], 3),
            "cpu_seconds": [round(t, 3) for t in cpu],
        }
    )


if __name__ == "__main__":
    main()
