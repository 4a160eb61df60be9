"""aioguest.hosts.asyncio: a guest asyncio loop inside a host asyncio loop.

Every host-loop test runs the host loop with a deadline (``asyncio.wait_for``
around the test's main coroutine), in both waiting modes (the host's
selector watching the guest poller's fd, and the Go worker thread) and,
where the host loop's flavour matters, on the stdlib loop in debug mode
(which checks thread affinity and reports slow callbacks) and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import aioguest
from aioguest.hosts import asyncio as aio_host
from conftest import PROMPT

TIMEOUT = 20

cv: contextvars.ContextVar[str] = contextvars.ContextVar("cv", default="unset")


def new_uvloop() -> asyncio.AbstractEventLoop:
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@pytest.fixture(scope="session")
def uvloop_baseline(go_runtime: None) -> None:
    """libuv opens process-wide fds (signal pipes, an io_uring, an epoll
    fd) the first time a uvloop loop runs and keeps them: open them before
    any test's leak-check baseline."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return

    async def main() -> None:
        for watch in (True, False):
            await asyncio.wait_for(aio_host.run(asyncio.sleep(0.001), watch_poller=watch), TIMEOUT)

    run_host(main, new_loop=new_uvloop)


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until predicate() holds (run_host's deadline bounds it)."""
    while not predicate():
        await asyncio.sleep(0.001)


def run_host(
    main: Callable[[], Awaitable[Any]],
    *,
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    debug: bool = False,
    timeout: float = TIMEOUT,
) -> Any:
    """asyncio.run(main()) on a loop from *new_loop*, with a deadline.

    Like asyncio.run, leftover host tasks are cancelled and awaited before
    the loop closes (which is what lets the adapter's keeper tear a
    forgotten guest down)."""
    loop = new_loop()
    loop.set_debug(debug)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


@pytest.fixture(params=["watch", "worker"])
def watch_poller(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "watch")


@pytest.fixture(params=["asyncio", "asyncio-debug", "uvloop"])
def host_run(request: pytest.FixtureRequest, uvloop_baseline: None) -> Callable[..., Any]:
    """Runs a main coroutine function in a host loop of each flavour."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
        return lambda main, **kw: run_host(main, new_loop=new_uvloop, **kw)
    debug = request.param == "asyncio-debug"
    return lambda main, **kw: run_host(main, debug=debug, **kw)


def current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


# ---------------------------------------------------------------------------
# Opting in


def test_plain_start_guest_run_in_a_running_loop_still_raises():
    """The adapter is the explicit opt-in; the generic entry point keeps
    refusing, because under a running loop it is almost always a mistake."""

    async def guest() -> None:
        pass

    async def main() -> None:
        coro = guest()
        with pytest.raises(RuntimeError, match="cannot be called from a running asyncio event"):
            aioguest.start_guest_run(
                coro, run_sync_soon_threadsafe=lambda fn: None, done_callback=lambda o: None
            )
        assert coro.cr_frame is None, "the refused coroutine was not closed"
        assert asyncio.get_running_loop() is host_loop

    host_loop = asyncio.new_event_loop()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "never awaited"
            host_loop.run_until_complete(main())
    finally:
        host_loop.close()


def test_start_needs_a_host_loop():
    async def guest() -> None:
        pass

    coro = guest()
    with pytest.raises(RuntimeError, match="needs a host loop"):
        aio_host.start(coro)
    assert coro.cr_frame is None


def test_start_before_the_host_loop_runs(watch_poller):
    """start(loop=...) on the loop's thread before the loop runs: the first
    turn waits in the loop's queue."""

    async def guest() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    loop = asyncio.new_event_loop()
    try:
        g = aio_host.start(guest(), loop=loop, watch_poller=watch_poller)
        assert not g.done()
        assert loop.run_until_complete(asyncio.wait_for(aio_host.wait(g), TIMEOUT)) == "ok"
    finally:
        loop.close()


def test_start_from_another_thread_is_refused():
    async def guest() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []

        def other() -> None:
            coro = guest()
            try:
                aio_host.start(coro, loop=loop)
            except RuntimeError as exc:
                errors.append(exc)
            assert coro.cr_frame is None

        t = threading.Thread(target=other)
        t.start()
        await loop.run_in_executor(None, t.join, TIMEOUT)
        assert len(errors) == 1 and "host loop's thread" in str(errors[0])

    run_host(main)


# ---------------------------------------------------------------------------
# Two worlds on one thread


def test_host_and_guest_each_see_their_own_loop_and_task(host_run, watch_poller):
    seen: dict[str, Any] = {}

    async def guest() -> None:
        seen["guest running loop"] = asyncio.get_running_loop()
        seen["guest get_event_loop"] = asyncio.get_event_loop()
        seen["guest policy loop"] = asyncio.get_event_loop_policy().get_event_loop()
        seen["guest current task"] = asyncio.current_task()
        await asyncio.sleep(0.01)
        seen["guest loop after sleep"] = asyncio.get_running_loop()
        # A callback the guest loop runs, with no task.
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(
            lambda: fut.set_result((asyncio.get_running_loop(), current_task()))
        )
        seen["guest callback"] = await fut

    async def main() -> None:
        host_loop = asyncio.get_running_loop()
        asyncio.set_event_loop(host_loop)  # as asyncio.run does
        try:
            me = asyncio.current_task()
            g = aio_host.start(guest(), watch_poller=watch_poller)
            assert asyncio.get_running_loop() is host_loop and asyncio.current_task() is me
            await asyncio.sleep(0)
            assert asyncio.get_running_loop() is host_loop and asyncio.current_task() is me
            await aio_host.wait(g)
            assert asyncio.get_running_loop() is host_loop and asyncio.current_task() is me
            seen["host loop"] = host_loop
            seen["guest"] = g
        finally:
            asyncio.set_event_loop(None)

    host_run(main)
    g = seen["guest"]
    guest_loop = g.task.get_loop()
    assert guest_loop is not seen["host loop"]
    assert seen["guest running loop"] is guest_loop
    assert seen["guest get_event_loop"] is guest_loop
    assert seen["guest loop after sleep"] is guest_loop
    assert seen["guest current task"] is g.task
    assert seen["guest callback"] == (guest_loop, None)
    # The guest never set_event_loop()s itself (see docs/hosts.md): code that
    # asks the policy directly, bypassing get_running_loop, gets the host's.
    assert seen["guest policy loop"] is seen["host loop"]


def test_contextvars_flow_into_the_guest_and_not_back(watch_poller):
    async def guest() -> tuple[str, str]:
        before = cv.get()
        cv.set("guest")
        inside = await aio_host.run_in_host(host_side())
        return before, inside

    async def host_side() -> str:
        value = cv.get()  # a copy of the guest task's context
        cv.set("changed by host_side")
        return value

    async def main() -> None:
        cv.set("host")
        g = aio_host.start(guest(), watch_poller=watch_poller)
        assert await aio_host.wait(g) == ("host", "guest")
        assert cv.get() == "host"

        async def reads() -> str:
            return cv.get()

        g = aio_host.start(asyncio.sleep(10), watch_poller=watch_poller)
        cv.set("host again")
        assert await aio_host.run_in_guest(g, reads()) == "host again"
        await aio_host.cancel_and_wait(g)

    run_host(main)


def test_host_and_guest_tasks_interleave(host_run, watch_poller):
    events: list[str] = []

    async def ticker(name: str, n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0.005)
            events.append(name)

    async def main() -> None:
        g = aio_host.start(ticker("guest", 10), watch_poller=watch_poller)
        await ticker("host", 10)
        await aio_host.wait(g)

    host_run(main)
    assert events.count("host") == 10 and events.count("guest") == 10
    switches = sum(a != b for a, b in zip(events, events[1:], strict=False))
    assert switches >= 4, f"host and guest did not interleave: {events}"


def test_busy_guest_does_not_starve_host_timers(host_run, watch_poller):
    spins = [0]

    async def busy() -> None:
        while True:
            await asyncio.sleep(0)
            spins[0] += 1

    async def main() -> int:
        g = aio_host.start(busy(), watch_poller=watch_poller)
        ticks = 0
        while ticks < 5:  # the run's deadline fails the test if they stop
            await asyncio.sleep(0.01)
            ticks += 1
        await aio_host.cancel_and_wait(g)
        assert g.cancelled()
        return ticks

    assert host_run(main) == 5
    assert spins[0] > 10


async def guest_io() -> tuple[bytes, str, bytes]:
    """Sockets, a timer, the default executor and a subprocess, in the guest."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        loop.call_later(0.02, b.send, b"ping")
        data = await asyncio.wait_for(loop.sock_recv(a, 100), TIMEOUT)
    name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child')", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return data, name, out


def test_guest_io_executor_and_subprocess(host_run, watch_poller):
    async def main() -> Any:
        return await aio_host.run(guest_io(), watch_poller=watch_poller)

    data, executor_thread, out = host_run(main)
    assert (data, out) == (b"ping", b"child\n")
    assert executor_thread != threading.current_thread().name


def test_watching_the_poller_needs_no_worker_thread(watch_poller):
    """In watch mode the host's selector waits for the guest; only the
    worker mode has a thread blocked on the guest's behalf."""
    counts: list[int] = []

    async def guest() -> None:
        await asyncio.sleep(0.05)

    async def main() -> None:
        before = threading.active_count()
        g = aio_host.start(guest(), watch_poller=watch_poller)
        await asyncio.sleep(0.02)  # the guest is waiting now
        counts.append(threading.active_count() - before)
        await aio_host.wait(g)

    run_host(main)
    assert counts == [0 if watch_poller else 1]


def test_host_code_wakes_an_idle_guest(watch_poller):
    """Setting a guest asyncio.Event from host code, between turns."""

    async def main() -> None:
        box: list[asyncio.Event] = []

        async def guest() -> float:
            box.append(asyncio.Event())
            await box[0].wait()
            return time.monotonic()

        g = aio_host.start(guest(), watch_poller=watch_poller)
        while not box:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)  # the guest is idle, waiting without timeout
        box[0].set()
        t0 = time.monotonic()
        woke = await aio_host.wait(g)
        assert woke - t0 < PROMPT  # prompt, not at some later poll

    run_host(main)


