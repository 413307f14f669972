#!/usr/bin/env bash
# Create or refresh the project virtualenv (.venv) and install the project with its dev extras.
#
# The install is re-run only when pyproject.toml changed since the last successful install:
# the SHA-256 of pyproject.toml is kept in a stamp file inside .venv.
#
# Usage: scripts/venv.sh            (VENV=path overrides the location, default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-.venv}"
STAMP="$VENV/.ctpn-installed"

log() { printf '==> %s\n' "$*" >&2; }

# Front-end libraries (htmx, Leaflet; axe-core for the tests) come from the npm registry, pinned
# in package-lock.json, and are installed again only when that file changed.
npm_install() {
    local npm_stamp="node_modules/.ctpn-installed" npm_want
    npm_want="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [[ -f "$npm_stamp" && "$(cat "$npm_stamp")" == "$npm_want" ]]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        log "npm is needed for the front-end libraries (Debian: apt-get install nodejs npm)"
        exit 1
    fi
    log "Installing the front-end libraries (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    printf '%s\n' "$npm_want" >"$npm_stamp"
}
npm_install

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

# Pick an interpreter: python3.11 when present, else python3 (which must be 3.11 or newer).
pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY="$(pick_python)"; then
    log "Python 3.11 or newer is needed (python3.11 or python3 on PATH)."
    exit 1
fi

# A .venv left half-made (no working pip) by an earlier failure is made again from scratch.
if [[ -e "$VENV" ]] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "Removing an unusable $VENV"
    rm -rf "$VENV"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "Creating $VENV with $PY"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian ships the venv module (ensurepip) in a separate package.
        rm -rf "$VENV"
        ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q
            pkg="python3-venv"
            if apt-cache show "python${ver}-venv" >/dev/null 2>&1; then
                pkg="python${ver}-venv"
            fi
            log "python -m venv failed; installing $pkg"
            apt-get install -y -q --no-install-recommends "$pkg"
            "$PY" -m venv "$VENV"
        else
            log "python -m venv failed: install python${ver}-venv (or python3-venv), then run this again."
            exit 1
        fi
    fi
fi

log "Installing the project and its dev extras into $VENV (pip install -e \".[dev]\")"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e ".[dev]"
printf '%s\n' "$want" >"$STAMP"
log "$VENV is ready"
