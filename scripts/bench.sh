#!/usr/bin/env bash
# Runs every benchmark of tokio-filelock once and writes BENCHMARKS.md (or the file given
# as the last argument) and its pictures (SVG, in bench/ next to it). Self-contained: builds
# what it needs; Python filelock is used as a peer when `python3 -c 'import filelock'` works;
# the PostgreSQL rows come from a server the harness starts itself from the installed
# binaries (`examples/bench_pg.rs`; skipped, with a note, when there are none). Takes about
# 4 minutes on a quiet 2-core machine (build excluded). Run it on a quiet machine: the
# numbers are latencies.
#
#   scripts/bench.sh [OUT.md]         # everything
#   scripts/bench.sh peers [OUT.md]   # only the peers, cross-process hand-off and fairness
#                                     # sections and the pictures (about a minute), replaced
#                                     # in place in an existing OUT.md
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # scripts/bench_sections.py is imported: no __pycache__
cd "$(dirname "$0")/.."
mode=full
if [ "${1:-}" = peers ]; then
  mode=peers
  shift
fi
out="${1:-BENCHMARKS.md}"
pictures="$(dirname "$out")/bench"
logs=target/bench-logs
mkdir -p "$logs" "$pictures"

echo "building (release)..." >&2
cargo build --release --example bench_handoff >&2
# The peers and the plotting crate are a separate, unpublished package (bench/peers).
cargo build --release -p tokio-filelock-peers --bins >&2
if [ "$mode" = full ]; then
  cargo build --release --features postgres --example bench_pg >&2
  cargo bench --bench uncontended --no-run >&2
fi

# The Python peer: the tests' venv (target/test-venv, made by `cargo test --test interop`)
# when present, else whatever `python3` has.
if [ -x target/test-venv/bin/python3 ]; then
  export PATH="$PWD/target/test-venv/bin:$PATH"
fi

started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

echo "peers..." >&2
target/release/tokio-filelock-peers --data "$logs/peers.tsv" >"$logs/peers.md"

export HANDOFF_SAMPLES="$logs/handoff-samples.tsv" FAIRNESS_TIMELINE="$logs/fairness.txt"
if [ "$mode" = full ]; then
  echo "criterion: uncontended cycles..." >&2
  rm -rf target/criterion/uncontended
  cargo bench --bench uncontended -- --noplot >"$logs/uncontended.log" 2>&1

  echo "multi-process harness..." >&2
  target/release/examples/bench_handoff >"$logs/handoff.md"

  echo "PostgreSQL harness..." >&2
  target/release/examples/bench_pg >"$logs/pg.md"
else
  echo "multi-process harness: cross-process hand-off, fairness..." >&2
  target/release/examples/bench_handoff --only cross-process >"$logs/handoff.md"
  target/release/examples/bench_handoff --fairness >>"$logs/handoff.md"
fi

finished=$(date +%s)
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

echo "pictures..." >&2
target/release/pictures handoff-cdf "$HANDOFF_SAMPLES" "$pictures/handoff-cdf.svg"
target/release/pictures fairness "$FAIRNESS_TIMELINE" "$pictures/fairness-timeline.svg"
target/release/pictures peers "$logs/peers.tsv" "$pictures/peers.svg"

if [ "$mode" = peers ]; then
  python3 - "$out" "$logs/peers.md" "$logs/handoff.md" <<'PY'
import sys
sys.path.insert(0, "scripts")
from bench_sections import replace_sections, with_pictures

out, peers, handoff = sys.argv[1:4]
with open(out) as f:
    text = f.read()
with open(peers) as f:
    new = f.read()
with open(handoff) as f:
    new += f.read()
with open(out, "w") as f:
    f.write(with_pictures(replace_sections(text, new)))
print(f"updated the peers, cross-process hand-off and fairness sections of {out}", file=sys.stderr)
PY
  exit 0
fi

python3 - "$out" "$logs/handoff.md" "$logs/pg.md" "$((finished - started))" "$load_before" "$load_after" "$logs/peers.md" <<'PY'
import json, os, platform, subprocess, sys
sys.path.insert(0, "scripts")
from bench_sections import with_pictures

