#!/usr/bin/env python3
"""Python filelock's SoftReadWriteLock, driven by tests/soft_rw.rs (interop tests).

usage:
  py_soft_rw.py hold <path> <read|write> <heartbeat> <stale>
        take the lock, print "@@acquired <pid> <generation>", hold until a line on stdin
        (or stdin closes), then release and print "@@released"; prints
        "@@compromised <reason>" from the heartbeat when the hold is lost
  py_soft_rw.py try <path> <read|write>
        one non-blocking attempt: "@@got <generation>" (then released) or "@@busy"
  py_soft_rw.py count <path> <counter> <n>
        "@@ready", wait for "go", then n read-modify-write increments under the write
        lock; "@@done"
Lines starting with "@@" are the protocol (the Rust harness ignores the rest).
Needs filelock==4.3.1.
"""
import os
import sys

from filelock import SoftReadWriteLock, Timeout


def say(line: str) -> None:
    print(f"@@{line}", flush=True)


def acquire(lock: SoftReadWriteLock, mode: str, **kwargs) -> None:
    if mode == "read":
        lock.acquire_read(**kwargs)
    else:
        lock.acquire_write(**kwargs)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "hold" and len(sys.argv) == 6:
        lock = SoftReadWriteLock(
            sys.argv[2],
            heartbeat_interval=float(sys.argv[4]),
            stale_threshold=float(sys.argv[5]),
            poll_interval=0.05,
            is_singleton=False,
            on_compromise=lambda c: say(f"compromised {c.reason}"),
        )
        acquire(lock, sys.argv[3])
        say(f"acquired {os.getpid()} {lock.generation}")
        sys.stdin.readline()
        lock.release()
        say("released")
        return 0
    if cmd == "try" and len(sys.argv) == 4:
        lock = SoftReadWriteLock(sys.argv[2], is_singleton=False)
        try:
            acquire(lock, sys.argv[3], blocking=False)
        except Timeout:
            say("busy")
            return 0
        say(f"got {lock.generation}")
        lock.release()
        return 0
    if cmd == "count" and len(sys.argv) == 5:
        lock = SoftReadWriteLock(sys.argv[2], poll_interval=0.01, is_singleton=False)
        say("ready")
        if sys.stdin.readline().strip() != "go":
            return 1
        for _ in range(int(sys.argv[4])):
            with lock.write_lock():
                try:
                    with open(sys.argv[3]) as f:
                        value = int(f.read().strip() or 0)
                except FileNotFoundError:
                    value = 0
                with open(sys.argv[3], "w") as f:
                    f.write(str(value + 1))
        say("done")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
