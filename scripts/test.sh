#!/usr/bin/env bash
# The whole check, as CI runs it (`make test`, `bash .ci/run`):
#   ruff check, ruff format --check, mypy, manage.py check, makemigrations --check --dry-run, pytest
# against a real PostgreSQL and Redis. It stops at the first failure.
#
# Usage:
#   scripts/test.sh [PYTEST_ARGS...]     e.g. scripts/test.sh -k decision -x
#   scripts/test.sh --provision-only     start the servers, check they answer, stop them
#
# Without DATABASE_URL a throwaway PostgreSQL cluster is started (127.0.0.1:55432, role and
# database "app"); without REDIS_URL a throwaway Redis (127.0.0.1:56379). Debian's postgresql,
# redis-server and chromium are installed with apt-get when needed and missing (see
# scripts/provision.sh). Everything started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/provision.sh
source "$ROOT/scripts/provision.sh"
trap provision_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '\n==> %s\n' "$*" >&2; }

if [[ "${1:-}" == "--provision-only" ]]; then
    shift
    provision_services
    provision_check
    exit 0
fi

bash "$ROOT/scripts/venv.sh"
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

log "ruff check ."
ruff check .
log "ruff format --check ."
ruff format --check .
log "mypy"
mypy

provision_services

log "python manage.py check"
python manage.py check
log "python manage.py makemigrations --check --dry-run"
python manage.py makemigrations --check --dry-run

log "pytest $*"
status=0
python -m pytest "$@" || status=$?
if [[ "$status" -eq 5 ]]; then
    log "pytest collected no tests: that is a failure"
    exit 1
fi
exit "$status"