# ---------------------------------------------------------------------------
# Waiting, cancelling, structure


def test_run_returns_the_result_and_raises_the_exception(watch_poller):
    async def ok() -> int:
        await asyncio.sleep(0.001)
        return 42

    async def fails() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("from the guest")

    async def main() -> None:
        assert await aio_host.run(ok(), watch_poller=watch_poller) == 42
        with pytest.raises(ValueError, match="from the guest"):
            await aio_host.run(fails(), watch_poller=watch_poller)
        g = aio_host.start(fails(), watch_poller=watch_poller)
        with pytest.raises(ValueError, match="from the guest"):
            await aio_host.wait(g)
        assert isinstance(g.exception(), ValueError)

    run_host(main)


def test_loop_factory_failure_reaches_wait():
    def factory() -> asyncio.AbstractEventLoop:
        raise OSError("no loop for you")

    async def main() -> None:
        with pytest.raises(OSError, match="no loop for you"):
            await aio_host.run(asyncio.sleep(0), loop_factory=factory)

    run_host(main)


def test_cancelled_waiter_cancels_the_guest_and_waits_for_its_teardown(watch_poller):
    log: list[str] = []

    async def guest() -> None:
        log.append("started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # teardown that takes guest turns
            log.append("guest teardown done")

    async def main() -> None:
        g = aio_host.start(guest(), watch_poller=watch_poller)
        waiter = asyncio.ensure_future(aio_host.wait(g))
        await until(lambda: "started" in log)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("waiter cancelled")
        assert g.done() and g.cancelled()

    run_host(main)
    assert log == ["started", "guest teardown done", "waiter cancelled"]


def test_cancel_and_wait(watch_poller):
    async def guest() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)

    async def main() -> None:
        g = aio_host.start(guest(), watch_poller=watch_poller)
        await asyncio.sleep(0.01)
        await aio_host.cancel_and_wait(g)
        assert g.done() and g.cancelled()
        await aio_host.cancel_and_wait(g)  # already over: returns at once

    run_host(main)


