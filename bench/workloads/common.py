"""What the asyncio and the Trio versions of the workloads share: parameters,
the host-timer probe, statistics and whole-process CPU/wake-up sampling."""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any

# Defaults of a full run; the driver scales the durations down for --quick.
DEFAULTS: dict[str, Any] = {
    "tick_seconds": 0.5,
    "echo_seconds": 0.5,
    "many_connections": 1000,
    "many_seconds": 1.0,
    "timer_count": 150,
    "timer_delay": 0.002,
    "idle_seconds": 2.0,
    "host_seconds": 1.5,
    "host_period": 0.010,
    "flood_connections": 4,
    "flood_chunk": 16384,
    "warmup": 0.1,
}


class Probe:
    """The host timer's lateness, sampled only while the probe is active.

    The host arms its own periodic timer for the whole run and reports each
    arming (``armed(due)``) and each firing (``fired()``); the workload
    calls ``start()``/``stop()`` around the window in which the guest is
    saturated.  A timer still waiting when the window closes counts with
    the lateness it has reached by then, so a host timer that never fires
    at all (starved) shows as one huge sample rather than as no data.
    """

    def __init__(self) -> None:
        self.active = False
        self.late: list[float] = []
        self._due: float | None = None

    def armed(self, due: float) -> None:
        self._due = due

    def fired(self) -> None:
        now = time.perf_counter()
        if self.active and self._due is not None:
            self.late.append(now - self._due)
        self._due = None

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        now = time.perf_counter()
        if self.active and self._due is not None and now > self._due:
            self.late.append(now - self._due)
        self.active = False


@dataclass
class Context:
    params: dict[str, Any]
    peer: tuple[str, int]
    probe: Probe


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 150 samples is
    the second largest, a value that actually happened)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summary_ms(samples: list[float], prefix: str) -> dict[str, float]:
    if not samples:
        return {f"{prefix}_n": 0}
    return {
        f"{prefix}_mean_ms": statistics.fmean(samples) * 1e3,
        f"{prefix}_p50_ms": percentile(samples, 50) * 1e3,
        f"{prefix}_p99_ms": percentile(samples, 99) * 1e3,
        f"{prefix}_max_ms": max(samples) * 1e3,
        f"{prefix}_n": len(samples),
    }


@dataclass
class ProcessSample:
    cpu: float
    voluntary: dict[str, int]
    involuntary: int


def _thread_switches() -> tuple[dict[str, int], int]:
    voluntary: dict[str, int] = {}
    involuntary = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                text = f.read()
        except OSError:
            continue  # the thread exited while we looked
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary[tid] = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary += int(line.split()[1])
    return voluntary, involuntary


def process_sample() -> ProcessSample:
    """CPU time of every thread of the process, and its context switches.

    A voluntary switch is a thread going to sleep, so over an interval the
    sum over threads counts the wake-ups that followed; per-thread counts
    tell a periodic poller (one thread with a count growing with time) from
    the handful a single wait-and-wake costs.
    """
    voluntary, involuntary = _thread_switches()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessSample(usage.ru_utime + usage.ru_stime, voluntary, involuntary)


def idle_result(before: ProcessSample, after: ProcessSample, wall: float) -> dict[str, Any]:
    per_thread = {
        tid: after.voluntary[tid] - before.voluntary.get(tid, 0) for tid in after.voluntary
    }
    wakeups = sum(per_thread.values())
    return {
        "wall_s": wall,
        "cpu_ms": (after.cpu - before.cpu) * 1e3,
        "cpu_ms_per_s": (after.cpu - before.cpu) * 1e3 / wall,
        "wakeups": wakeups,
        "wakeups_per_s": wakeups / wall,
        "preemptions": after.involuntary - before.involuntary,
        "threads": len(after.voluntary),
        "busiest_thread_wakeups": max(per_thread.values(), default=0),
    }
