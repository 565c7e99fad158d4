#!/usr/bin/python3
"""fsync_rate.py - the disk's own durable-commit rate, the reference limit.

From one thread, for SECONDS: create a new file in DIR, write SIZE octets,
fsync(file), close, fsync(DIR) - the minimum an MTA must do per message
before it may answer 250 if it commits each message on its own. Files
are removed (outside the timed part) every 200 cycles and at the end.
Prints one JSON object: cycles, seconds, cycles_per_s.
"""
import argparse
import json
import os
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--size", type=int, default=1024)
    a = p.parse_args()
    work = os.path.join(a.dir, f"fsync-rate.{os.getpid()}")
    os.makedirs(work)
    dfd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    data = b"x" * a.size
    cycles = 0
    spent = 0.0
    pending = []
    try:
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            name = os.path.join(work, f"m{cycles}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.fsync(dfd)
            spent += time.perf_counter() - t0
            cycles += 1
            pending.append(name)
            if len(pending) >= 200:
                for n in pending:
                    os.unlink(n)
                pending.clear()
    finally:
        for n in pending:
            os.unlink(n)
        os.close(dfd)
        os.rmdir(work)
    print(json.dumps({"cycles": cycles, "seconds": round(spent, 4), "size": a.size,
                      "cycles_per_s": round(cycles / spent, 1) if spent else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
