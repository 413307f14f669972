"""API throughput: a decision-log page of 50 entries, authenticated, against a bare Django JSON
endpoint on the same server process configuration.

    python -m benchmarks.api_throughput --entries 60 --duration 10 --connections 50

The server is the platform under uvicorn (``--workers``, the deployed ASGI configuration; pinned to
the server core when 1) with ``benchmarks.bench_settings`` (the production settings plus the bare
endpoint). The load generator is ``wrk`` (``-t1 -c<connections> -d<duration> --latency``) on the
other core; without wrk, a bounded Python client (threads with keep-alive connections) is used and
the result says so. Reported: requests per second, p99 latency, and page/bare ratio of req/s.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import threading
import time

from . import common


def seed_log(entries: int) -> tuple[common.Seed, str]:
    from datetime import timedelta

    from django.utils import timezone

    from coordination.models import User
    from coordination.services import decision_record

    seed = common.seed_incident("api")
    author = User.objects.get(pk=seed.commander_id)
    for n in range(entries):
        body = common.decision_body(n)
        body["decided_at"] = timezone.now() - timedelta(minutes=1)
        decision_record(incident_id=seed.incident_id, author=author, **body)
    return seed, f"/api/v1/incidents/{seed.incident_id}/decisions/?page=1"


def parse_wrk(output: str) -> dict:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": round(rps, 1),
        "p99_ms": round(ms(p99.group(1)), 2) if p99 else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if common.cpus() > common.LOAD_CPU:
        command = ["/usr/bin/taskset", "-c", str(common.LOAD_CPU), *command]
    output = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    return parse_wrk(output)


def run_python(port: int, path: str, headers: dict[str, str], duration: int, conns: int) -> dict:
    """A bounded keep-alive client: ``conns`` threads for ``duration`` seconds."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    p99 = common.percentile(latencies, 99)
    return {
        "rps": round(len(latencies) / duration, 1),
        "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
        "non_2xx": failures[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=60)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    common.raise_open_files()
    common.pin_self(common.LOAD_CPU)
    common.setup_django()
    seed, page_path = seed_log(args.entries)
    env = common.server_env(DJANGO_SETTINGS_MODULE="benchmarks.bench_settings")
    server = common.start_uvicorn(
        workers=args.workers, env=env, cpu=common.SERVER_CPU if args.workers == 1 else None
    )
    headers = {"Authorization": f"Token {seed.token}", "Accept": "application/json"}
    tool = "wrk" if shutil.which("wrk") else "python threads"
    results = {}
    try:
        # Check both answer 200 before loading them.
        for path in (page_path, "/bench/bare/"):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        for name, path in (("bare", "/bench/bare/"), ("page", page_path)):
            if tool == "wrk":
                results[name] = run_wrk(server.url + path, headers, args.duration, args.connections)
            else:
                results[name] = run_python(
                    server.port, path, headers, args.duration, args.connections
                )
            print(f"{name}: {results[name]}", flush=True)
    finally:
        common.stop(server.process)
    ratio = results["page"]["rps"] / results["bare"]["rps"] if results["bare"]["rps"] else None
    print(f"ratio page/bare req/s: {ratio:.3f}" if ratio is not None else "ratio: n/a")
    common.emit(
        {
            "benchmark": "api",
            "tool": tool,
            "server": f"uvicorn --workers {args.workers}",
            "entries": args.entries,
            "page_size": 50,
            "connections": args.connections,
            "duration_s": args.duration,
            "bare": results["bare"],
            "page": results["page"],
            "ratio": round(ratio, 3) if ratio is not None else None,
        }
    )


if __name__ == "__main__":
    main()
