"""Other hosts: a queue host on a non-main thread, and Trio."""

from __future__ import annotations

import asyncio
import math
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome
import pytest
import sniffio
import trio

import aioguest
from conftest import QueueHost


def run_in_thread(fn: Callable[[], Any], timeout: float = 20) -> Any:
    """Run fn() in a new thread; return its result or raise its exception."""
    result: list[outcome.Outcome] = []
    t = threading.Thread(target=lambda: result.append(outcome.capture(fn)), name="test-host")
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "host thread did not finish"
    return result[0].unwrap()


async def guest_work(tag: str) -> tuple[str, bytes, bytes]:
    """A bit of everything: timers, socket I/O, executor, subprocess."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        await asyncio.sleep(0.05)
        loop.call_later(0.05, b.send, tag.encode())
        data = await asyncio.wait_for(loop.sock_recv(a, 100), 5)
    await loop.run_in_executor(None, time.sleep, 0.01)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child')", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return tag, data, out


# ---------------------------------------------------------------------------
# non-main threads


def test_run_from_non_main_thread():
    def host_thread():
        host = QueueHost()
        out = host.run(guest_work("t"), timeout=30)
        return out, host.thread_id

    out, host_thread_id = run_in_thread(host_thread, timeout=40)
    assert host_thread_id != threading.get_ident()
    assert out == outcome.Value(("t", b"t", b"child\n"))


def test_two_runs_at_once_on_one_host_thread():
    """Supported: each turn is one run_forever() of its own loop, and between
    turns neither loop is running, so two guests interleave on one thread."""
    callbacks: queue.SimpleQueue = queue.SimpleQueue()
    results: dict = {}
    seen_loops = []

    async def guest(name, delay, rounds):
        seen_loops.append((name, asyncio.get_running_loop()))
        for _ in range(rounds):
            await asyncio.sleep(delay)
            seen_loops.append((name, asyncio.get_running_loop()))
        return name

    for name, delay, rounds in (("a", 0.01, 5), ("b", 0.015, 3)):
        aioguest.start_guest_run(
            guest(name, delay, rounds),
            run_sync_soon_threadsafe=callbacks.put,
            done_callback=lambda out, name=name: results.__setitem__(name, out),
        )
    deadline = time.monotonic() + 10
    while len(results) < 2 and time.monotonic() < deadline:
        try:
            callbacks.get(timeout=0.5)()
        except queue.Empty:
            pass
    assert {k: v.unwrap() for k, v in results.items()} == {"a": "a", "b": "b"}
    loops = {name: {id(loop) for n, loop in seen_loops if n == name} for name in "ab"}
    assert len(loops["a"]) == 1 and len(loops["b"]) == 1 and loops["a"] != loops["b"]


def test_two_runs_at_once_on_two_host_threads():
    """Two independent guest runs (two loops, two workers, one Go runtime)."""
    barrier = threading.Barrier(2, timeout=10)

    async def guest(tag):
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        return await guest_work(tag)

    results: dict[str, Any] = {}

    def host_thread(tag):
        results[tag] = QueueHost().run(guest(tag), timeout=30)

    threads = [threading.Thread(target=host_thread, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads)
    assert results == {
        "a": outcome.Value(("a", b"a", b"child\n")),
        "b": outcome.Value(("b", b"b", b"child\n")),
    }


def test_guest_on_main_thread_and_guest_on_other_thread_at_once(host):
    barrier = threading.Barrier(2, timeout=10)

    async def guest(tag):
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        return await guest_work(tag)

    other: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: other.setdefault("out", QueueHost().run(guest("other"), timeout=30))
    )
    t.start()
    try:
        assert host.run(guest("main"), timeout=30) == outcome.Value(("main", b"main", b"child\n"))
    finally:
        t.join(40)
    assert other["out"] == outcome.Value(("other", b"other", b"child\n"))


# ---------------------------------------------------------------------------
# Trio as the host


def aio_in_trio(
    make_guest: Callable[[trio.lowlevel.TrioToken], Any],
    *,
    pass_not_threadsafe: bool = True,
    trio_side: Callable[..., Any] | None = None,
) -> tuple[outcome.Outcome, Any, dict[str, Any]]:
    """trio.run a host that starts make_guest(token) as an asyncio guest and
    waits (bounded) for its done_callback."""
    info: dict[str, Any] = {}

    async def trio_main():
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        results: list[outcome.Outcome] = []
        trio_thread = threading.get_ident()

        def done_callback(result):
            info["done on trio thread"] = threading.get_ident() == trio_thread
            info["done callbacks"] = info.get("done callbacks", 0) + 1
            results.append(result)
            done.set()

        kwargs = {}
        if pass_not_threadsafe:
            kwargs["run_sync_soon_not_threadsafe"] = token.run_sync_soon
        info["wakeup fd before"] = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(info["wakeup fd before"], warn_on_full_buffer=False)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                if trio_side is not None:
                    nursery.start_soon(trio_side)
                task = aioguest.start_guest_run(
                    make_guest(token),
                    run_sync_soon_threadsafe=token.run_sync_soon,
                    done_callback=done_callback,
                    **kwargs,
                )
                await done.wait()
            await trio.sleep(0.05)  # a stray second done_callback would show up here
        info["wakeup fd after"] = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(info["wakeup fd after"], warn_on_full_buffer=False)
        return results[0], task

    result, task = trio.run(trio_main)
    assert info["done callbacks"] == 1
    assert info["done on trio thread"]
    # Trio's own wakeup fd (main thread) survives the guest run
    assert info["wakeup fd after"] == info["wakeup fd before"]
    return result, task, info


def test_trio_host_runs_guest_to_completion():
    async def guest():
        await asyncio.sleep(0.01)
        return sniffio.current_async_library()

    result, task, _ = aio_in_trio(lambda token: guest())
    assert result == outcome.Value("asyncio")
    assert task.done() and task.result() == "asyncio"


@pytest.mark.parametrize("pass_not_threadsafe", [True, False])
@pytest.mark.parametrize("how", ["call_soon", "call_soon_threadsafe", "put_nowait"])
def test_trio_and_guest_exchange_data(how, pass_not_threadsafe):
    """Round trips guest -> Trio (token.run_sync_soon) -> guest (the guest
    loop's API, used from Trio code between guest turns)."""
    send_to_trio, receive_from_guest = trio.open_memory_channel(math.inf)
    inbox: list[Any] = []  # (guest loop, asyncio.Queue), once the guest runs
    libraries = {"guest": set(), "trio": set()}

    async def trio_side():
        async with receive_from_guest:
            async for x in receive_from_guest:
                libraries["trio"].add(sniffio.current_async_library())
                await trio.sleep(0.01)  # the guest is idle meanwhile
                loop, q = inbox[0]
                if how == "call_soon":
                    loop.call_soon(q.put_nowait, x * 10)
                elif how == "call_soon_threadsafe":
                    loop.call_soon_threadsafe(q.put_nowait, x * 10)
                else:
                    q.put_nowait(x * 10)  # wakes the getter directly

    async def guest(token):
        q: asyncio.Queue[int] = asyncio.Queue()
        inbox.append((asyncio.get_running_loop(), q))
        got = []
        for i in range(5):
            libraries["guest"].add(sniffio.current_async_library())
            token.run_sync_soon(send_to_trio.send_nowait, i)
            got.append(await asyncio.wait_for(q.get(), 5))
        token.run_sync_soon(send_to_trio.close)
        return got

    result, _, _ = aio_in_trio(guest, pass_not_threadsafe=pass_not_threadsafe, trio_side=trio_side)
    assert result == outcome.Value([0, 10, 20, 30, 40])
    assert libraries == {"guest": {"asyncio"}, "trio": {"trio"}}


def test_trio_host_guest_io_and_trio_timers_interleave():
    """While the guest waits on I/O, Trio keeps running its own timers."""
    trio_ticks = []

    async def trio_side():
        for _ in range(5):
            await trio.sleep(0.02)
            trio_ticks.append(time.monotonic())

    async def guest(token):
        t0 = time.monotonic()
        result = await guest_work("trio")
        return result, t0

    result, _, _ = aio_in_trio(guest, trio_side=trio_side)
    (tag, data, out), t0 = result.unwrap()
    assert (tag, data, out) == ("trio", b"trio", b"child\n")
    assert len(trio_ticks) == 5


def test_trio_host_guest_exception():
    async def guest():
        await asyncio.sleep(0)
        raise ValueError("from guest")

    result, _, _ = aio_in_trio(lambda token: guest())
    assert isinstance(result, outcome.Error)
    assert isinstance(result.error, ValueError) and result.error.args == ("from guest",)
