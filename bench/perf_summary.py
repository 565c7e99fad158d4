#!/usr/bin/python3
"""perf_summary.py - where sealpost's CPU goes, from `perf script` output.

    perf script -F pid,ip,sym -i perf.data | perf_summary.py LOG [MASTER_PID]

LOG is sealpost's log (stderr): its `event=child_start role=R slot=S
pid=P` lines name each process's role. Every sample is charged to its
process's role and to the system call it was in (the first
`__x64_sys_*` frame of its kernel stack), else to "kernel, no system call"
(interrupts, softirq network work, scheduling) or to the user-space
function it was in. Prints the share of each role, then the top
(role, place) pairs, as a Markdown table. Used by bench/profile.sh.
"""
import collections
import re
import sys


def roles_from_log(path, master):
    roles = {master: "master"} if master else {}
    for m in re.finditer(r"event=child_start role=(\S+) slot=(\d+) pid=(\d+)",
                         open(path, errors="replace").read()):
        role, _slot, pid = m.groups()
        roles[pid] = role
    return roles


def main():
    roles = roles_from_log(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    by_place, by_role = collections.Counter(), collections.Counter()
    pid, frames = None, []

    def flush():
        if pid is None:
            return
        role = roles.get(pid, "other")
        place = None
        for f in frames:
            m = re.search(r"__(?:x64|do)_sys_(\w+)", f)
            if m:
                place = "system call " + m.group(1)
                break
        if place is None:
            first = frames[0].split() if frames else ["?", "?"]
            if first[0].startswith("ffffffff"):
                place = "kernel, no system call (irq, softirq, scheduling)"
            else:
                place = "user: " + (first[1] if len(first) > 1 else "?")
        by_place[(role, place)] += 1
        by_role[role] += 1

    for line in sys.stdin:
        if not line.strip():
            continue
        if re.match(r"^\s*\d+\s*$", line):     # a sample's header: its pid
            flush()
            pid, frames = line.split()[0], []
        else:
            frames.append(line.strip())
    flush()
    total = sum(by_role.values()) or 1
    user = sum(n for (r, p), n in by_place.items() if p.startswith("user: "))
    print(f"{total} samples; user space {100.0 * user / total:.1f} %, kernel "
          f"{100.0 * (total - user) / total:.1f} %\n")
    print("| process | share of sealpost's CPU samples |")
    print("|---|---:|")
    for role, n in by_role.most_common():
        print(f"| {role} | {100.0 * n / total:.1f} % |")
    print("\n| process | where | share |")
    print("|---|---|---:|")
    for (role, place), n in by_place.most_common(15):
        print(f"| {role} | {place} | {100.0 * n / total:.1f} % |")


if __name__ == "__main__":
    main()
