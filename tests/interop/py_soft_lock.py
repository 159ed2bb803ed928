#!/usr/bin/env python3
"""Python filelock's SoftFileLock, driven by tests/soft.rs (interop tests).

usage:
  soft_lock.py hold <path> <seconds>    take the lock, print "@@acquired <pid>", hold, release
  soft_lock.py try <path> <timeout>     print "@@acquired <pid>" (then release) or "@@timeout"
  soft_lock.py marker <pid> [delta]     print "@@" + hex of the marker Python would write for
                                        <pid> on this host (start token + delta)
Lines starting with "@@" are the protocol (the Rust harness ignores the rest).
Needs filelock==4.3.1 (python3 -m pip install filelock==4.3.1).
"""
import os
import sys
import time

from filelock import SoftFileLock, Timeout


def say(line: str) -> None:
    print(f"@@{line}", flush=True)


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "hold" and len(sys.argv) == 4:
        with SoftFileLock(sys.argv[2]):
            say(f"acquired {os.getpid()}")
            time.sleep(float(sys.argv[3]))
        return 0
    if cmd == "try" and len(sys.argv) == 4:
        lock = SoftFileLock(sys.argv[2], timeout=float(sys.argv[3]))
        try:
            with lock:
                say(f"acquired {os.getpid()}")
        except Timeout:
            say("timeout")
        return 0
    if cmd == "marker" and len(sys.argv) in (3, 4):
        from filelock._identity._host import host_name
        from filelock._identity._process import process_start_token

        pid = int(sys.argv[2])
        delta = int(sys.argv[3]) if len(sys.argv) == 4 else 0
        info = f"{pid}\n{host_name()}\n"
        token = process_start_token(pid)
        if token is not None:
            info += f"{token + delta}\n"
        say(info.encode().hex())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
