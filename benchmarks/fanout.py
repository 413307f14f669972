"""Live fan-out: N WebSocket clients on one incident, latency from commit to receipt at each.

    python -m benchmarks.fanout --server platform --clients 100,500,1000,2000
    python -m benchmarks.fanout --server raw --clients 100,500,1000,2000
    python -m benchmarks.fanout --server stock --asgi daphne --layer pubsub --clients 100,500,1000

Servers:
``platform``  the platform as deployed: ``ctpn.asgi`` under uvicorn (one process, pinned to the
              server core) with its process-local Redis pub/sub hub; decisions are recorded
              through the API (``POST /api/v1/incidents/<id>/decisions/``) on a second uvicorn
              process, as a write lands on any web process of a deployment.
``raw``       the baseline: ``benchmarks.raw_server``, a minimal ``websockets`` broadcast server
              relaying one Redis channel; the trigger PUBLISHes there.
``stock``     stock Channels (``benchmarks.stock_channels``): one consumer per socket in one group,
              ``group_send`` through ``RedisChannelLayer`` (``--layer core``) or
              ``RedisPubSubChannelLayer`` (``--layer pubsub``), under uvicorn or daphne.

Latency of one event at one client: the instant the client has read the frame (``time.time()``)
minus the event's ``created_at``. For the platform that is the instant the event was appended,
inside the transaction that records the decision, so it is at or just before the commit: the
figure covers commit, publish, fan-out and the client's read. For the raw and stock servers it is
the instant just before the trigger's PUBLISH / ``group_send``. Every client connects at once (a
storm: ``failed_connects``), reads its hello, then the trigger sends ``--messages`` events
``--interval`` seconds apart; ``lost`` counts events some client never received within
``--drain`` seconds after the last one. Peak and current resident memory of the server process
are read while every client is still connected.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from . import common

EVENT_PREFIX = '{"type":"event"'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=["platform", "raw", "stock"], default="platform")
    parser.add_argument("--asgi", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--layer", choices=["core", "pubsub"], default="pubsub")
    parser.add_argument("--clients", default="100,500,1000", help="comma-separated counts")
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=900, help="bytes of padding (raw/stock)")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    return parser.parse_args(argv)


def label(args: argparse.Namespace) -> str:
    if args.server == "platform":
        return "platform (uvicorn + process-local hub)"
    if args.server == "raw":
        return "raw websockets"
    layer = {"core": "RedisChannelLayer", "pubsub": "RedisPubSubChannelLayer"}[args.layer]
    return f"stock {args.asgi} + {layer}"


def synthetic(seq: int, pad: str) -> str:
    created = datetime.now(UTC).isoformat()
    return json.dumps(
        {"type": "event", "event": {"seq": seq, "created_at": created, "pad": pad}},
        separators=(",", ":"),
    )


class Round:
    """One storm of ``count`` clients, the trigger's events, and what every client read."""

    def __init__(self, url: str, headers: dict[str, str], count: int, open_timeout: float):
        self.url, self.headers, self.count, self.open_timeout = url, headers, count, open_timeout
        self.clients: list[ClientConnection] = []
        self.received: list[list[tuple[float, str]]] = []
        self.readers: list[asyncio.Task] = []
        self.failed = 0
        self.errors: dict[str, int] = {}

    async def connect_all(self) -> None:
        async def one() -> ClientConnection:
            ws = await connect(
                self.url,
                additional_headers=self.headers,
                open_timeout=self.open_timeout,
                compression=None,
                ping_interval=None,
                max_size=None,
            )
            async with asyncio.timeout(self.open_timeout):
                while True:
                    first = await ws.recv()
                    if isinstance(first, str) and '"hello"' in first:
                        return ws

        results = await asyncio.gather(*(one() for _ in range(self.count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self.failed += 1
                name = type(result).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
            else:
                self.clients.append(result)
        for ws in self.clients:
            sink: list[tuple[float, str]] = []
            self.received.append(sink)
            self.readers.append(asyncio.create_task(self.read(ws, sink)))

    @staticmethod
    async def read(ws: ClientConnection, sink: list[tuple[float, str]]) -> None:
        clock = time.time
        try:
            async for text in ws:
                if isinstance(text, str) and text.startswith(EVENT_PREFIX):
                    sink.append((clock(), text))
        except ConnectionClosed:
            pass

    async def wait_for(self, events: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(sink) >= events for sink in self.received):
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        async with asyncio.timeout(60):
            await asyncio.gather(*(ws.close() for ws in self.clients), return_exceptions=True)

    def figures(self) -> dict:
        latencies: list[float] = []
        seen_by: list[set[int]] = []
        sizes = [len(text) for sink in self.received for _, text in sink]
        for sink in self.received:
            seqs: set[int] = set()
            for at, text in sink:
                event = json.loads(text)["event"]
                if event["seq"] in seqs:
                    continue
                seqs.add(event["seq"])
                created = datetime.fromisoformat(event["created_at"]).timestamp()
                latencies.append(at - created)
            seen_by.append(seqs)
        every = set().union(*seen_by) if seen_by else set()
        lost = sum(len(every - seqs) for seqs in seen_by)
        return {
            "clients": self.count,
            "connected": len(self.clients),
            "failed_connects": self.failed,
            "connect_errors": self.errors,
            "events": len(every),
            "deliveries": len(latencies),
            "lost": lost,
            "frame_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
            "latency_ms": common.summary_ms(latencies),
        }


async def run_round(
    url: str,
    headers: dict[str, str],
    count: int,
    args: argparse.Namespace,
    trigger: Callable[[int], Awaitable[None]],
    server: common.Server,
) -> dict:
    round_ = Round(url, headers, count, args.open_timeout)
    started = time.monotonic()
    await round_.connect_all()
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(1.0)  # the connect storm's own traffic (presence) settles
    try:
        for n in range(args.messages):
            await trigger(n)
            await asyncio.sleep(args.interval)
        await round_.wait_for(args.messages, args.drain)
        memory = server.memory()
    finally:
        await round_.close()
    row = round_.figures()
    row.update(
        connect_seconds=round(connect_seconds, 3),
        server_rss_kib=memory.get("VmRSS"),
        server_hwm_kib=memory.get("VmHWM"),
    )
    return row


def print_row(name: str, row: dict) -> None:
    lat = row["latency_ms"]
    print(
        f"{name:45s} N={row['clients']:5d} failed={row['failed_connects']:4d} "
        f"p50={lat['p50']} p95={lat['p95']} p99={lat['p99']} max={lat['max']} "
        f"lost={row['lost']} rss={row['server_rss_kib']} KiB",
        flush=True,
    )


async def main_async(args: argparse.Namespace, seed: common.Seed | None) -> dict:
    counts = [int(c) for c in args.clients.split(",") if c]
    redis_url = os.environ["REDIS_URL"]
    pad = "x" * args.size
    rows: list[dict] = []
    api: common.Server | None = None
    server: common.Server | None = None
    try:
        if args.server == "platform":
            assert seed is not None
            server = common.start_uvicorn()
            # The API process (where the decisions are written) shares the load core.
            api = common.start_uvicorn(cpu=common.LOAD_CPU)
            url = f"{server.ws_url}/ws/incidents/{seed.incident_id}/"
            headers = {"Cookie": seed.cookie, "Origin": server.url}
            path = f"/api/v1/incidents/{seed.incident_id}/decisions/"
            loop = asyncio.get_running_loop()

            def post(n: int) -> None:
                body = json.dumps(common.decision_body(n))
                # A new connection each time: the server closes idle ones between rounds.
                connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
                connection.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Authorization": f"Token {seed.token}",
                        "Content-Type": "application/json",
                    },
                )
                response = connection.getresponse()
                data = response.read()
                connection.close()
                if response.status != 201:
                    raise RuntimeError(f"decision POST answered {response.status}: {data[:300]!r}")

            async def trigger(n: int) -> None:
                await loop.run_in_executor(None, post, n)

        elif args.server == "raw":
            import redis.asyncio as aioredis

            channel = f"bench:raw:{os.getpid()}"
            port = common.free_port()
            process = common.spawn(
                [sys.executable, "-m", "benchmarks.raw_server", str(port), redis_url, channel]
            )
            server = common.Server("raw", port, process)
            common.wait_listening(port, process)
            url, headers = f"{server.ws_url}/", {}
            publisher = aioredis.Redis.from_url(redis_url)

            async def trigger(n: int) -> None:
                await publisher.publish(channel, synthetic(n + 1, pad))

        else:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")
            os.environ.update({k: v for k, v in common.server_env().items() if k not in os.environ})
            os.environ["CTPN_ENV"] = "production"
            import django

            django.setup()
            from channels.layers import get_channel_layer
            from django.conf import settings

            from .stock_channels import GROUP, channel_layers

            settings.CHANNEL_LAYERS = channel_layers(redis_url, args.layer)
            env = common.server_env(BENCH_CHANNEL_LAYER=args.layer)
            app = "benchmarks.stock_asgi:application"
            if args.asgi == "daphne":
                server = common.start_daphne(app, env=env)
            else:
                server = common.start_uvicorn(app, env=env)
            url, headers = f"{server.ws_url}/ws/bench/", {}
            layer = get_channel_layer()
            assert layer is not None

            async def trigger(n: int) -> None:
                await layer.group_send(
                    GROUP, {"type": "bench.message", "text": synthetic(n + 1, pad)}
                )

        name = label(args)
        for count in counts:
            row = await run_round(url, headers, count, args, trigger, server)
            print_row(name, row)
            rows.append(row)
            await asyncio.sleep(1.0)
    finally:
        if server is not None:
            common.stop(server.process)
        if api is not None:
            common.stop(api.process)
    return {
        "benchmark": "fanout",
        "server": args.server,
        "asgi": args.asgi if args.server == "stock" else ("uvicorn" if args.server else ""),
        "layer": args.layer if args.server == "stock" else "",
        "label": label(args),
        "messages": args.messages,
        "interval_s": args.interval,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.raise_open_files()
    common.pin_self(common.LOAD_CPU)
    seed = None
    if args.server == "platform":
        common.setup_django()
        seed = common.seed_incident("fanout")
    result = asyncio.run(main_async(args, seed))
    common.emit(result)


if __name__ == "__main__":
    main()
