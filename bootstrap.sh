#!/usr/bin/env bash
# Set up whatever is missing, then run the main job or the tests.
#
#   ./bootstrap.sh main   -> quick validation hierarchy, report + figures in msbridge-report/
#   ./bootstrap.sh test   -> the test suite (what CI runs)
#
# Idempotent: the virtual environment (.venv) is made once and re-installed only when
# pyproject.toml changes. Needs a Python 3.12+; found on PATH or through pyenv.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.msbridge-installed"

find_python() {
    local cand
    for cand in "${MSBRIDGE_PYTHON:-}" python3.13 python3.12 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root=$(pyenv root)
        for cand in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.|$)' | sort -rV); do
            if [ -x "$root/versions/$cand/bin/python3" ]; then
                echo "$root/versions/$cand/bin/python3"
                return 0
            fi
        done
    fi
    return 1
}

setup() {
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return 0
    fi
    if [ -x "$VENV/bin/python" ] &&
        ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
        echo "[bootstrap] $VENV has Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), need 3.12+: recreating it"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        if ! py=$(find_python); then
            echo "error: no Python 3.12 or newer found (DOLFINx wheels need it)." >&2
            echo "fix: install one (e.g. 'pyenv install 3.12') or set MSBRIDGE_PYTHON=/path/to/python3.12" >&2
            exit 2
        fi
        echo "[bootstrap] creating $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    echo "[bootstrap] installing multiscale-bridge with all engines into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[all,dev]"
    echo "$want" >"$STAMP"
}

cmd=${1:-main}
shift || true
case "$cmd" in
main)
    setup
    exec "$VENV/bin/msbridge" validate --quick --report msbridge-report --json msbridge-report/validate.json "$@"
    ;;
test)
    setup
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
setup)
    setup
    ;;
*)
    echo "usage: ./bootstrap.sh [main|test|setup] [extra args]" >&2
    exit 2
    ;;
esac
