#!/usr/bin/env bash
# Print the path of a Python interpreter >= 3.12, or fail with a message.
# Candidates are *run*, not just looked up: pyenv shims exist for versions that
# are not selected and fail when called.
set -u
want_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for v in python3.12 python3.13 python3 python; do
    p=$(command -v "$v" 2>/dev/null) && candidates+=("$p")
done
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    for d in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -V); do
        candidates+=("$d/bin/python3")
    done
fi
for d in /usr/local/bin /usr/bin /opt/python*/bin; do
    for v in python3.12 python3.13; do [ -x "$d/$v" ] && candidates+=("$d/$v"); done
done
for c in "${candidates[@]}"; do
    if want_ok "$c"; then
        "$c" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
echo "find_python.sh: no Python >= 3.12 found; install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12" >&2
exit 1
