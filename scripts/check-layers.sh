#!/usr/bin/env bash
# The crate's layer rules (DESIGN "Shape", README "Layers"), checked on the source text:
#   - src/sys/ is the leaf: from outside it, it names only LockMode, NodeKind and the
#     poison-free `sync::lock` (never Error, Holder, Op, nor attempt, state, driver, wake or
#     any other module of the crate);
#   - src/attempt/ names nothing of wake, state or driver;
#   - no module imports one that imports it back (2-cycles between files), except a public
#     type and its builder, which name each other by design (`FileLock::builder` returns a
#     `FileLockBuilder`, whose `build` returns a `FileLock`): listed in `allowed` below.
# Imports are read from `use crate::/super::/self::/<child module>::` statements (braces
# expanded) and inline
# `crate::`/`super::` paths, resolved to files (a `pub use` of a child module is the parent's
# facade, not a dependency); a name from the crate root goes to the file
# lib.rs re-exports it from. Test modules (`mod tests` to the end of a file) are skipped.
# Run from anywhere: `scripts/check-layers.sh`; prints each violation, exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."

edges="$(find src -name '*.rs' ! -path 'src/bin/*' ! -name lib.rs | sort | xargs awk '
function modpath(f) { sub(/^src\//, "", f); sub(/\.rs$/, "", f); sub(/\/?mod$/, "", f); gsub(/\//, "::", f); return f }
function parent(m) { if (m !~ /::/) return ""; sub(/::[^:]*$/, "", m); return m }
function join(a, b) { return a == "" ? b : (b == "" ? a : a "::" b) }
BEGIN {
  for (i = 1; i < ARGC; i++) file[modpath(ARGV[i])] = ARGV[i]
  while ((getline l < "src/lib.rs") > 0)
    if (l ~ /^pub use [a-z_]+::/) {
      m = l; sub(/^pub use /, "", m); sub(/::.*/, "", m)
      names = l; sub(/^[^:]*::/, "", names); gsub(/[{};]/, "", names)
      n = split(names, part, /, */); for (k = 1; k <= n; k++) root[part[k]] = file[m]
    }
}
function resolve(p,   n, seg, base, k, cand, i, name) {
  sub(/::(self|\*)$/, "", p); sub(/ as .*/, "", p); gsub(/ /, "", p)
  n = split(p, seg, /::/); base = ""; i = 1
  if (seg[1] == "crate") i = 2
  else if (seg[1] == "self") { base = me; i = 2 }
  else { base = me; while (seg[i] == "super") { base = parent(base); i++ } }
  for (k = n; k >= i; k--) {
    cand = base; for (j = i; j <= k; j++) cand = join(cand, seg[j])
    if (cand in file) { name = (k < n) ? seg[k + 1] : seg[n]; emit(file[cand], name); return }
  }
  if (base == "" && (seg[i] in root)) emit(root[seg[i]], seg[i])
  else if (base in file) emit(file[base], seg[i])
}
function emit(to, name) { if (to != FILENAME_) print FILENAME_, to, name }
function expand(prefix, s,   o, c, d, head, body, item, ch) {
  o = index(s, "{")
  if (o == 0) { resolve(join(prefix, s)); return }
  head = substr(s, 1, o - 1); sub(/::$/, "", head); d = 0; body = ""
  for (c = o + 1; c <= length(s); c++) {
    ch = substr(s, c, 1)
    if (ch == "{") d++
    if (ch == "}" && d-- == 0) break
    if (ch == "," && d == 0) { expand(join(prefix, head), body); body = ""; continue }
    body = body ch
  }
  if (body ~ /[^ ]/) expand(join(prefix, head), body)
}
function flush(   t, s) {
  t = text
  while (match(t, /(^|[^a-z_])use (crate|super|self)::[^;]*;/)) {
    s = substr(t, RSTART, RLENGTH); sub(/^.?use /, "", s); sub(/;$/, "", s); gsub(/ /, "", s)
    expand("", s); t = substr(t, 1, RSTART) substr(t, RSTART + RLENGTH)
  }
  while (match(t, /(^|[^a-z_)])use [a-z_]+::[^;]*;/)) {
    s = substr(t, RSTART, RLENGTH); sub(/^.?use /, "", s); sub(/;$/, "", s); gsub(/ /, "", s)
    if (join(me, substr(s, 1, index(s, ":") - 1)) in file && substr(t, 1, RSTART) !~ /pub(\([a-z]+\))? ?$/) expand("self", s)
    t = substr(t, 1, RSTART) substr(t, RSTART + RLENGTH)
  }
  while (match(t, /(crate|super)::[A-Za-z_:]*[A-Za-z_]/)) { resolve(substr(t, RSTART, RLENGTH)); t = substr(t, RSTART + RLENGTH) }
}
FNR == 1 { if (NR > 1) flush(); FILENAME_ = FILENAME; me = modpath(FILENAME); text = ""; stop = 0 }
/^mod [a-z_]*tests/ { stop = 1 }
!stop { l = $0; sub(/(^|[ \t])\/\/.*$/, "", l); text = text " " l }
END { flush() }
' | sort -u)"

allowed="src/builder.rs src/file_lock.rs"
violations="$(awk -v allowed="$allowed" '
$1 ~ /^src\/sys\// && $2 !~ /^src\/(sys\/|sync\.rs)/ && $3 != "LockMode" && $3 != "NodeKind" {
  print "sys is the leaf: " $1 " names " $3 " from " $2 }
$1 ~ /^src\/attempt\// && $2 ~ /^src\/(wake|state|driver)\// {
  print "attempt knows nothing of the layers above it: " $1 " names " $3 " from " $2 }
{ edge[$1 " " $2] = 1 }
END { for (e in edge) { split(e, f, " "); if (f[1] < f[2] && ((f[2] " " f[1]) in edge) && e != allowed) print "import cycle: " f[1] " <-> " f[2] } }
' <<<"$edges" | sort)"

if [ -n "$violations" ]; then
  printf '%s\n' "$violations" >&2
  echo "check-layers: $(wc -l <<<"$violations") violation(s)" >&2
  exit 1
fi
echo "check-layers: ok ($(wc -l <<<"$edges") imports between $(find src -name '*.rs' ! -path 'src/bin/*' | wc -l) files)"
