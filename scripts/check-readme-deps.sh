#!/usr/bin/env bash
# Builds and runs the README's first example in a fresh crate whose dependencies are exactly
# the README's `[dependencies]` block (tokio-filelock's version replaced by a path to this
# checkout), as a new user would paste them. The doc tests cannot catch a missing
# dependency or feature: they build with this crate's dev-dependencies.
#
# Offline: reuses Cargo.lock and the local registry cache, and this checkout's target
# directory, so it takes seconds once the crate is built. Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crate="$root/target/readme-check"
rm -rf "$crate"
mkdir -p "$crate/src"

# The first ```toml block and the first ```rust block of the README.
python3 - "$root/README.md" "$crate" "$root" <<'PY'
import re, sys
readme, crate, root = sys.argv[1:4]
text = open(readme, encoding="utf-8").read()
blocks = re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.S | re.M)
toml = next(body for lang, body in blocks if lang.strip() == "toml")
rust = next(body for lang, body in blocks if lang.split(",")[0].strip() == "rust")
if not toml.lstrip().startswith("[dependencies]"):
    sys.exit("README: the first toml block is not a [dependencies] block")
dep = re.compile(r'^tokio-filelock[ \t]*=[ \t]*"[^"]*"[ \t]*$', flags=re.M)
if not dep.search(toml):
    sys.exit('README: no `tokio-filelock = "<version>"` line in the dependency block')
toml = dep.sub(f'tokio-filelock = {{ path = "{root}" }}', toml)
manifest = (
    '[package]\nname = "readme-check"\nversion = "0.0.0"\nedition = "2024"\n'
    "publish = false\n\n[workspace]\n\n" + toml
)
open(f"{crate}/Cargo.toml", "w").write(manifest)
# Hidden doc-test lines (`# ...`) are not what a reader copies: drop them.
lines = [l for l in rust.splitlines() if not re.match(r"^\s*# ", l) and l.strip() != "#"]
open(f"{crate}/src/main.rs", "w").write("\n".join(lines) + "\n")
PY

cp "$root/Cargo.lock" "$crate/Cargo.lock"
cd "$crate"
echo "README dependencies:" >&2
sed -n '/^\[dependencies\]/,$p' Cargo.toml >&2
CARGO_TARGET_DIR="$root/target" cargo build --offline --quiet --bin readme-check
# The example locks `high_ground.txt.lock` in the current directory: run it here.
CARGO_TARGET_DIR="$root/target" cargo run --offline --quiet --bin readme-check
echo "README's first example: builds and runs with exactly the README's dependencies" >&2