def test_open_guest(watch_poller):
    log: list[str] = []

    async def forever() -> None:
        log.append("forever started")
        try:
            await asyncio.sleep(10)
        finally:
            log.append("forever cancelled")

    async def fails() -> None:
        raise ValueError("guest failed")

    async def main() -> None:
        async with aio_host.open_guest(forever(), watch_poller=watch_poller) as g:
            await until(lambda: "forever started" in log)
            assert not g.done()
        assert g.cancelled() and log == ["forever started", "forever cancelled"]

        with pytest.raises(ValueError, match="guest failed"):
            async with aio_host.open_guest(fails(), watch_poller=watch_poller) as g:
                await asyncio.sleep(0.05)

        with pytest.raises(KeyError):  # the block's own exception wins
            async with aio_host.open_guest(forever(), watch_poller=watch_poller) as g:
                raise KeyError("body")
        assert g.cancelled()

    run_host(main)


def test_host_loop_shutdown_tears_a_forgotten_guest_down(host_run, watch_poller):
    """asyncio.run cancels leftover tasks before closing its loop; the
    guest's keeper task is one of them, and keeps the host loop running
    until the guest's teardown is complete: no abandoned guest."""
    log: list[str] = []
    box: list[aioguest.Guest[None]] = []

    async def guest() -> None:
        log.append("started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)
            log.append("teardown")

    async def main() -> None:
        box.append(aio_host.start(guest(), watch_poller=watch_poller))
        await until(lambda: "started" in log)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        host_run(main)
    assert box[0].cancelled() and log == ["started", "teardown"]


def test_host_loop_closed_under_a_busy_guest_reports_abandonment(watch_poller):
    """A loop closed with no chance to cancel (no asyncio.run teardown):
    the guest's queued turn is dropped with the loop's queue, which the
    core reports as abandonment (and closes the guest loop)."""

    async def busy() -> None:
        while True:
            await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    g = aio_host.start(busy(), loop=loop, watch_poller=watch_poller)
    assert g.task is not None
    guest_loop = g.task.get_loop()
    # Run host iterations until the busy guest has a turn queued.
    loop.run_until_complete(asyncio.sleep(0.02))
    with pytest.warns(RuntimeWarning, match="abandoned"):
        loop.close()
        # The loop's queue (holding the turn) goes with it.
        import gc

        gc.collect()
    assert guest_loop.is_closed()
    # The guest's main task and its keeper on the host loop stay pending
    # forever; asyncio would report each one when collected (what a user
    # sees in this situation, next to the warning), not worth it here.
    for task in (*asyncio.all_tasks(guest_loop), *asyncio.all_tasks(loop)):
        task._log_destroy_pending = False  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Across the loops


def test_run_in_guest(watch_poller):
    log: list[str] = []

    async def in_guest(x: int) -> tuple[int, bool]:
        await asyncio.sleep(0.001)
        return x * 2, asyncio.get_running_loop() is guest_loop[0]

    async def fails() -> None:
        raise KeyError("remote")

    async def slow() -> None:
        log.append("remote task started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)
            log.append("remote task finished")

    async def swallows() -> str:
        log.append("swallows started")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "swallowed"
        return "not cancelled"

    guest_loop: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        g = aio_host.start(asyncio.sleep(30), watch_poller=watch_poller)
        assert g.task is not None
        guest_loop.append(g.task.get_loop())
        assert await aio_host.run_in_guest(g, in_guest(21)) == (42, True)
        with pytest.raises(KeyError, match="remote"):
            await aio_host.run_in_guest(g, fails())
        waiter = asyncio.ensure_future(aio_host.run_in_guest(g, slow()))
        await until(lambda: "remote task started" in log)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("waiter cancelled")
        # As with awaiting a task: a task that swallows the cancellation
        # hands its result to the cancelled waiter.
        waiter = asyncio.ensure_future(aio_host.run_in_guest(g, swallows()))
        await until(lambda: "swallows started" in log)
        waiter.cancel()
        assert await waiter == "swallowed"
        await aio_host.cancel_and_wait(g)
        coro = in_guest(1)
        with pytest.raises(RuntimeError, match="guest run is over"):
            await aio_host.run_in_guest(g, coro)
        assert coro.cr_frame is None

    run_host(main)
    assert log == [
        "remote task started",
        "remote task finished",
        "waiter cancelled",
        "swallows started",
    ]


def test_run_in_guest_when_the_guest_ends_first(watch_poller):
    async def main() -> None:
        g = aio_host.start(asyncio.sleep(0.01), watch_poller=watch_poller)
        await asyncio.sleep(0)
        g.cancel()  # the guest ends before the submitted task can run
        with pytest.raises((RuntimeError, asyncio.CancelledError)):
            await aio_host.run_in_guest(g, asyncio.sleep(0))
        await aio_host.cancel_and_wait(g)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "never awaited"
        run_host(main)


def test_run_in_host(watch_poller):
    log: list[str] = []

    async def on_host(x: int) -> tuple[int, bool]:
        await asyncio.sleep(0.001)
        return x + 1, asyncio.get_running_loop() is host_loop[0]

    async def host_fails() -> None:
        raise LookupError("host side")

    async def host_slow() -> None:
        log.append("host task started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)
            log.append("host task finished")

    async def guest() -> Any:
        r = await aio_host.run_in_host(on_host(1))
        with pytest.raises(LookupError, match="host side"):
            await aio_host.run_in_host(host_fails())
        waiter = asyncio.ensure_future(aio_host.run_in_host(host_slow()))
        await until(lambda: "host task started" in log)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("guest waiter cancelled")
        return r

    host_loop: list[asyncio.AbstractEventLoop] = []

    async def main() -> Any:
        host_loop.append(asyncio.get_running_loop())
        return await aio_host.run(guest(), watch_poller=watch_poller)

    assert run_host(main) == (2, True)
    assert log == ["host task started", "host task finished", "guest waiter cancelled"]


def test_run_in_host_outside_an_adapter_guest():
    async def anything() -> None:
        pass

    async def main() -> None:
        coro = anything()
        with pytest.raises(RuntimeError, match="must be called from a guest"):
            await aio_host.run_in_host(coro)
        assert coro.cr_frame is None

    run_host(main)


# ---------------------------------------------------------------------------
# The poller watcher on its own


@pytest.mark.parametrize("flavor", ["asyncio", "uvloop"])
def test_poller_watcher_fd_and_timers(flavor, uvloop_baseline):
    new_loop = new_uvloop if flavor == "uvloop" else asyncio.new_event_loop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        watcher = aio_host.AsyncioPollerWatcher(loop)
        a, b = socket.socketpair()
        with a, b:
            fired: list[float] = []
            readable = asyncio.Event()

            def on_readable() -> None:
                fired.append(time.monotonic())
                if len(fired) >= 3:
                    readable.set()

            watcher.watch(a.fileno(), on_readable)
            b.send(b"x")
            # Level-triggered: it keeps firing while the data is unread.
            await asyncio.wait_for(readable.wait(), TIMEOUT)
            watcher.unwatch()
            n = len(fired)
            await asyncio.sleep(0.02)
            assert len(fired) == n, "fired after unwatch"

            # Timers: due ones fire in order and never early; cancelled
            # ones never.
            calls: list[tuple[str, float]] = []
            t0 = time.monotonic()
            done = asyncio.Event()
            watcher.call_later(0.03, lambda: (calls.append(("b", time.monotonic())), done.set()))
            watcher.call_later(0.0105, lambda: calls.append(("a", time.monotonic())))
            cancel = watcher.call_later(0.02, lambda: calls.append(("x", time.monotonic())))
            cancel()
            await asyncio.wait_for(done.wait(), TIMEOUT)
            assert [c[0] for c in calls] == ["a", "b"]
            assert calls[0][1] - t0 >= 0.0105 and calls[1][1] - t0 >= 0.03

    run_host(main, new_loop=new_loop)


# ---------------------------------------------------------------------------
# The sample app

APP = Path(__file__).resolve().parents[2] / "examples" / "asyncio_app.py"


def start_app(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(aioguest.__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, str(APP), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def app_tracebacks(stderr: str) -> int:
    """Tracebacks in stderr other than the download server's: http.server
    prints one for each connection a cancelled client dropped (after an
    "Exception occurred during processing of request" line)."""
    server = stderr.count("Exception occurred during processing of request")
    return stderr.count("Traceback (most recent call last)") - server


def finish_app(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the app did not finish; stdout: {out!r} stderr: {err!r}")
    assert "abandoned" not in err and app_tracebacks(err) == 0, err
    last = out.strip().splitlines()[-1]
    return proc.returncode, last, err


def ticks_of(last: str) -> int:
    return int(last.rsplit("ticks", 1)[1])


@pytest.mark.parametrize("mode", ["watch", "worker"])
def test_app_downloads_while_the_host_ticks(mode):
    args = ["--size", "1"] + (["--worker"] if mode == "worker" else [])
    code, last, _ = finish_app(start_app(*args))
    assert code == 0
    assert last.startswith(f"result: downloaded {2**20} bytes;"), last
    assert ticks_of(last) >= 3, "the host's ticker stalled while the guest downloaded"


def test_app_cancel_after():
    code, last, _ = finish_app(start_app("--size", "64", "--cancel-after", "0.5"))
    assert code == 0
    assert last.startswith("result: cancelled;"), last
    assert ticks_of(last) >= 3


def test_app_ctrl_c_cancels():
    proc = start_app("--size", "64")
    assert proc.stdout is not None
    # Wait (bounded) until it reports progress, then press Ctrl-C.
    deadline = time.monotonic() + 20
    line = ""
    while "%" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the app exited early"
    proc.send_signal(signal.SIGINT)
    code, last, _ = finish_app(proc)
    assert code == 0
    assert last.startswith("result: cancelled;"), last
