"""aioguest.hosts.trio: an asyncio guest inside trio.run.

Every test runs trio.run under ``trio.fail_after``, in both waiting modes
(a Trio system task waiting for the guest poller's fd, and the Go worker
thread).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
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

trio = pytest.importorskip("trio", reason="trio is not installed")
sniffio = pytest.importorskip("sniffio", reason="sniffio is not installed")

import aioguest  # noqa: E402
from aioguest.hosts import trio as trio_host  # noqa: E402
from conftest import PROMPT  # noqa: E402

TIMEOUT = 20

cv: contextvars.ContextVar[str] = contextvars.ContextVar("cv", default="unset")


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until predicate() holds (trio_run's deadline bounds it)."""
    while not predicate():
        await trio.sleep(0.001)


def trio_run(main: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
    async def bounded() -> Any:
        with trio.fail_after(timeout):
            return await main()

    return trio.run(bounded)


@pytest.fixture(params=["watch", "worker"])
def watch_poller(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "watch")


# ---------------------------------------------------------------------------
# Running a guest


def test_run_returns_the_result_and_each_side_sees_its_library(watch_poller):
    async def guest() -> tuple[str, bool]:
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        return sniffio.current_async_library(), asyncio.current_task() is not None and bool(loop)

    async def main() -> Any:
        result = await trio_host.run(guest(), watch_poller=watch_poller)
        assert sniffio.current_async_library() == "trio"
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # nothing of the guest left in Trio
        return result

    assert trio_run(main) == ("asyncio", True)


def test_run_raises_the_guest_exception(watch_poller):
    async def fails() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("from the guest")

    async def main() -> None:
        with pytest.raises(ValueError, match="from the guest"):
            await trio_host.run(fails(), watch_poller=watch_poller)

    trio_run(main)


def test_loop_factory_failure_reaches_run():
    def factory() -> asyncio.AbstractEventLoop:
        raise OSError("no loop for you")

    async def main() -> None:
        with pytest.raises(OSError, match="no loop for you"):
            await trio_host.run(asyncio.sleep(0), loop_factory=factory)

    trio_run(main)


def test_start_outside_trio_is_refused():
    async def guest() -> None:
        pass

    coro = guest()
    with pytest.raises(RuntimeError, match="inside trio.run"):
        trio_host.start(coro)
    assert coro.cr_frame is None


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


def test_guest_io_while_trio_timers_run(watch_poller):
    ticks: list[float] = []

    async def main() -> Any:
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                while True:
                    await trio.sleep(0.01)
                    ticks.append(trio.current_time())

            nursery.start_soon(ticker)
            result = await trio_host.run(guest_io(), watch_poller=watch_poller)
            nursery.cancel_scope.cancel()
        return result

    data, executor_thread, out = trio_run(main)
    assert (data, out) == (b"ping", b"child\n")
    assert executor_thread != threading.current_thread().name
    assert len(ticks) >= 2


def test_trio_and_guest_interleave(watch_poller):
    events: list[str] = []

    async def guest() -> None:
        for _ in range(10):
            await asyncio.sleep(0.005)
            events.append("guest")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio_host.run, guest(), watch_poller=watch_poller))
            for _ in range(10):
                await trio.sleep(0.005)
                events.append("trio")

    trio_run(main)
    assert events.count("trio") == 10 and events.count("guest") == 10
    switches = sum(a != b for a, b in zip(events, events[1:], strict=False))
    assert switches >= 4, f"Trio and the guest did not interleave: {events}"


def test_busy_guest_does_not_starve_trio(watch_poller):
    spins = [0]

    async def busy() -> None:
        while True:
            await asyncio.sleep(0)
            spins[0] += 1

    async def main() -> int:
        guest = trio_host.start(busy(), watch_poller=watch_poller)
        ticks = 0
        while ticks < 5:  # fail_after fails the test if Trio stops ticking
            await trio.sleep(0.01)
            ticks += 1
        await trio_host.cancel_and_wait(guest)
        assert guest.cancelled()
        return ticks

    assert trio_run(main) == 5
    assert spins[0] > 10


