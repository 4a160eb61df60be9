"""What the asyncio and the Trio versions of the workloads share: parameters,
the host-timer probe, statistics and whole-process CPU/wake-up sampling."""

from __future__ import annotations

import os
import resource
import statistics
import threading
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


class SteadySampler:
    """Counts the process's wake-ups in the second half of an idle window,
    from a thread of its own (whose switches it leaves out).

    Starting and ending a wait costs a fixed handful of wake-ups (the Go
    runtime's monitor thread backs off over the first milliseconds, the
    wait's end wakes the worker and the host); only a periodic source keeps
    waking threads once the process has settled.  Sampling ends 0.1 s
    before the window does, so the guest's own wake-up is not in it.
    """

    def __init__(self, window: float) -> None:
        self._window = window
        self._counts: list[tuple[float, int]] = []
        self.cpu = 0.0
        self.tid = ""
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._start = time.perf_counter()

    def start(self) -> None:
        self._start = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        self.tid = me = str(threading.get_native_id())
        for at in (self._window / 2, self._window - 0.1):
            time.sleep(max(0.0, self._start + at - time.perf_counter()))
            voluntary, _ = _thread_switches()
            voluntary.pop(me, None)
            self._counts.append((time.perf_counter(), sum(voluntary.values())))
        # Its own CPU time, for idle_result to leave out of the process's.
        self.cpu = time.thread_time()

    def result_cpu(self) -> float:
        self._thread.join()
        return self.cpu

    def result(self) -> dict[str, float]:
        self._thread.join()
        (t0, c0), (t1, c1) = self._counts
        return {"steady_wakeups_per_s": (c1 - c0) / (t1 - t0), "steady_window_s": t1 - t0}


def idle_result(
    before: ProcessSample, after: ProcessSample, wall: float, sampler: SteadySampler
) -> dict[str, Any]:
    sampler.result_cpu()  # joins it: its tid is known from here on
    per_thread = {
        tid: after.voluntary[tid] - before.voluntary.get(tid, 0)
        for tid in after.voluntary
        if tid != sampler.tid
    }
    wakeups = sum(per_thread.values())
    cpu = after.cpu - before.cpu - sampler.result_cpu()
    return sampler.result() | {
        "wall_s": wall,
        "cpu_ms": cpu * 1e3,
        "cpu_ms_per_s": cpu * 1e3 / wall,
        "wakeups": wakeups,
        "wakeups_per_s": wakeups / wall,
        "preemptions": after.involuntary - before.involuntary,
        "threads": len(per_thread),
        "busiest_thread_wakeups": max(per_thread.values(), default=0),
    }
