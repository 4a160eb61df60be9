"""Where a guest's extra cost comes from, step by step, in one process.

    PYTHONPATH=python bench/.venv/bin/python bench/breakdown.py --peer HOST:PORT [--json]

Each row adds one ingredient to the one before, and all rows run
interleaved (ABCD ABCD ...), so their differences are the ingredients'
costs on this machine right now:

  tick (one ``await asyncio.sleep(0)``):
    native            asyncio.run, EpollSelector
    GoSelector        the same loop on aioguest.GoSelector, not a guest:
                      the Go poll (ctypes -> cgo -> epoll_wait) per iteration
    guest             start_guest_run under a SimpleQueue host (5 ms slices)
    guest, 100 ms     the same with time_slice=0.1: what is left once the
                      per-turn cost is amortized is the per-iteration cost
  echo (one 1-byte round trip with the Go peer):
    native            asyncio.run
    GoSelector        blocking in Go on the host thread (no worker)
    guest             the Go worker waits and hands each wake-up to the host

Alongside the time, wake-ups (voluntary context switches summed over the
process's threads) per operation: a native echo round trip costs one (the
loop thread sleeping in epoll), a guest's more (worker, host, Go runtime).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from workloads.common import process_sample

import aioguest

Result = tuple[float, float]  # (µs per op, wake-ups per op)


def _switches() -> int:
    return sum(process_sample().voluntary.values())


async def tick_loop(seconds: float) -> Result:
    for _ in range(1000):
        await asyncio.sleep(0)
    n = 0
    w0 = _switches()
    t0 = now = time.perf_counter()
    end = t0 + seconds
    while now < end:
        for _ in range(50):
            await asyncio.sleep(0)
        n += 50
        now = time.perf_counter()
    return (now - t0) / n * 1e6, (_switches() - w0) / n


async def echo_loop(peer: tuple[str, int], seconds: float) -> Result:
    reader, writer = await asyncio.open_connection(*peer)
    for _ in range(200):
        writer.write(b"x")
        await reader.readexactly(1)
    n = 0
    w0 = _switches()
    t0 = now = time.perf_counter()
    end = t0 + seconds
    while now < end:
        writer.write(b"x")
        await reader.readexactly(1)
        n += 1
        now = time.perf_counter()
    result = (now - t0) / n * 1e6, (_switches() - w0) / n
    writer.close()
    return result


def native(coro: Coroutine[Any, Any, Result]) -> Result:
    return asyncio.run(coro)


def on_goselector(coro: Coroutine[Any, Any, Result]) -> Result:
    loop = asyncio.SelectorEventLoop(aioguest.GoSelector())
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def guest(coro: Coroutine[Any, Any, Result], time_slice: float = 0.005) -> Result:
    q: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
    done: list[Any] = []
    aioguest.start_guest_run(
        coro, run_sync_soon_threadsafe=q.put, done_callback=done.append, time_slice=time_slice
    )
    while not done:
        q.get()()
    result: Result = done[0].unwrap()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    host, _, port = args.peer.rpartition(":")
    peer = (host, int(port))
    s = args.seconds
    rows: dict[str, Callable[[], Result]] = {
        "tick: native": lambda: native(tick_loop(s)),
        "tick: native loop on GoSelector": lambda: on_goselector(tick_loop(s)),
        "tick: guest (queue host)": lambda: guest(tick_loop(s)),
        "tick: guest, 100 ms slices": lambda: guest(tick_loop(s), 0.1),
        "echo: native": lambda: native(echo_loop(peer, s)),
        "echo: native loop on GoSelector": lambda: on_goselector(echo_loop(peer, s)),
        "echo: guest (queue host)": lambda: guest(echo_loop(peer, s)),
    }
    samples: dict[str, list[Result]] = {name: [] for name in rows}
    for _ in range(args.reps):
        for name, fn in rows.items():
            samples[name].append(fn())
    out = []
    for name, values in samples.items():
        us = statistics.median(v[0] for v in values)
        wakeups = statistics.median(v[1] for v in values)
        out.append({"name": name, "us": us, "wakeups_per_op": wakeups})
    if args.json:
        print(json.dumps({"rows": out}))
    else:
        for r in out:
            print(f"{r['name']:34} {r['us']:8.2f} µs  {r['wakeups_per_op']:6.2f} wake-ups/op")


if __name__ == "__main__":
    main()
