"""CPU time of this process and every process of an emulated cluster, from ``/proc``.

Shared by the load benchmark and the soak: both report CPU per operation summed over the client,
each node's parent and enclave, and the emulated cloud.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Mapping

from keyshard.dev.cluster import Cluster

TICK = os.sysconf("SC_CLK_TCK")
ROLES = ("client", "parents", "enclaves", "cloud", "other")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, utime + stime in seconds) for every readable process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15 (proc(5)).
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return table


def cpu_by_role(named: Mapping[int, str]) -> dict[str, float]:
    """CPU seconds so far of this process and all its descendants, summed by role.

    ``named`` maps the cluster's top processes (children of this one) to a role; their
    descendants take the role ``enclaves`` under a parent, else their ancestor's role.
    """
    table = _proc_table()
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    totals = dict.fromkeys(ROLES, 0.0)
    me = os.getpid()
    stack = [(child, named.get(child, "other")) for child in children[me]]
    while stack:
        pid, role = stack.pop()
        totals[role] += table[pid][1]
        below = "enclaves" if role == "parents" else role
        stack.extend((child, below) for child in children[pid])
    totals["client"] = time.process_time()  # this process, finer than clock ticks
    return totals


def cluster_roles(cluster: Cluster) -> dict[int, str]:
    return {
        pid: "cloud" if name == "cloud" else "parents" if name.startswith("node-") else "other"
        for name, pid in cluster.pids().items()
    }
