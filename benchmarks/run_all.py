"""Run every benchmark program and write docs/performance.md.

    python -m benchmarks.run_all              # the full run (make bench)
    python -m benchmarks.run_all --quick      # tiny sizes, a check that everything still runs
    python -m benchmarks.run_all --output -   # print the table instead of writing the file

Needs ``DATABASE_URL`` and ``REDIS_URL`` (``benchmarks/run.sh`` provisions both). Each program
runs as its own process with a time limit; a program that fails or overruns is reported as such in
the table and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import common

FULL: list[tuple[str, list[str], int]] = [
    ("raw", ["fanout", "--server", "raw", "--clients", "100,500,1000,2000"], 180),
    ("platform", ["fanout", "--server", "platform", "--clients", "100,500,1000,2000"], 240),
    *[
        (
            f"stock-{asgi}-{layer}",
            [
                "fanout",
                "--server",
                "stock",
                "--asgi",
                asgi,
                "--layer",
                layer,
                "--clients",
                "100,500,1000",
            ],
            180,
        )
        for asgi in ("daphne", "uvicorn")
        for layer in ("core", "pubsub")
    ],
    ("activation", ["activation", "--recipients", "500"], 180),
    ("escalation", ["escalation", "--steps", "100", "--killed-steps", "20"], 150),
    ("api", ["api_throughput", "--duration", "10"], 120),
    ("verify", ["verify", "--entries", "100000", "--repeat", "3"], 180),
]

QUICK: list[tuple[str, list[str], int]] = [
    ("raw", ["fanout", "--server", "raw", "--clients", "10", "--messages", "3"], 60),
    ("platform", ["fanout", "--server", "platform", "--clients", "10", "--messages", "3"], 90),
    (
        "stock-uvicorn-pubsub",
        [
            "fanout",
            "--server",
            "stock",
            "--asgi",
            "uvicorn",
            "--layer",
            "pubsub",
            "--clients",
            "10",
            "--messages",
            "3",
        ],
        60,
    ),
    ("activation", ["activation", "--recipients", "20", "--kill-after", "5"], 120),
    ("escalation", ["escalation", "--steps", "5", "--killed-steps", "2", "--lead", "2"], 120),
    ("api", ["api_throughput", "--duration", "1", "--entries", "5", "--connections", "5"], 90),
    ("verify", ["verify", "--entries", "1000", "--repeat", "1"], 60),
]


def run_program(name: str, args: list[str], limit: int) -> dict[str, Any]:
    """Run ``benchmarks.<args[0]>``; its last JSON line, or what went wrong."""
    command = [sys.executable, "-m", f"benchmarks.{args[0]}", *args[1:]]
    print(f"\n==> {name}: {' '.join(command[2:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603
        command,
        cwd=common.ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = started + limit
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
            if time.monotonic() > deadline:
                break
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        common.stop(process)
    elapsed = round(time.monotonic() - started, 1)
    for line in reversed(lines):
        if line.startswith("{"):
            result = json.loads(line)
            result["elapsed_s"] = elapsed
            return result
    return {"error": f"exited with {process.returncode} after {elapsed} s, no result line"}


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_output(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603
            list(args), capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    redis_server = shutil.which("redis-server")
    return {
        "CPU": cpu,
        "cores": str(common.cpus()),
        "RAM": ram,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Django": version("Django"),
        "uvicorn": version("uvicorn"),
        "websockets": version("websockets"),
        "channels": version("channels"),
        "channels-redis": version("channels-redis"),
        "daphne": version("daphne"),
        "celery": version("celery"),
        "Redis": command_output(redis_server, "--version").split(" ")[2]
        if redis_server
        else "unknown",
        "load generator": (command_output("wrk", "--version").splitlines() or ["wrk"])[0][:40]
        if shutil.which("wrk")
        else "python threads (wrk not installed)",
    }


# --- The document ---------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mib(kib: Any) -> str:
    return "-" if not kib else f"{kib / 1024:.0f}"


def fanout_rows(results: dict[str, dict]) -> tuple[list[str], dict[int, float]]:
    raw_p99 = {
        row["clients"]: row["latency_ms"]["p99"]
        for row in results.get("raw", {}).get("rows", [])
        if row["latency_ms"]["p99"] is not None
    }
    lines = [
        "| server | clients | failed connects | p50 ms | p95 ms | p99 ms | max ms | lost | "
        "p99 / raw p99 | server RSS MiB (peak) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, result in results.items():
        if result.get("benchmark") != "fanout":
            if key in ("raw", "platform") or key.startswith("stock"):
                lines.append(f"| {key} | - | - | - | - | - | - | - | - | {result.get('error')} |")
            continue
        for row in result["rows"]:
            lat = row["latency_ms"]
            base = raw_p99.get(row["clients"])
            ratio = f"{lat['p99'] / base:.2f}x" if base and lat["p99"] is not None else "-"
            lines.append(
                f"| {result['label']} | {row['clients']} | {row['failed_connects']} | "
                f"{fmt(lat['p50'])} | {fmt(lat['p95'])} | {fmt(lat['p99'])} | {fmt(lat['max'])} | "
                f"{row['lost']} | {ratio} | {mib(row['server_rss_kib'])} "
                f"({mib(row['server_hwm_kib'])}) |"
            )
    return lines, raw_p99


def row_at(result: dict, clients: int) -> dict | None:
    for row in result.get("rows", []):
        if row["clients"] == clients:
            return row
    return None


def targets(results: dict[str, dict], raw_p99: dict[int, float]) -> list[str]:
    checks: list[tuple[str, str, bool | None]] = []
    platform_ = results.get("platform", {})
    for n in (1000, 2000):
        row = row_at(platform_, n)
        if row is None or n not in raw_p99:
            checks.append((f"fan-out p99 at {n} ≤ 1.25x raw, 0 lost", "not measured", None))
            continue
        if row["latency_ms"]["p99"] is None:
            checks.append(
                (
                    f"fan-out p99 at {n} ≤ 1.25x raw, 0 lost",
                    f"no event received ({row['failed_connects']} failed connects)",
                    False,
                )
            )
            continue
        ratio = row["latency_ms"]["p99"] / raw_p99[n]
        checks.append(
            (
                f"fan-out p99 at {n} ≤ 1.25x raw, 0 lost",
                f"{ratio:.2f}x, {row['lost']} lost",
                ratio <= 1.25 and row["lost"] == 0,
            )
        )
    row = row_at(platform_, 1000)
    if row is not None:
        checks.append(
            (
                "0 failed connects in a storm of 1,000",
                f"{row['failed_connects']} failed",
                row["failed_connects"] == 0,
            )
        )
        rss = row.get("server_hwm_kib") or 0
        checks.append(
            (
                "web process holding 1,000 clients ≤ 150 MB resident",
                f"{rss / 1024:.0f} MiB peak",
                rss / 1024 <= 150,
            )
        )
    checks.append(
        (
            "a client that stops reading never delays the others",
            "not timed here: tests/test_live_server.py checks it",
            None,
        )
    )
    activation = results.get("activation", {})
    if "normal" in activation:
        normal = activation["normal"]
        checks.append(
            (
                "500-recipient activation fully accepted ≤ 2 s, first ≤ 0.2 s",
                f"last {fmt(normal['last_s'], 2)} s, first {fmt(normal['first_s'], 2)} s",
                (normal["last_s"] or 1e9) <= 2 and (normal["first_s"] or 1e9) <= 0.2,
            )
        )
    if "killed" in activation:
        killed = activation["killed"]
        checks.append(
            (
                "activation with a killed worker: 0 lost",
                f"{killed['lost']} lost, {killed['duplicates']} duplicates",
                killed["lost"] == 0,
            )
        )
    escalation = results.get("escalation", {})
    if "normal" in escalation:
        normal = escalation["normal"]
        checks.append(
            (
                "escalation: 0 early, p99 ≤ 250 ms late",
                f"{normal['early']} early, p99 {fmt(normal['lateness_ms']['p99'])} ms",
                normal["early"] == 0 and (normal["lateness_ms"]["p99"] or 1e9) <= 250,
            )
        )
    if "killed" in escalation:
        killed = escalation["killed"]
        checks.append(
            (
                "escalation after a killed worker ≤ 10 s late",
                f"max {fmt((killed['lateness_ms']['max'] or 0) / 1000, 2)} s, "
                f"{killed['not_taken']} not taken",
                (killed["lateness_ms"]["max"] or 1e9) <= 10_000 and killed["not_taken"] == 0,
            )
        )
    api = results.get("api", {})
    if api.get("ratio") is not None:
        checks.append(("API page/bare req/s ≥ 0.4", f"{api['ratio']:.3f}", api["ratio"] >= 0.4))
    verify = results.get("verify", {})
    if "best_seconds" in verify:
        checks.append(
            (
                f"verify {verify['entries']:,} entries ≤ 2 s",
                f"{verify['best_seconds']:.2f} s (intact: {verify['intact']})",
                verify["best_seconds"] <= 2 and verify["intact"],
            )
        )
    lines = ["| target | measured | met |", "|---|---|---|"]
    for name, measured, met in checks:
        mark = "-" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {measured} | {mark} |")
    return lines


def document(
    results: dict[str, dict], info: dict[str, str], started: datetime, quick: bool, note: str = ""
) -> str:
    fanout, raw_p99 = fanout_rows(results)
    activation = results.get("activation", {})
    escalation = results.get("escalation", {})
    api = results.get("api", {})
    verify = results.get("verify", {})
    out = [
        "# Performance",
        "",
        "Generated by `make bench` (`benchmarks/run_all.py`); do not edit by hand.",
        "",
        f"Run: {started:%Y-%m-%d %H:%M} UTC{' (quick sizes: not a measurement)' if quick else ''}.",
        "",
        *([f"> {note}", ""] if note else []),
        "Absolute times drift on a shared machine; the targets compare the platform with "
        "baselines measured beside it in the same run (the raw `websockets` server for fan-out, "
        "a bare Django view for the API).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        "## Targets",
        "",
        *targets(results, raw_p99),
        "",
        "## 1. Live fan-out",
        "",
        "One client process (the `websockets` library) holds every connection; they all connect at "
        "once (the storm), then 20 events are sent 200 ms apart. Latency of an event at a client: "
        "the instant the client has read the frame minus the event's `created_at`. For the "
        "platform, `created_at` is set when the event is appended inside the transaction that "
        "records the decision (through `POST /api/v1/incidents/<id>/decisions/` on a second "
        "uvicorn process), so the figure spans commit, publish, fan-out and read. For the raw and "
        "stock servers it is the instant before the trigger's `PUBLISH` / `group_send`. Server "
        "process pinned to core 0; clients, trigger, API process, Redis and PostgreSQL share "
        "core 1. The stock Channels configurations are kept to 1,000 clients: at 2,000 they "
        "collapse (seconds of latency, connect failures with the core layer).",
        "",
        *fanout,
        "",
        "The production default follows from this table: uvicorn (the `Procfile`, `Dockerfile` "
        "and `docker-compose.yml` web command) with the process-local hub over Redis pub/sub "
        "(`comms/fanout.py`; `CHANNEL_LAYERS` stays empty). Every stock Channels configuration "
        "hands each message to each consumer one by one, which the p99 column shows growing "
        "with the number of clients; daphne adds its own send path on top, and "
        "`RedisChannelLayer` loses connects in a storm (its Redis connection pool runs out).",
        "",
        "## 2. Activation dispatch",
        "",
        "One activation to 500 recipients by e-mail; prefork Celery delivery worker `-c 2` (one "
        "SMTP connection per process, board updates coalesced) beside the escalation worker; "
        "SMTP sink (aiosmtpd) in the benchmark process. Times from the activation's `created_at`.",
        "",
    ]
    if "normal" in activation:
        normal, killed = activation["normal"], activation.get("killed", {})
        memory = activation.get("worker_memory", {})
        out += [
            "| run | first accepted s | last accepted s | reached | lost | duplicates |",
            "|---|---|---|---|---|---|",
            f"| normal | {fmt(normal['first_s'], 3)} | {fmt(normal['last_s'], 3)} | "
            f"{normal['reached']} | {activation['recipients'] - normal['reached']} | "
            f"{normal['messages'] - normal['reached']} |",
        ]
        if killed:
            out.append(
                f"| worker killed after {killed['accepted_before_kill']} accepted | - | "
                f"{fmt(killed['last_s'], 3)} | - | {killed['lost']} | {killed['duplicates']} |"
            )
        out += [
            "",
            f"Worker peak resident memory: main process {mib(memory.get('main_hwm_kib'))} MiB, "
            f"largest pool process {mib(memory.get('largest_child_hwm_kib'))} MiB.",
            "",
        ]
    else:
        out += [f"Not measured: {activation.get('error')}", ""]
    out += [
        "## 3. Escalation precision",
        "",
        "Second escalation steps of 100 agencies made due 100 ms apart and scheduled as the "
        "platform schedules them (`apply_async(eta=...)`), real workers (escalation on its own "
        "queue and worker `-c 2`, deliveries on another) and beat (sweep every 2 s). Taken = the "
        "`created_at` of the notification the step creates.",
        "",
    ]
    if "normal" in escalation:
        out += [
            "| run | steps | early | min ms | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, name in (("normal", "normal"), ("killed", "worker killed, sweep")):
            part = escalation.get(key)
            if part:
                lat = part["lateness_ms"]
                steps = part.get("steps", escalation["steps"])
                out.append(
                    f"| {name} | {steps} | {part['early']} | {fmt(lat['min'])} | "
                    f"{fmt(lat['p50'])} | {fmt(lat['p99'])} | {fmt(lat['max'])} |"
                )
        out.append("")
    else:
        out += [f"Not measured: {escalation.get('error')}", ""]
    out += [
        "## 4. API throughput",
        "",
        "Decision-log page of 50 entries (token-authenticated) against a bare Django JSON view "
        "(`benchmarks/bench_urls.py`, only in the benchmark settings), same server process "
        f"configuration ({api.get('server', '-')}, pinned to core 0), load generator "
        f"{api.get('tool', '-')} on core 1, {api.get('connections', '-')} connections, "
        f"{api.get('duration_s', '-')} s each.",
        "",
    ]
    if "page" in api:
        out += [
            "| endpoint | req/s | p99 ms | non-2xx |",
            "|---|---|---|---|",
            f"| bare JSON view | {fmt(api['bare']['rps'])} | {fmt(api['bare']['p99_ms'])} | "
            f"{api['bare']['non_2xx']} |",
            f"| decision-log page | {fmt(api['page']['rps'])} | {fmt(api['page']['p99_ms'])} | "
            f"{api['page']['non_2xx']} |",
            "",
            f"Ratio page / bare: {api['ratio']:.3f}.",
            "",
            "After the first read, the page is a cache hit: two queries (the token with its user "
            "and roles, the incident as visible to the reader, which gives its last event "
            "number), one cache read of the rendered page, on a database connection reused from "
            "an earlier request of the same server process (`ctpn/db/base.py`). The bare view "
            "makes no query.",
            "",
        ]
    else:
        out += [f"Not measured: {api.get('error')}", ""]
    out += ["## 5. Decision chain verification", ""]
    if "best_seconds" in verify:
        out += [
            f"`decision_log_verify` over {verify['entries']:,} entries (built with chained hashes "
            f"in {verify['build_seconds']} s): {', '.join(f'{t} s' for t in verify['seconds'])} "
            f"(best {verify['best_seconds']} s); intact: {verify['intact']}.",
            "",
        ]
    else:
        out += [f"Not measured: {verify.get('error')}", ""]
    out += [
        "## 6. Memory",
        "",
        "Web process with 1,000 clients: the `server RSS` column of the fan-out table (VmRSS "
        "while connected, VmHWM in brackets). Worker during the 500-recipient activation: "
        "section 2.",
        "",
        "## How to reproduce",
        "",
        "```",
        "bash scripts/venv.sh",
        "make bench        # about 10 minutes; writes this file",
        "```",
        "",
        "`make bench` runs `benchmarks/run.sh`: it installs the `bench` extra (channels-redis, "
        "daphne) into `.venv` and `wrk` (apt, when root) if missing, raises `ulimit -n`, "
        "provisions a throwaway PostgreSQL and Redis (`scripts/provision.sh`), runs "
        "`python -m benchmarks.run_all`, and stops everything it started, even on failure. Each "
        "program can be run on its own (`python -m benchmarks.fanout --help`, ...) with "
        "`DATABASE_URL` and `REDIS_URL` set. Everything listens on 127.0.0.1 and every program "
        "stops by itself.",
        "",
        "## Raw results",
        "",
        "```json",
        json.dumps(results, indent=1, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(common.ROOT / "docs" / "performance.md"))
    parser.add_argument("--only", default="", help="comma-separated names to run")
    parser.add_argument("--json", default="", help="also write every result to this file")
    parser.add_argument("--note", default="", help="a remark printed under the date")
    parser.add_argument(
        "--rerender", default="", help="write the document again from this one's raw results"
    )
    parser.add_argument(
        "--merge", default="", help="with --rerender: results (--json file) replacing those"
    )
    args = parser.parse_args(argv)
    if args.rerender:
        earlier = Path(args.rerender).read_text()
        block = earlier.split("```json\n", 1)[1].split("\n```", 1)[0]
        when = re.search(r"Run: (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", earlier)
        started = datetime.strptime(when.group(1), "%Y-%m-%d %H:%M") if when else datetime.now()
        results = json.loads(block)
        if args.merge:
            results.update(json.loads(Path(args.merge).read_text()))
        text = document(results, machine(), started.replace(tzinfo=UTC), False, args.note)
        Path(args.output).write_text(text)
        return
    common.raise_open_files()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            raise SystemExit(f"{name} must be set (benchmarks/run.sh provisions both)")
    started = datetime.now(UTC)
    plan = QUICK if args.quick else FULL
    only = {name for name in args.only.split(",") if name}
    results: dict[str, dict] = {}
    for name, program, limit in plan:
        if only and name not in only:
            continue
        results[name] = run_program(name, program, limit)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True))
    text = document(results, machine(), started, args.quick, args.note)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"\n==> wrote {args.output}")


if __name__ == "__main__":
    main()
