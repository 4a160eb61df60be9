"""start_guest_run: the basic contract, with the queue host from conftest.

A guest run must behave like asyncio.run(coro); where asyncio.run's behaviour
is the reference, the test computes it with asyncio.run and compares.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time

import outcome
import pytest

import aioguest
from conftest import PROMPT, running_loop_in_host

# A "prompt" wake-up: generous for a loaded 2-core CI machine, and still 50x
# below the 100 s the guest would otherwise sleep.


# ---------------------------------------------------------------------------
# results


def test_return_value_reaches_done_callback(host):
    async def main():
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return "ok", threading.get_ident()

    out = host.run(main())
    assert out == outcome.Value(("ok", threading.get_ident()))  # ran on the host thread


def test_exception_reaches_done_callback_as_same_object(host):
    exc = KeyError("whoopsiedaisy")

    async def main():
        await asyncio.sleep(0.01)
        raise exc

    out = host.run(main())
    assert isinstance(out, outcome.Error)
    assert out.error is exc
    assert out.error.args == ("whoopsiedaisy",)


def test_start_returns_main_task_before_running_guest_code(host):
    seen = []

    async def main():
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        return 7

    task = host.start(main())
    assert isinstance(task, asyncio.Task)
    # start_guest_run only scheduled the first turn, through the
    # not-threadsafe callback since we gave one
    assert seen == []
    assert not task.done()
    assert (host.not_threadsafe_calls, host.threadsafe_calls) == (1, 0)
    assert host.pump() == outcome.Value(7)
    assert seen == [task]
    assert task.done() and task.result() == 7


def test_without_not_threadsafe_callback_uses_threadsafe_one(host):
    async def main():
        for _ in range(3):
            await asyncio.sleep(0)
            await asyncio.sleep(0.01)
        return "ok"

    task = host.start(main(), not_threadsafe=False)
    assert host.threadsafe_calls == 1  # the first turn
    assert host.pump() == outcome.Value("ok")
    assert host.not_threadsafe_calls == 0
    assert task.result() == "ok"


def test_not_threadsafe_callback_only_called_on_host_thread(worker_host, spawn):
    """Waits end on a worker thread; its wake-up must come through the
    threadsafe callback, never the not-threadsafe one (the host records any
    off-thread call as a violation and the run fails)."""
    host = worker_host

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(3):
            await asyncio.sleep(0.01)
            await asyncio.sleep(0)
        await loop.run_in_executor(None, time.sleep, 0.01)
        fut = loop.create_future()
        spawn(loop.call_soon_threadsafe, fut.set_result, None, delay=0.01)
        await asyncio.wait_for(fut, 5)

    assert host.run(main()) == outcome.Value(None)
    assert host.violations == []
    assert host.not_threadsafe_calls >= 1
    assert host.threadsafe_callers - {host.thread_id}, "no wake-up came from another thread"


def test_two_runs_one_after_another(host):
    async def main(n):
        await asyncio.sleep(0.01)
        return n

    assert host.run(main(1)) == outcome.Value(1)
    second = type(host)()
    assert second.run(main(2)) == outcome.Value(2)


# ---------------------------------------------------------------------------
# asyncio.run options


@pytest.mark.parametrize("debug", [True, False])
def test_debug_reaches_loop(host, debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert host.run(main(), debug=debug) == outcome.Value(debug)


def test_debug_none_is_asyncio_run_default(host):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert host.run(main(), debug=None) == outcome.Value(asyncio.run(main()))


class MyLoop(asyncio.SelectorEventLoop):
    pass


@pytest.mark.parametrize("selector", ["default", "go"])
def test_loop_factory_loop_runs_the_guest(host, spawn, selector):
    """The factory's loop is the running loop, and can wait for I/O, whether
    it brought its own (stdlib) selector or a GoSelector."""
    made = []

    def factory():
        loop = MyLoop() if selector == "default" else MyLoop(aioguest.GoSelector())
        made.append(loop)
        return loop

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            spawn(b.send, b"ping", delay=0.1)
            data = await asyncio.wait_for(loop.sock_recv(a, 10), 5)
        return loop, data

    loop, data = host.run(main(), loop_factory=factory).unwrap()
    assert len(made) == 1 and loop is made[0]
    assert isinstance(loop, MyLoop)
    assert data == b"ping"
    assert loop.is_closed()


# ---------------------------------------------------------------------------
# contextvars

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_contextvar_flows_into_guest_and_not_back(host):
    host_seen = []

    async def main():
        loop = asyncio.get_running_loop()
        seen = var.get()
        var.set("guest")
        fut = loop.create_future()

        def host_code():
            host_seen.append(var.get())
            loop.call_soon(fut.set_result, None)

        host.in_host(host_code)
        await asyncio.wait_for(fut, 5)
        return seen, var.get()

    token = var.set("host")
    try:
        assert host.run(main()) == outcome.Value(("host", "guest"))
        assert host_seen == ["host"]
        assert var.get() == "host"
    finally:
        var.reset(token)


def test_context_is_captured_at_start_guest_run(host):
    """Like asyncio.run(coro): the guest gets the caller's context as it was
    at the call, not whatever context the host later runs callbacks in."""

    async def main():
        return var.get()

    token = var.set("at start")
    try:
        host.start(main())
        var.set("after start")
        assert host.pump() == outcome.Value("at start")
    finally:
        var.reset(token)


# ---------------------------------------------------------------------------
# host code acting on the guest loop between turns


def test_host_cancels_main_task_while_guest_sleeps(host):
    async def main():
        await asyncio.sleep(100)

    task = host.start(main())
    host.call_later(0.1, task.cancel)
    t0 = time.monotonic()
    out = host.pump(timeout=10)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert time.monotonic() - t0 < PROMPT
    assert task.cancelled()


def test_host_sets_guest_event_and_guest_wakes_promptly(host):
    record = {}

    async def main():
        ev = asyncio.Event()

        def host_code():
            record["loop in host"] = running_loop_in_host()
            record["set at"] = time.monotonic()
            ev.set()

        host.call_later(0.1, host_code)
        await ev.wait()
        return time.monotonic()

    woke = host.run(main()).unwrap()
    assert record["loop in host"] is None
    assert woke - record["set at"] < PROMPT


def test_host_call_soon_runs_promptly_while_guest_sleeps(host):
    record = {}

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def host_code():
            # between turns the guest loop is not running...
            record["loop in host"] = running_loop_in_host()
            record["scheduled at"] = time.monotonic()
            # ...but the host may use its not-threadsafe API directly
            loop.call_soon(lambda: fut.set_result(time.monotonic()))

        host.call_later(0.1, host_code)
        return await asyncio.wait_for(fut, 100)

    ran_at = host.run(main()).unwrap()
    assert record["loop in host"] is None
    assert 0 <= ran_at - record["scheduled at"] < PROMPT


def test_host_call_later_that_is_new_earliest_timer(host):
    record = {}

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def host_code():
            record["t0"] = loop.time()
            loop.call_later(0.05, lambda: fut.set_result(loop.time()))

        host.call_later(0.05, host_code)
        # the guest's own earliest timer is 100 s away
        return await asyncio.wait_for(fut, 100)

    fired = host.run(main()).unwrap()
    assert 0.05 <= fired - record["t0"] < PROMPT


def test_host_call_later_that_is_not_earliest_timer(host):
    """A later timer added by the host neither fires early nor disturbs the
    guest's earlier timer."""
    record = {"late fired": False}

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def host_code():
            record["t_host"] = loop.time()
            loop.call_later(5, record.__setitem__, "late fired", True)
            loop.call_later(0.3, lambda: fut.set_result(loop.time()))

        t0 = loop.time()
        host.call_later(0.05, host_code)
        await asyncio.sleep(0.2)
        slept = loop.time() - t0
        assert "t_host" in record  # the host code ran during the sleep
        fired = await asyncio.wait_for(fut, 5)
        return slept, fired - record["t_host"]

    slept, fired_after = host.run(main()).unwrap()
    assert 0.2 <= slept < 0.2 + PROMPT
    assert 0.3 <= fired_after < 0.3 + PROMPT
    assert record["late fired"] is False


