#!/usr/bin/env python3
"""Python filelock's SoftFileLease, driven by tests/lease.rs (interop tests).

usage:
  py_lease.py hold <path> <duration> <heartbeat>
        take the lease, print "@@acquired <pid> <token>", hold until a line on stdin (or
        stdin closes), then release and print "@@released"; prints "@@compromised <reason>"
        from the heartbeat when the claim is lost
  py_lease.py count <path> <counter> <n> <duration>
        "@@ready", wait for "go", then n read-modify-write increments under the lease;
        "@@done"
  py_lease.py encode <pid> <token> <duration>
        print "@@" + hex of the marker Python writes for a lease held by <pid> on this host
Lines starting with "@@" are the protocol (the Rust harness ignores the rest).
Needs filelock==4.3.1.
"""
import os
import sys

from filelock import SoftFileLease


def say(line: str) -> None:
    print(f"@@{line}", flush=True)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "hold" and len(sys.argv) == 5:
        lease = SoftFileLease(
            sys.argv[2],
            lease_duration=float(sys.argv[3]),
            heartbeat_interval=float(sys.argv[4]),
            on_compromise=lambda c: say(f"compromised {c.reason}"),
        )
        lease.acquire()
        say(f"acquired {os.getpid()} {lease.token}")
        sys.stdin.readline()
        lease.release()
        say("released")
        return 0
    if cmd == "count" and len(sys.argv) == 6:
        lease = SoftFileLease(sys.argv[2], lease_duration=float(sys.argv[5]))
        say("ready")
        if sys.stdin.readline().strip() != "go":
            return 1
        for _ in range(int(sys.argv[4])):
            with lease:
                try:
                    with open(sys.argv[3]) as f:
                        value = int(f.read().strip() or 0)
                except FileNotFoundError:
                    value = 0
                with open(sys.argv[3], "w") as f:
                    f.write(str(value + 1))
        say("done")
        return 0
    if cmd == "encode" and len(sys.argv) == 5:
        from filelock._identity._host import host_name
        from filelock._identity._process import process_start_token
        from filelock._soft._records import OwnerRecord, encode_marker

        pid = int(sys.argv[2])
        record = OwnerRecord(
            pid=pid,
            hostname=host_name(),
            mode="lease",
            token=sys.argv[3],
            lease_duration=float(sys.argv[4]),
            start=process_start_token(pid),
        )
        say(encode_marker(record).hex())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
