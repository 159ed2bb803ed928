#!/usr/bin/env bash
# Run this crate's tests for x86_64-pc-windows-gnu under wine (Linux host).
#
#   scripts/test-windows.sh [extra `cargo test` args...]     # from the repo root
#
# Installs what it needs (Debian/Ubuntu: wine64, gcc-mingw-w64-x86-64, the
# rustup target), creates a wine prefix without any GUI, installs the
# bcryptprimitives.dll shim (scripts/windows/bcryptprimitives.c; wine 8 lacks
# ProcessPrng, which Rust std imports) and runs `cargo test` with wine as the
# runner. Wine's fixme:/err: noise is filtered from stderr; cargo's exit code
# is kept. A pass under wine is evidence, not proof of Windows behaviour.
#
# Env: WINEPREFIX (default ~/.wine), TEST_WINDOWS_TIMEOUT (seconds, default 1800).
set -euo pipefail

TARGET=x86_64-pc-windows-gnu
TIMEOUT="${TEST_WINDOWS_TIMEOUT:-1800}"

# Bound the whole run (installs included): re-exec ourselves under timeout.
if [ -z "${_TEST_WINDOWS_BOUNDED:-}" ]; then
    export _TEST_WINDOWS_BOUNDED=1
    exec timeout --kill-after=30 "$TIMEOUT" bash "$0" "$@"
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHIM_SRC="$SCRIPT_DIR/windows/bcryptprimitives.c"
log() { echo "test-windows: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

find_wine() {
    local w
    for w in wine wine64 /usr/lib/wine/wine64; do
        if command -v "$w" >/dev/null 2>&1; then command -v "$w"; return 0; fi
    done
    return 1
}

# 1. System packages, only if missing.
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
find_wine >/dev/null || need+=(wine64 wine)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi
WINE="$(find_wine)"

# 2. Rust target.
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

# 3. Wine prefix, headless and without mono/gecko install dialogs.
export WINEPREFIX="${WINEPREFIX:-$HOME/.wine}"
export WINEDEBUG="${WINEDEBUG:--all}"
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY   # console programs only; no X server needed
WINESERVER="$(command -v wineserver || echo /usr/lib/wine/wineserver)"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "creating wine prefix $WINEPREFIX"
    timeout 300 "$WINE" wineboot --init </dev/null >/dev/null 2>&1
    timeout 120 "$WINESERVER" -w
fi

# 4. ProcessPrng shim into the prefix's (64-bit) system32.
SHIM_DST="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$SHIM_DST" ] || [ "$SHIM_SRC" -nt "$SHIM_DST" ]; then
    log "building $SHIM_DST"
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$SHIM_DST.tmp" "$SHIM_SRC" -ladvapi32
    mv -f "$SHIM_DST.tmp" "$SHIM_DST"
fi

# 5. Run the tests.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$WINE"

# Start wineserver and wine's background services (services.exe,
# winedevice.exe) now, detached from our stdio: services started by the first
# test binary would inherit its stderr pipe and keep the filter below open.
# Keeping one server alive also saves the per-binary startup.
"$WINESERVER" -p60 </dev/null >/dev/null 2>&1 || true
timeout 120 "$WINE" cmd /c exit </dev/null >/dev/null 2>&1 || true

WINE_NOISE='^([0-9a-f]{4}:)?(fixme|err|warn|trace):|^wine(server)?: |^([Ii]t looks like wine32 is missing|multiarch needs to be enabled|as root, please execute|execute "dpkg --add-architecture|apt-get install wine32)'
filter_noise() { grep --line-buffered -vE "$WINE_NOISE" || true; }

# stdout passes through untouched; only stderr (where wine writes) is filtered.
# After cargo, stop this prefix's wine processes so none keeps the pipe open.
set +e
{
    (
        cargo test --target "$TARGET" "$@"
        rc=$?
        "$WINESERVER" -k </dev/null >/dev/null 2>&1
        exit "$rc"
    ) 2>&1 1>&3 3>&- | filter_noise >&2
    status="${PIPESTATUS[0]}"
} 3>&1
set -e
exit "$status"