out, handoff, pg, seconds, load_before, load_after, peers = sys.argv[1:8]

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"

def median_ns(name):
    path = f"target/criterion/uncontended/{name}/new/estimates.json"
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]

def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"

def verdict(ok, how):
    return f"**{'met' if ok else 'missed'}** ({how})"

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
py = sh("python3 -c 'import filelock; print(filelock.__version__)'") or "not installed"
raw, hop = median_ns("raw_cycle"), median_ns("spawn_blocking_hop")
asy, syn, ree = (median_ns(n) for n in
                 ("async_acquire_release", "sync_acquire_release", "async_reentrant_reacquire"))
checked = median_ns("raw_cycle_checked")
async_ratio = asy / (hop + raw)
sync_ratio = syn / raw

lines = [
    "# Benchmarks",
    "",
    "Written by `scripts/bench.sh` (do not edit by hand; run it again). One run of each "
    "measurement; every baseline is measured in the same run, so the ratios are the numbers "
    "to read. Latencies on a loaded machine are noisy: compare runs made on a quiet one.",
    "",
    "## Machine and commands",
    "",
    f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; kernel {platform.release()}",
    f"- {sh('rustc -V')}; Python filelock {py}",
    f"- load average before / after: {load_before} / {load_after}; "
    f"measuring took {seconds} s (builds excluded)",
    "- commands:",
    "  - `cargo bench --bench uncontended -- --noplot` (criterion; medians below)",
    "  - `cargo run --release --example bench_handoff` (multi-process harness; the sections "
    "after the first, up to PostgreSQL)",
    "  - `cargo run --release --features postgres --example bench_pg` (the PostgreSQL "
    "sections; it starts and stops its own server)",
    "  - `cargo run --release -p tokio-filelock-peers` (the peers section: the other Rust "
    "file-lock crates; `bench/peers`, an unpublished package of its own)",
    "  - `scripts/bench.sh peers` reruns only the peers, cross-process hand-off and fairness "
    "sections and the pictures (`bench/*.svg`, drawn by the `pictures` binary of `bench/peers`)",
    "",
    "## Uncontended acquire + release",
    "",
    "One acquire and one release with nobody else on the lock. The async rounds run inside a "
    "spawned task of a multi-thread runtime (2 workers). `raw cycle` is the work the library "
    "cannot avoid: `open` (same flags) + `try_lock` + `unlock` + `close`; "
    "`spawn_blocking hop` is an empty `spawn_blocking(|| ()).await`, the price of keeping "
    "file system calls off the workers.",
    "",
    "| benchmark | median | ratio |",
    "|---|---|---|",
    f"| raw cycle (baseline) | {fmt(raw)} | 1.00x raw |",
    f"| raw cycle + identity check (`fstat` + `lstat` after winning) | {fmt(checked)} | "
    f"{checked / raw:.2f}x raw: the check costs {fmt(checked - raw)} |",
    f"| `spawn_blocking` hop (baseline) | {fmt(hop)} | |",
    f"| async `acquire().await` + drop | {fmt(asy)} | {async_ratio:.2f}x (hop + raw) |",
    f"| sync `blocking_acquire()` + drop | {fmt(syn)} | {sync_ratio:.2f}x raw |",
    f"| async re-acquire while held (reentrant) | {fmt(ree)} | {ree / raw:.3f}x raw |",
    "",
    f"Goal: async ≤ 1.3x (hop + raw): {verdict(async_ratio <= 1.3, f'{async_ratio:.2f}x')}. "
    f"Goal: sync ≤ 1.3x raw: {verdict(sync_ratio <= 1.3, f'{sync_ratio:.2f}x')}.",
    "",
]
with open(peers) as f:
    body = f.read()
with open(handoff) as f:
    body += f.read()
with open(pg) as f:
    body += f.read()
with open(out, "w") as f:
    f.write(with_pictures("\n".join(lines) + "\n" + body))
print(f"wrote {out}", file=sys.stderr)
PY
