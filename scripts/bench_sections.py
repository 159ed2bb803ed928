"""BENCHMARKS.md by sections (a `## ` heading up to the next one): used by scripts/bench.sh
to show each picture at the end of its section and, in its `peers` mode, to replace some
sections of an existing file with freshly measured ones."""

import re

# Section (by the start of its heading) -> the picture shown at its end (alt text, path).
PICTURES = {
    "## Peers": ("Rust file locks against raw File::lock, as ratios", "bench/peers.svg"),
    "## Cross-process hand-off latency": (
        "Hand-off latency distribution (CDF, log time axis)",
        "bench/handoff-cdf.svg",
    ),
    "## Fairness": ("Hold timeline of the fairness runs", "bench/fairness-timeline.svg"),
}


def split(text):
    """The text before the first `## ` heading, then (heading, section) pairs in order."""
    parts = re.split(r"(?m)^(?=## )", text)
    head = "" if parts[0].startswith("## ") else parts[0]
    return head, [(p.splitlines()[0], p) for p in parts if p.startswith("## ")]


def key(heading):
    """What identifies a section across runs: its picture's prefix, else the heading."""
    for prefix in PICTURES:
        if heading.startswith(prefix):
            return prefix
    return heading


def join(head, sections):
    return head + "".join(s.rstrip("\n") + "\n\n" for _, s in sections)


def with_pictures(text):
    """`text` with each picture's line at the end of its section (once)."""
    head, sections = split(text)
    out = []
    for heading, section in sections:
        picture = PICTURES.get(key(heading))
        if picture and f"]({picture[1]})" not in section:
            section = section.rstrip("\n") + f"\n\n![{picture[0]}]({picture[1]})\n"
        out.append((heading, section))
    return join(head, out).rstrip("\n") + "\n"


def replace_sections(text, new):
    """`text` with each section of `new` in place of the one with the same key. Sections of
    `new` that `text` lacks go before the first replaced section (or at the end)."""
    head, old = split(text)
    _, fresh = split(new)
    fresh_by_key = {key(h): (h, s) for h, s in fresh}
    old_keys = {key(h) for h, _ in old}
    missing = [(h, s) for h, s in fresh if key(h) not in old_keys]
    out = []
    for heading, section in old:
        replacement = fresh_by_key.get(key(heading))
        if replacement is None:
            out.append((heading, section))
            continue
        out.extend(missing)
        missing = []
        out.append(replacement)
    out.extend(missing)
    return join(head, out)
