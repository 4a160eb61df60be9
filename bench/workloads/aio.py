"""The workloads, written for asyncio.

Each is ``async def name(ctx) -> dict`` and measures itself with the
monotonic clock from inside the loop, so one implementation serves native
asyncio, every asyncio guest mode, qasync and trio-asyncio alike.  Plain
streams API throughout: what an application would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .common import Context, SteadySampler, idle_result, process_sample, summary_ms


async def tick(ctx: Context) -> dict[str, Any]:
    """The cost of one loop iteration: ``await asyncio.sleep(0)`` in a loop."""
    clock = time.perf_counter
    end = clock() + ctx.params["warmup"]
    while clock() < end:
        await asyncio.sleep(0)
    n = 0
    start = clock()
    end = start + ctx.params["tick_seconds"]
    now = start
    while now < end:
        # Batches of 10 keep the clock out of the measurement yet stop
        # close to the deadline even for contenders at ~1 ms an iteration.
        for _ in range(10):
            await asyncio.sleep(0)
        n += 10
        now = clock()
    return {"us_per_iter": (now - start) / n * 1e6, "iters": n}


async def echo(ctx: Context) -> dict[str, Any]:
    """Wake-up latency: 1-byte round trips with the peer process."""
    reader, writer = await asyncio.open_connection(*ctx.peer)
    try:
        clock = time.perf_counter
        end = clock() + ctx.params["warmup"]
        while clock() < end:
            writer.write(b"x")
            await reader.readexactly(1)
        n = 0
        start = now = clock()
        end = start + ctx.params["echo_seconds"]
        while now < end:
            writer.write(b"x")
            await reader.readexactly(1)
            n += 1
            now = clock()
        return {"us_per_rt": (now - start) / n * 1e6, "round_trips": n}
    finally:
        writer.close()


async def many(ctx: Context) -> dict[str, Any]:
    """Throughput of many concurrent connections, each echoing 1 byte."""
    count = ctx.params["many_connections"]
    done = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal done
        while True:
            writer.write(b"x")
            await reader.readexactly(1)
            done += 1

    t0 = time.perf_counter()
    conns = await asyncio.gather(*(asyncio.open_connection(*ctx.peer) for _ in range(count)))
    connect_s = time.perf_counter() - t0
    tasks = [asyncio.create_task(client(r, w)) for r, w in conns]
    try:
        await asyncio.sleep(ctx.params["warmup"] * 2)
        before, start = done, time.perf_counter()
        await asyncio.sleep(ctx.params["many_seconds"])
        after, end = done, time.perf_counter()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in conns:
            writer.close()
    return {
        "rt_per_s": (after - before) / (end - start),
        "connections": count,
        "connect_s": connect_s,
    }


async def timers(ctx: Context) -> dict[str, Any]:
    """Overshoot of ``asyncio.sleep(delay)`` past its deadline."""
    delay = ctx.params["timer_delay"]
    clock = time.perf_counter
    await asyncio.sleep(delay)
    over = []
    for _ in range(ctx.params["timer_count"]):
        t0 = clock()
        await asyncio.sleep(delay)
        over.append(clock() - t0 - delay)
    return summary_ms(over, "overshoot")


async def idle(ctx: Context) -> dict[str, Any]:
    """Whole-process CPU time and wake-ups while the loop sleeps."""
    # Let start-up work (imports, first turns, thread starts) settle.
    await asyncio.sleep(0.2)
    sampler = SteadySampler(ctx.params["idle_seconds"])
    sampler.start()
    before = process_sample()
    t0 = time.perf_counter()
    await asyncio.sleep(ctx.params["idle_seconds"])
    wall = time.perf_counter() - t0
    return idle_result(before, process_sample(), wall, sampler)


async def hostresp(ctx: Context) -> dict[str, Any]:
    """The host timer's lateness while the loop is saturated: a tick loop
    plus streams flooding data through the peer."""
    stop = False
    ticks = 0
    moved = 0
    chunk = b"y" * ctx.params["flood_chunk"]

    async def spin() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0)
            ticks += 1

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal moved
        while not stop:
            writer.write(chunk)
            await writer.drain()
            await reader.readexactly(len(chunk))
            moved += len(chunk)

    conns = [
        await asyncio.open_connection(*ctx.peer) for _ in range(ctx.params["flood_connections"])
    ]
    tasks = [asyncio.create_task(spin())]
    tasks += [asyncio.create_task(pump(r, w)) for r, w in conns]
    try:
        await asyncio.sleep(ctx.params["warmup"] * 2)
        ticks0, moved0, t0 = ticks, moved, time.perf_counter()
        ctx.probe.start()
        await asyncio.sleep(ctx.params["host_seconds"])
        ctx.probe.stop()
        wall = time.perf_counter() - t0
        ticks1, moved1 = ticks, moved
    finally:
        stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in conns:
            with contextlib.suppress(Exception):
                writer.close()
    result: dict[str, Any] = summary_ms(ctx.probe.late, "late")
    result["ticks_per_s"] = (ticks1 - ticks0) / wall
    result["flood_mb_per_s"] = (moved1 - moved0) / wall / 1e6
    return result


WORKLOADS = {
    "tick": tick,
    "echo": echo,
    "many": many,
    "timers": timers,
    "idle": idle,
    "hostresp": hostresp,
}