def test_host_create_task_runs(host):
    record = {}

    async def child(fut):
        await asyncio.sleep(0)
        fut.set_result(asyncio.current_task())

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def host_code():
            record["task"] = loop.create_task(child(fut))
            record["at"] = time.monotonic()

        host.call_later(0.1, host_code)
        return await asyncio.wait_for(fut, 100), time.monotonic()

    task, done_at = host.run(main()).unwrap()
    assert task is record["task"]
    assert done_at - record["at"] < PROMPT


def test_host_call_soon_threadsafe_between_turns(host):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        host.call_later(0.1, lambda: loop.call_soon_threadsafe(fut.set_result, "x"))
        return await asyncio.wait_for(fut, 100)

    t0 = time.monotonic()
    assert host.run(main()) == outcome.Value("x")
    assert time.monotonic() - t0 < PROMPT


# ---------------------------------------------------------------------------
# teardown, as asyncio.run does it


def test_pending_task_is_cancelled_at_teardown(host):
    record = []

    async def background():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            record.append("cancelled")
            raise
        finally:
            await asyncio.sleep(0)  # finally can still await: the loop runs
            record.append("finally")

    async def main():
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        return "main done"

    assert host.run(main()) == outcome.Value("main done")
    assert record == ["cancelled", "finally"]


