"""The same workloads written for Trio (native ``trio.run`` and Trio's guest
mode), measuring the same things the same way as ``aio.py``."""

from __future__ import annotations

import time
from typing import Any

import trio

from .common import Context, SteadySampler, idle_result, process_sample, summary_ms


async def _receive_exactly(stream: trio.SocketStream, n: int) -> None:
    while n:
        data = await stream.receive_some(n)
        if not data:
            raise EOFError("the peer closed the connection")
        n -= len(data)


async def tick(ctx: Context) -> dict[str, Any]:
    clock = time.perf_counter
    end = clock() + ctx.params["warmup"]
    while clock() < end:
        await trio.sleep(0)
    n = 0
    start = now = clock()
    end = start + ctx.params["tick_seconds"]
    while now < end:
        for _ in range(10):
            await trio.sleep(0)
        n += 10
        now = clock()
    return {"us_per_iter": (now - start) / n * 1e6, "iters": n}


async def echo(ctx: Context) -> dict[str, Any]:
    stream = await trio.open_tcp_stream(*ctx.peer)
    async with stream:
        clock = time.perf_counter
        end = clock() + ctx.params["warmup"]
        while clock() < end:
            await stream.send_all(b"x")
            await _receive_exactly(stream, 1)
        n = 0
        start = now = clock()
        end = start + ctx.params["echo_seconds"]
        while now < end:
            await stream.send_all(b"x")
            await _receive_exactly(stream, 1)
            n += 1
            now = clock()
    return {"us_per_rt": (now - start) / n * 1e6, "round_trips": n}


async def many(ctx: Context) -> dict[str, Any]:
    count = ctx.params["many_connections"]
    done = 0
    streams: list[trio.SocketStream] = []

    async def connect() -> None:
        streams.append(await trio.open_tcp_stream(*ctx.peer))

    async def client(stream: trio.SocketStream) -> None:
        nonlocal done
        while True:
            await stream.send_all(b"x")
            await _receive_exactly(stream, 1)
            done += 1

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(connect)
    connect_s = time.perf_counter() - t0
    try:
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(client, stream)
            await trio.sleep(ctx.params["warmup"] * 2)
            before, start = done, time.perf_counter()
            await trio.sleep(ctx.params["many_seconds"])
            after, end = done, time.perf_counter()
            nursery.cancel_scope.cancel()
    finally:
        for stream in streams:
            await stream.aclose()
    return {
        "rt_per_s": (after - before) / (end - start),
        "connections": count,
        "connect_s": connect_s,
    }


async def timers(ctx: Context) -> dict[str, Any]:
    delay = ctx.params["timer_delay"]
    clock = time.perf_counter
    await trio.sleep(delay)
    over = []
    for _ in range(ctx.params["timer_count"]):
        t0 = clock()
        await trio.sleep(delay)
        over.append(clock() - t0 - delay)
    return summary_ms(over, "overshoot")


async def idle(ctx: Context) -> dict[str, Any]:
    await trio.sleep(0.2)
    sampler = SteadySampler(ctx.params["idle_seconds"])
    sampler.start()
    before = process_sample()
    t0 = time.perf_counter()
    await trio.sleep(ctx.params["idle_seconds"])
    wall = time.perf_counter() - t0
    return idle_result(before, process_sample(), wall, sampler)


async def hostresp(ctx: Context) -> dict[str, Any]:
    ticks = 0
    moved = 0
    size = ctx.params["flood_chunk"]
    chunk = b"y" * size

    async def spin() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0)
            ticks += 1

    async def pump(stream: trio.SocketStream) -> None:
        nonlocal moved
        while True:
            await stream.send_all(chunk)
            await _receive_exactly(stream, size)
            moved += size

    streams = [
        await trio.open_tcp_stream(*ctx.peer) for _ in range(ctx.params["flood_connections"])
    ]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spin)
            for stream in streams:
                nursery.start_soon(pump, stream)
            await trio.sleep(ctx.params["warmup"] * 2)
            ticks0, moved0, t0 = ticks, moved, time.perf_counter()
            ctx.probe.start()
            await trio.sleep(ctx.params["host_seconds"])
            ctx.probe.stop()
            wall = time.perf_counter() - t0
            ticks1, moved1 = ticks, moved
            nursery.cancel_scope.cancel()
    finally:
        for stream in streams:
            await stream.aclose()
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
