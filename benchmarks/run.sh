#!/usr/bin/env bash
# `make bench`: run every benchmark against throwaway PostgreSQL and Redis and write
# docs/performance.md. Arguments go to benchmarks/run_all.py (e.g. --quick, --only raw,platform).
#
# Installs what only the benchmarks need when missing: the `bench` extra of pyproject.toml
# (channels-redis, daphne) into .venv, and wrk (apt-get, when run as root or with passwordless
# sudo; otherwise the API benchmark uses its own bounded Python client). Everything started here
# (servers, workers, clients) is stopped on exit, also after a failure or Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/provision.sh
source "$ROOT/scripts/provision.sh"
trap provision_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '==> %s\n' "$*" >&2; }

bash "$ROOT/scripts/venv.sh"
PY="$ROOT/.venv/bin/python"
if ! "$PY" -c 'import channels_redis, daphne, websockets' 2>/dev/null; then
    log "Installing the bench extra (pip install -e \".[dev,bench]\")"
    "$PY" -m pip install --disable-pip-version-check -q -e ".[dev,bench]"
fi
if ! command -v wrk >/dev/null 2>&1; then
    if _prov_can_be_root && command -v apt-get >/dev/null 2>&1; then
        log "Installing wrk (apt-get)"
        # A fresh machine may have no package lists yet: fetch them once if the first try fails.
        apt_wrk() {
            _prov_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk
        }
        apt_wrk || { _prov_as_root apt-get update -q && apt_wrk; } ||
            log "wrk could not be installed: the API benchmark uses its Python client"
    else
        log "wrk not found: the API benchmark uses its Python client"
    fi
fi

# One descriptor per WebSocket client and server connection: 2,000 clients need more than 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
log "open files limit: $(ulimit -n)"

provision_services
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# The whole run is bounded: run_all.py limits each program, this limits everything.
timeout --signal=TERM --kill-after=30 1200 "$PY" -m benchmarks.run_all "$@"