def test_suspended_async_generator_is_closed_at_teardown(host):
    record = []
    keep = []  # keeps the generator alive until shutdown_asyncgens

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            record.append("agen finally")

    async def main():
        g = agen()
        keep.append(g)
        assert await g.__anext__() == 1

    try:
        assert host.run(main()) == outcome.Value(None)
        assert record == ["agen finally"]
    finally:
        keep.clear()


def test_default_executor_is_shut_down(host):
    async def main():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, threading.current_thread)

    worker = host.run(main()).unwrap()
    assert worker is not threading.current_thread()
    assert not worker.is_alive()  # joined before done_callback


def test_loop_is_closed_when_done_callback_runs(host):
    """asyncio.run returns only after closing the loop: so the outcome is
    delivered only after the whole teardown."""
    loops = []
    closed_at_done = []
    deliver = host.done_callback

    def done_callback(result):
        closed_at_done.append(loops[0].is_closed())
        deliver(result)

    host.done_callback = done_callback

    async def main():
        loops.append(asyncio.get_running_loop())

    assert host.run(main()) == outcome.Value(None)
    assert closed_at_done == [True]
    assert loops[0].is_closed()


def test_exception_during_teardown_goes_to_exception_handler(host):
    async def background():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            raise ValueError("teardown boom") from None

    def scenario(contexts):
        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda loop, ctx: contexts.append(ctx))
            loop.create_task(background())
            await asyncio.sleep(0)
            return "ok"

        return main()

    expected = []
    assert asyncio.run(scenario(expected)) == "ok"
    got = []
    assert host.run(scenario(got)) == outcome.Value("ok")

    def summary(contexts):
        return [(c["message"], type(c["exception"]), c["exception"].args) for c in contexts]

    assert summary(got) == summary(expected)
    assert "unhandled exception during asyncio.run() shutdown" in got[0]["message"]


def test_loop_stop_in_guest_ends_run_like_asyncio_run(host):
    async def main():
        asyncio.get_running_loop().stop()
        await asyncio.sleep(100)

    with pytest.raises(RuntimeError) as expected:
        asyncio.run(main())
    assert str(expected.value) == "Event loop stopped before Future completed."
    out = host.run(main())
    assert isinstance(out, outcome.Error)
    assert type(out.error) is RuntimeError
    assert out.error.args == expected.value.args


# ---------------------------------------------------------------------------
# scheduling: no polling, and time-slicing


def test_idle_guest_causes_no_wakeups(host):
    """No polling: while the guest sleeps for a second with nothing to do, the
    host is asked to run at most a wake-up or two (the end of the wait)."""

    async def main():
        await asyncio.sleep(0.01)
        before = host.guest_requests
        await asyncio.sleep(1)
        return host.guest_requests - before

    during_sleep = host.run(main()).unwrap()
    assert during_sleep <= 2
    # the whole run, start and teardown included, stays a small constant
    # (polling every 10 ms would be about 100)
    assert host.guest_requests <= 10


def test_busy_guest_yields_to_host(host):
    """Time-slicing: a guest that never waits (``sleep(0)`` in a loop) must
    still let the host run its own callbacks in between."""
    ticks = []
    stop = threading.Event()

    def tick():
        ticks.append(time.monotonic())
        if not stop.is_set():
            host.in_host(tick)

    async def main():
        t_end = time.monotonic() + 0.3
        start = len(ticks)
        while time.monotonic() < t_end:
            await asyncio.sleep(0)
        stop.set()
        return len(ticks) - start

    host.start(main())
    host.in_host(tick)
    during_busy_loop = host.pump().unwrap()
    assert during_busy_loop >= 5


@pytest.mark.parametrize("delay", [0, 1e-7, 1e-4, 1e-3])
def test_timers_at_or_below_kernel_granularity_complete(host, delay):
    """Waits shorter than epoll's 1 ms must be rounded up, not down to a busy
    poll nor to "no limit" (which would hang here: nothing else would wake
    the guest); and work a due timer schedules in the same loop iteration in
    which the turn decided to go idle must still run."""

    async def main():
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        for _ in range(200):
            await asyncio.sleep(delay)
        for _ in range(50):
            fut = loop.create_future()
            loop.call_later(delay, lambda f=fut: loop.call_soon(f.set_result, None))
            await fut
        return time.monotonic() - t0

    elapsed = host.run(main(), timeout=20).unwrap()
    assert elapsed < 10
