#!/usr/bin/env bash
# Platform checks, run by CI after the Linux tests (from the repo root):
#
#   1. type-check and clippy (-D warnings), all targets and features, for macOS and
#      FreeBSD (no linker needed) and Windows;
#   2. every test file limited to some platforms is listed in tests/platform_skips.rs
#      (so the platforms it skips show it as an ignored test with a reason);
#   3. the whole test suite for x86_64-pc-windows-gnu under wine (scripts/test-windows.sh),
#      then a per-binary summary: tests run, ignored (with a reason, by #[ignore]) and
#      skipped at run time (`SKIPPED: <test>: <reason>`, a condition found under wine).
#
# A pass under wine is evidence, not proof, of Windows behaviour; macOS and FreeBSD are
# only type-checked. Extra arguments go to `cargo test` under wine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHECK_TARGETS=(x86_64-apple-darwin x86_64-unknown-freebsd x86_64-pc-windows-gnu)
step() { echo "ci-platforms: $*" >&2; }

step "rustup target add ${CHECK_TARGETS[*]}"
rustup target add "${CHECK_TARGETS[@]}" >/dev/null 2>&1 || rustup target add "${CHECK_TARGETS[@]}"

for target in "${CHECK_TARGETS[@]}"; do
    step "cargo check + clippy --target $target"
    cargo check --quiet --all-targets --all-features --target "$target"
    cargo clippy --quiet --all-targets --all-features --target "$target" -- -D warnings
done

step "platform-limited test files are listed in tests/platform_skips.rs"
missing=0
for file in tests/*.rs; do
    name="$(basename "$file" .rs)"
    [ "$name" = platform_skips ] && continue
    if grep -q '^#!\[cfg(' "$file" && ! grep -q "^fn $name()" tests/platform_skips.rs; then
        echo "ci-platforms: $file is limited by #![cfg(...)] but has no entry in tests/platform_skips.rs" >&2
        missing=1
    fi
done
[ "$missing" -eq 0 ]

step "test suite for x86_64-pc-windows-gnu under wine"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
scripts/test-windows.sh --all-features --no-fail-fast "$@" 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e

# One row per test binary: the `Running`/`Doc-tests` line names it, the `SKIPPED:` lines
# and its `test result:` line follow.
echo
echo "== Windows (wine) test summary: ran = passed + failed - skipped at run time"
awk '
    /^ *Running / { bin = ($2 == "unittests") ? $3 : $2; skipped = 0; next }
    /^ *Doc-tests / { bin = "doctests"; skipped = 0; next }
    /^SKIPPED: / { skipped++; next }
    /^test result: / {
        passed = $4; failed = $6; ignored = $8; sub(";", "", passed); sub(";", "", failed); sub(";", "", ignored)
        ran = passed + failed - skipped
        printf "%-28s ran %4d  failed %3d  ignored %3d  skipped %3d\n", bin, ran, failed, ignored, skipped
        tr += ran; tf += failed; ti += ignored; ts += skipped
    }
    END { printf "%-28s ran %4d  failed %3d  ignored %3d  skipped %3d\n", "TOTAL", tr, tf, ti, ts }
' "$log"
exit "$status"
