#!/usr/bin/env python3
"""Python filelock's StrictSoftFileLock, driven by tests/strict.rs (interop tests).

usage:
  py_strict.py hold <path>                   take the lock, print "@@acquired <pid>", hold
                                             until a line on stdin (or stdin closes),
                                             release, print "@@released"
  py_strict.py try <path> <timeout>          print "@@acquired <pid>" (then release) or
                                             "@@timeout"
  py_strict.py claims <path>                 print "@@claim <state> <name> <pid> <host hex>
                                             <start or ->" per claim, then "@@end"
  py_strict.py break-dead <path>             force_break every claim whose owner has exited
                                             on this host; print "@@broke <n>"
  py_strict.py count <path> <counter> <n>    "@@ready", wait for "go", then n read-modify-
                                             write increments under the lock; "@@done"
Lines starting with "@@" are the protocol (the Rust harness ignores the rest).
Needs filelock==4.3.1.
"""
import os
import sys

from filelock import StrictSoftFileLock, Timeout
from filelock._identity import owner_is_stale


def say(line: str) -> None:
    print(f"@@{line}", flush=True)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "hold" and len(sys.argv) == 3:
        lock = StrictSoftFileLock(sys.argv[2])
        lock.acquire()
        say(f"acquired {os.getpid()}")
        sys.stdin.readline()
        lock.release()
        say("released")
        return 0
    if cmd == "try" and len(sys.argv) == 4:
        lock = StrictSoftFileLock(sys.argv[2])
        try:
            lock.acquire(timeout=float(sys.argv[3]))
        except Timeout:
            say("timeout")
            return 0
        say(f"acquired {os.getpid()}")
        lock.release()
        return 0
    if cmd == "claims" and len(sys.argv) == 3:
        for claim in StrictSoftFileLock(sys.argv[2]).claims:
            start = "-" if claim.start is None else str(claim.start)
            say(f"claim {claim.state} {claim.name} {claim.pid} {claim.hostname.encode().hex()} {start}")
        say("end")
        return 0
    if cmd == "break-dead" and len(sys.argv) == 3:
        lock = StrictSoftFileLock(sys.argv[2])
        broke = 0
        for claim in lock.claims:
            if owner_is_stale(claim.pid, claim.hostname, claim.start):
                lock.force_break(claim.name)
                broke += 1
        say(f"broke {broke}")
        return 0
    if cmd == "count" and len(sys.argv) == 5:
        lock = StrictSoftFileLock(sys.argv[2])
        say("ready")
        if sys.stdin.readline().strip() != "go":
            return 1
        for _ in range(int(sys.argv[4])):
            with lock:
                with open(sys.argv[3]) as f:
                    value = int(f.read().strip() or 0)
                with open(sys.argv[3], "w") as f:
                    f.write(str(value + 1))
        say("done")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