def test_watching_the_poller_needs_no_worker_thread(watch_poller):
    counts: list[int] = []

    async def guest() -> None:
        await asyncio.sleep(0.05)

    async def main() -> None:
        before = threading.active_count()
        guest_handle = trio_host.start(guest(), watch_poller=watch_poller)
        await trio.sleep(0.02)  # the guest is waiting now
        counts.append(threading.active_count() - before)
        await trio_host.wait(guest_handle)

    trio_run(main)
    assert counts == [0 if watch_poller else 1]


def test_trio_code_wakes_an_idle_guest(watch_poller):
    async def main() -> None:
        box: list[asyncio.Event] = []

        async def guest() -> float:
            box.append(asyncio.Event())
            await box[0].wait()
            return time.monotonic()

        handle = trio_host.start(guest(), watch_poller=watch_poller)
        while not box:
            await trio.sleep(0.001)
        await trio.sleep(0.05)  # idle, waiting with no timeout
        t0 = time.monotonic()
        box[0].set()  # Trio code, between guest turns
        assert await trio_host.wait(handle) - t0 < PROMPT

    trio_run(main)


def test_contextvars_flow_into_the_guest(watch_poller):
    async def guest() -> tuple[str, str]:
        before = cv.get()
        cv.set("guest")
        return before, await trio_host.run_in_host(trio_reads)

    async def trio_reads() -> str:
        return cv.get()

    async def main() -> None:
        cv.set("trio")
        assert await trio_host.run(guest(), watch_poller=watch_poller) == ("trio", "guest")
        assert cv.get() == "trio"

    trio_run(main)


def test_several_guests_at_once(watch_poller):
    async def guest(n: int) -> tuple[int, int]:
        await asyncio.sleep(0.01 * n)
        return n, id(asyncio.get_running_loop())

    async def main() -> list[Any]:
        results: list[Any] = []
        async with trio.open_nursery() as nursery:
            for n in range(3):

                async def one(n: int = n) -> None:
                    results.append(await trio_host.run(guest(n), watch_poller=watch_poller))

                nursery.start_soon(one)
        return results

    results = trio_run(main)
    assert sorted(n for n, _ in results) == [0, 1, 2]
    assert len({loop for _, loop in results}) == 3


# ---------------------------------------------------------------------------
# Cancellation and shutdown


