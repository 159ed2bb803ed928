#!/usr/bin/env python3
"""Python filelock worker of tests/chaos.rs (needs filelock 4.x).

usage: py_chaos.py <os|soft> <lock> <log> <stop>

Loops until the file <stop> exists: acquires FileLock (os) or SoftFileLock (soft) on <lock>
with a short timeout, appends "E <id> <start_ns> <enter_ns>" to <log> once it holds the lock,
holds it for up to 2 ms, appends "L <id> <leave_ns>" and releases. Times are
CLOCK_MONOTONIC (time.monotonic_ns), the clock the Rust workers use. Says "@@ready" first.
"""
import os
import random
import sys
import time

from filelock import FileLock, SoftFileLock, Timeout


def main() -> int:
    kind, lock_path, log_path, stop_path = sys.argv[1:5]
    lock_type = FileLock if kind == "os" else SoftFileLock
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()
    print("@@ready", flush=True)
    seq = 0
    while not os.path.exists(stop_path):
        lock = lock_type(lock_path, timeout=0.5)
        start = time.monotonic_ns()
        try:
            lock.acquire()
        except Timeout:
            continue
        try:
            seq += 1
            ident = f"py-{kind}:{pid}.{seq}"
            os.write(log, f"E {ident} {start} {time.monotonic_ns()}\n".encode())
            time.sleep(random.random() * 0.002)
            os.write(log, f"L {ident} {time.monotonic_ns()}\n".encode())
        finally:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
