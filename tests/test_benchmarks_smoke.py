"""The benchmark programs still run: each at a tiny size (10 clients, 20 recipients, 5 escalation
steps, 1,000 log entries), against the test database and Redis. Nothing here looks at a timing:
only that every program finishes and reports well-formed figures, and the table gets written."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from .servers import ROOT, server_environment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_every_benchmark_runs_at_a_tiny_size_and_the_table_is_written(tmp_path):
    results_file, table = tmp_path / "results.json", tmp_path / "performance.md"
    env = server_environment(REDIS_URL=settings.REDIS_URL)
    completed = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "benchmarks.run_all",
            "--quick",
            "--output",
            str(table),
            "--json",
            str(results_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(results_file.read_text())
    assert set(results) == {
        "raw",
        "platform",
        "stock-uvicorn-pubsub",
        "activation",
        "escalation",
        "api",
        "verify",
    }
    for name, result in results.items():
        assert "error" not in result, (name, result, completed.stdout[-3000:])
    for name in ("raw", "platform", "stock-uvicorn-pubsub"):
        (row,) = results[name]["rows"]
        assert row["clients"] == 10 and row["connected"] + row["failed_connects"] == 10
        assert set(row["latency_ms"]) == {"min", "p50", "p95", "p99", "max"}
    assert results["activation"]["normal"]["reached"] == 20
    assert results["activation"]["killed"]["lost"] >= 0
    assert results["escalation"]["normal"]["not_taken"] == 0
    assert results["api"]["page"]["rps"] > 0 and results["api"]["bare"]["rps"] > 0
    assert results["verify"]["intact"] is True
    assert results["verify"]["verified_entries"] == 1000
    text = table.read_text()
    for heading in ("## Machine", "## Targets", "## 1. Live fan-out", "## How to reproduce"):
        assert heading in text
