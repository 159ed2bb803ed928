#!/usr/bin/env python3
"""Python filelock peer of tests/interop.rs (needs filelock 4.x: pip install filelock==4.3.1).

Speaks the test harness protocol (tests/common/mod.rs): lines starting with "@@" on stdout,
commands on stdin; it never waits unbounded on the lock.

usage:
  py_lock.py hold <lock>                  take FileLock(<lock>), say "@@acquired <pid>", hold it
                                          until a line arrives on stdin or stdin closes,
                                          release, say "@@released"
  py_lock.py try <lock>                   one attempt (timeout 0): say "@@won" or "@@busy"
  py_lock.py count <lock> <counter> <n>   say "@@ready", wait for "go", then make <n>
                                          read-modify-write increments of <counter> under
                                          FileLock(<lock>), say "@@done <n>"

The counter file is one 20-digit decimal and a newline, read and rewritten in place, as
tests/common/workload.rs does it.
"""
import os
import sys
import time

from filelock import FileLock, Timeout

ACQUIRE_WAIT = 120.0  # seconds: bound of every blocking acquire
COUNTER_LEN = 21
HOLD_PAUSE = 0.0001  # seconds between reading and writing, as the Rust workers do


def say(line: str) -> None:
    print(f"@@{line}", flush=True)


def hold(lock_path: str) -> int:
    with FileLock(lock_path, timeout=ACQUIRE_WAIT):
        say(f"acquired {os.getpid()}")
        sys.stdin.readline()
    say("released")
    return 0


def try_once(lock_path: str) -> int:
    lock = FileLock(lock_path, timeout=0)
    try:
        with lock:
            say("won")
    except Timeout:
        say("busy")
    return 0


def count(lock_path: str, counter_path: str, n: int) -> int:
    lock = FileLock(lock_path, timeout=ACQUIRE_WAIT)
    fd = os.open(counter_path, os.O_RDWR)
    say("ready")
    if sys.stdin.readline().strip() != "go":
        return 1
    for _ in range(n):
        with lock:
            value = int(os.pread(fd, COUNTER_LEN, 0).decode())
            time.sleep(HOLD_PAUSE)
            os.pwrite(fd, f"{value + 1:020}\n".encode(), 0)
    os.close(fd)
    say(f"done {n}")
    return 0


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "hold":
        return hold(args[1])
    if len(args) == 2 and args[0] == "try":
        return try_once(args[1])
    if len(args) == 4 and args[0] == "count":
        return count(args[1], args[2], int(args[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
