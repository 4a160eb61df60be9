"""Microbenchmarks of one guest turn, so a regression shows where it lives.

    PYTHONPATH=python bench/.venv/bin/python bench/micro_turn.py [--json] [--quick]

The guest runs under a minimal host (a SimpleQueue the benchmark pumps by
hand), so every number is the guest's own cost on the host thread, next to
what native asyncio pays for the same step:

  wake latency        host calls loop.call_soon() on an idle guest -> the
                      worker's wait ends -> the next turn reaches the host
  turn, 1 callback    that turn: take the (empty) results, run the callback,
                      find nothing more, hand the worker the next wait
  turn, empty         a turn woken with nothing to do (handoff wake)
  turn, N events      N sockets readable: decode N records and run N reader
                      callbacks, vs one native iteration doing the same
  poll+decode N       GoSelector.poll() with N ready fds vs EpollSelector.select(0)
  decode N            GoSelector.decode() alone (Python only)
  native iteration    one run_forever() iteration of a plain asyncio loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import selectors
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import aioguest

Row = dict[str, Any]
clock = time.perf_counter_ns


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1e3


def per_op_us(fn: Callable[[], object], ops: int, reps: int) -> float:
    """Median over *reps* of the mean time of *ops* back-to-back calls."""
    samples = []
    for _ in range(reps):
        t0 = clock()
        for _ in range(ops):
            fn()
        samples.append((clock() - t0) / ops)
    return statistics.median(samples) / 1e3


class Guest:
    """A guest run idling on an Event, pumped by hand."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.done: list[Any] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.finish: asyncio.Event | None = None

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.finish = asyncio.Event()
            await self.finish.wait()

        aioguest.start_guest_run(
            main(), run_sync_soon_threadsafe=self.q.put, done_callback=self.done.append
        )
        self.settle()

    def settle(self) -> None:
        """Run turns until the guest waits with nothing pending."""
        while True:
            try:
                self.q.get(timeout=0.05)()
            except queue.Empty:
                return

    def next_turn(self) -> Callable[[], None]:
        return self.q.get(timeout=10)

    def close(self) -> None:
        assert self.finish is not None
        self.finish.set()
        while not self.done:
            self.q.get(timeout=10)()
        self.done[0].unwrap()


def noop() -> None:
    pass


def wake_and_turn(guest: Guest, rounds: int) -> tuple[float, float]:
    loop = guest.loop
    assert loop is not None
    wake, turn = [], []
    for _ in range(rounds):
        t0 = clock()
        loop.call_soon(noop)
        resume = guest.next_turn()
        t1 = clock()
        resume()
        t2 = clock()
        wake.append(t1 - t0)
        turn.append(t2 - t1)
    return median_us(wake), median_us(turn)


def empty_turn(guest: Guest, rounds: int) -> float | None:
    loop = guest.loop
    selector = getattr(loop, "_selector", None)
    handoff = getattr(selector, "_handoff", None)
    if handoff is None or not hasattr(handoff, "wake"):
        return None  # internals moved; the other rows still say enough
    samples = []
    for _ in range(rounds):
        handoff.wake()
        resume = guest.next_turn()
        t0 = clock()
        resume()
        samples.append(clock() - t0)
    return median_us(samples)


def socket_pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = []
    for _ in range(n):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        pairs.append((a, b))
    return pairs


def turn_with_events(guest: Guest, n: int, rounds: int) -> float:
    loop = guest.loop
    assert loop is not None
    pairs = socket_pairs(n)
    for r, _ in pairs:
        loop.add_reader(r, r.recv, 1)
    # Registering does not end the wait in progress (the first round's turn
    # is not counted).  The event buffer grows with registrations, so one
    # turn takes all N.
    samples = []
    for i in range(rounds + 1):
        for _, w in pairs:
            w.send(b"x")
        resume = guest.next_turn()
        t0 = clock()
        resume()
        if i:
            samples.append(clock() - t0)
    for r, w in pairs:
        loop.remove_reader(r)
        r.close()
        w.close()
    guest.settle()
    return median_us(samples)


def native_with_events(n: int, rounds: int) -> float:
    loop = asyncio.new_event_loop()
    pairs = socket_pairs(n)
    for r, _ in pairs:
        loop.add_reader(r, r.recv, 1)
    samples = []
    for _ in range(rounds):
        for _, w in pairs:
            w.send(b"x")
        loop.call_soon(loop.stop)
        t0 = clock()
        loop.run_forever()
        samples.append(clock() - t0)
    for r, w in pairs:
        loop.remove_reader(r)
        r.close()
        w.close()
    loop.close()
    return median_us(samples)


def native_iteration(rounds: int) -> float:
    loop = asyncio.new_event_loop()
    samples = []
    for _ in range(rounds):
        loop.call_soon(noop)
        loop.call_soon(loop.stop)
        t0 = clock()
        loop.run_forever()
        samples.append(clock() - t0)
    loop.close()
    return median_us(samples)


def selector_poll(n: int, reps: int) -> tuple[float, float, float]:
    pairs = socket_pairs(n)
    go = aioguest.GoSelector()
    ep = selectors.EpollSelector()
    for r, w in pairs:
        w.send(b"x")
        go.register(r, selectors.EVENT_READ)
        ep.register(r, selectors.EVENT_READ)
    ops = max(10, 2000 // max(n, 1))
    assert len(go.poll()) == n
    go_poll = per_op_us(go.poll, ops, reps)
    ep_poll = per_op_us(lambda: ep.select(0), ops, reps)
    decode = per_op_us(lambda: go.decode(n), ops, reps)
    go.close()
    ep.close()
    for r, w in pairs:
        r.close()
        w.close()
    return go_poll, ep_poll, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 300 if args.quick else 3000
    reps = 5 if args.quick else 21
    rows: list[Row] = []

    def row(name: str, us: float | None, note: str = "") -> None:
        if us is not None:
            rows.append({"name": name, "us": us, "note": note})

    row("native iteration, 1 callback", native_iteration(rounds), "run_forever + stop")
    guest = Guest()
    try:
        wake, turn = wake_and_turn(guest, rounds)
        row("wake latency (call_soon -> turn at host)", wake, "worker hop, idle guest")
        row("turn, 1 callback", turn, "take + callback + poll + request")
        row("turn, empty", empty_turn(guest, rounds), "woken with nothing to do")
        for n in (1, 10, 100, 1000):
            events_rounds = max(20, rounds // max(1, n // 10))
            row(f"turn, {n} events", turn_with_events(guest, n, events_rounds))
            row(f"native iteration, {n} events", native_with_events(n, events_rounds))
    finally:
        guest.close()
    for n in (0, 1, 10, 100, 1000):
        go_poll, ep_poll, decode = selector_poll(n, reps)
        row(f"GoSelector.poll, {n} ready", go_poll)
        row(f"EpollSelector.select(0), {n} ready", ep_poll)
        row(f"GoSelector.decode({n})", decode)

    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:{width}}  {r['us']:9.2f} µs  {r['note']}")


if __name__ == "__main__":
    main()