def test_cancelled_caller_cancels_the_guest_and_waits_for_its_teardown(watch_poller):
    log: list[str] = []

    async def guest() -> None:
        log.append("started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # teardown that takes guest turns
            log.append("guest teardown done")

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_when_started() -> None:
                    await until(lambda: "started" in log)
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                await trio_host.run(guest(), watch_poller=watch_poller)
        assert scope.cancelled_caught
        log.append("caller cancelled")

    trio_run(main)
    assert log == ["started", "guest teardown done", "caller cancelled"]


def test_ctrl_c_cancels_the_guest_and_waits_for_its_teardown(watch_poller):
    """Guest turns run in KeyboardInterrupt-protected system tasks, so
    Trio delivers Ctrl-C to its main task; run() then cancels the guest."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Trio handles SIGINT only on the main thread")
    log: list[str] = []

    async def guest() -> None:
        log.append("started")
        try:
            while True:  # busy, so Ctrl-C may well land during a guest turn
                await asyncio.sleep(0)
        finally:
            await asyncio.sleep(0.02)
            log.append("guest teardown done")

    async def main() -> None:
        async def press_ctrl_c() -> None:
            await until(lambda: "started" in log)
            signal.raise_signal(signal.SIGINT)

        trio.lowlevel.spawn_system_task(press_ctrl_c)
        await trio_host.run(guest(), watch_poller=watch_poller)

    with pytest.raises(KeyboardInterrupt):
        trio_run(main)
    assert log == ["started", "guest teardown done"]


def test_start_wait_and_cancel_and_wait(watch_poller):
    async def guest(delay: float) -> str:
        await asyncio.sleep(delay)
        return "done"

    async def main() -> None:
        g = trio_host.start(guest(0.01), watch_poller=watch_poller)
        assert isinstance(g, aioguest.Guest)
        assert await trio_host.wait(g) == "done"
        assert await trio_host.wait(g) == "done"  # again, at once

        g = trio_host.start(guest(10), watch_poller=watch_poller)
        await trio.sleep(0.01)
        await trio_host.cancel_and_wait(g)
        assert g.done() and g.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await trio_host.wait(g)

    trio_run(main)


def test_a_guest_left_running_is_torn_down_when_trio_run_ends(watch_poller):
    """As asyncio.run does with leftover tasks: trio.run's shutdown cancels
    the guest and waits for its teardown; nothing is abandoned."""
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
        box.append(trio_host.start(guest(), watch_poller=watch_poller))
        await until(lambda: "started" in log)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        trio_run(main)
    assert box[0].cancelled() and log == ["started", "teardown"]


# ---------------------------------------------------------------------------
# Across the loops


def test_run_in_guest(watch_poller):
    log: list[str] = []

    async def in_guest(x: int) -> tuple[int, str]:
        await asyncio.sleep(0.001)
        return x * 2, sniffio.current_async_library()

    async def fails() -> None:
        raise KeyError("remote")

    async def slow() -> None:
        log.append("remote task started")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)
            log.append("remote task finished")

    async def main() -> None:
        g = trio_host.start(asyncio.sleep(30), watch_poller=watch_poller)
        assert await trio_host.run_in_guest(g, in_guest(21)) == (42, "asyncio")
        with pytest.raises(KeyError, match="remote"):
            await trio_host.run_in_guest(g, fails())
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_when_started() -> None:
                    await until(lambda: "remote task started" in log)
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                await trio_host.run_in_guest(g, slow())
        log.append("caller cancelled")
        await trio_host.cancel_and_wait(g)
        coro = in_guest(1)
        with pytest.raises(RuntimeError, match="guest run is over"):
            await trio_host.run_in_guest(g, coro)
        assert coro.cr_frame is None

    trio_run(main)
    assert log == ["remote task started", "remote task finished", "caller cancelled"]


def test_run_in_host(watch_poller):
    log: list[str] = []

    async def trio_side(x: int) -> tuple[int, str]:
        await trio.sleep(0.001)
        return x + 1, sniffio.current_async_library()

    async def trio_fails() -> None:
        raise LookupError("trio side")

    async def trio_slow() -> None:
        log.append("trio task started")
        try:
            await trio.sleep(10)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.02)
            log.append("trio task finished")

    async def guest() -> Any:
        r = await trio_host.run_in_host(trio_side, 1)
        with pytest.raises(LookupError, match="trio side"):
            await trio_host.run_in_host(trio_fails)
        waiter = asyncio.ensure_future(trio_host.run_in_host(trio_slow))
        while "trio task started" not in log:
            await asyncio.sleep(0.001)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("guest waiter cancelled")
        return r

    async def main() -> Any:
        return await trio_host.run(guest(), watch_poller=watch_poller)

    assert trio_run(main) == (2, "trio")
    assert log == ["trio task started", "trio task finished", "guest waiter cancelled"]


def test_run_in_host_is_cancelled_when_trio_run_ends(watch_poller):
    log: list[str] = []

    async def waits_forever() -> None:
        log.append("trio task started")
        await trio.sleep_forever()

    async def guest() -> None:
        try:
            await trio_host.run_in_host(waits_forever)
        except asyncio.CancelledError:
            log.append("guest cancelled")
            raise

    async def main() -> None:
        trio_host.start(guest(), watch_poller=watch_poller)
        await until(lambda: "trio task started" in log)

    trio_run(main)
    assert log == ["trio task started", "guest cancelled"]


def test_run_in_host_outside_an_adapter_guest():
    async def guest() -> None:
        with pytest.raises(RuntimeError, match="must be called from a guest"):
            await trio_host.run_in_host(trio.sleep, 0)

    asyncio.run(guest())


# ---------------------------------------------------------------------------
# The poller watcher on its own


def test_poller_watcher_fd_and_timers():
    async def main() -> None:
        baseline = trio.lowlevel.current_statistics().tasks_living
        watcher = trio_host.TrioPollerWatcher()
        a, b = socket.socketpair()
        with a, b:
            fired: list[float] = []
            enough = trio.Event()

            def on_readable() -> None:
                fired.append(trio.current_time())
                if len(fired) >= 3:
                    enough.set()

            watcher.watch(a.fileno(), on_readable)
            await trio.sleep(0.02)
            assert fired == [], "fired before the fd was readable"
            b.send(b"x")
            await enough.wait()  # level-triggered: again while unread
            watcher.unwatch()
            n = len(fired)
            await trio.sleep(0.02)
            assert len(fired) == n, "fired after unwatch"

            # Watching another fd replaces the first.
            c, d = socket.socketpair()
            with c, d:
                watcher.watch(c.fileno(), on_readable)
                await trio.sleep(0.02)
                assert len(fired) == n, "still watching the replaced fd"
                d.send(b"y")
                while len(fired) == n:
                    await trio.sleep(0.001)
                watcher.unwatch()

            # Timers: in order, never early, cancelled ones never.
            calls: list[tuple[str, float, float]] = []
            done = trio.Event()

            def timer(name: str, delay: float) -> Callable[[], None]:
                due = trio.current_time() + delay

                def fire() -> None:
                    calls.append((name, trio.current_time(), due))
                    if name == "b":
                        done.set()

                return watcher.call_later(delay, fire)

            timer("b", 0.03)
            timer("a", 0.0105)
            cancel = timer("x", 0.02)
            cancel()
            cancel()  # idempotent
            await done.wait()
            assert [c[0] for c in calls] == ["a", "b"]
            assert all(now >= due for _, now, due in calls)
            # With nothing to watch and no timer, the serving task is gone.
            for _ in range(10):
                await trio.sleep(0)
            assert trio.lowlevel.current_statistics().tasks_living == baseline

    trio_run(main)


def test_poller_watcher_timer_alone_and_rearmed_while_waiting():
    async def main() -> None:
        watcher = trio_host.TrioPollerWatcher()
        fired: list[str] = []
        cancel = watcher.call_later(10, lambda: fired.append("late"))
        await trio.sleep(0.01)
        # Moving the deadline earlier must wake the task already waiting.
        cancel()
        done = trio.Event()
        watcher.call_later(0.01, lambda: (fired.append("soon"), done.set()))
        with trio.fail_after(2):
            await done.wait()
        assert fired == ["soon"]

    trio_run(main)


# ---------------------------------------------------------------------------
# The sample app

APP = Path(__file__).resolve().parents[2] / "examples" / "trio_app.py"


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


def finish_app(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the app did not finish; stdout: {out!r} stderr: {err!r}")
    assert "abandoned" not in err and app_tracebacks(err) == 0, err
    return proc.returncode, out.strip().splitlines()[-1]


def ticks_of(last: str) -> int:
    return int(last.rsplit("ticks", 1)[1])


@pytest.mark.parametrize("mode", ["watch", "worker"])
def test_app_downloads_while_trio_ticks(mode):
    code, last = finish_app(start_app("--size", "1", *(["--worker"] if mode == "worker" else [])))
    assert code == 0
    assert last.startswith(f"result: downloaded {2**20} bytes;"), last
    assert ticks_of(last) >= 3, "Trio's ticker stalled while the guest downloaded"


def test_app_cancel_after():
    code, last = finish_app(start_app("--size", "64", "--cancel-after", "0.5"))
    assert code == 0
    assert last.startswith("result: cancelled;"), last
    assert ticks_of(last) >= 3


def test_app_ctrl_c_cancels():
    proc = start_app("--size", "64")
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while "%" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the app exited early"
    proc.send_signal(signal.SIGINT)
    code, last = finish_app(proc)
    assert code == 0
    assert last.startswith("result: cancelled;"), last
