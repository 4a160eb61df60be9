"""start_guest_run with bad input: a clear error, never a crash or a hang.

What test_run_lifecycle.py already covers (non-callable callbacks, a
non-coroutine, a running loop, loop_factory raising or returning a closed
loop or a plain object) is not repeated here.  Every refusal must also
close the coroutine (no "never awaited" warning) and leave nothing behind
(the autouse leak check sees threads and fds).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
import queue
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import aioguest


class NoCalls:
    """Stands in for a callback that must never be called."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


async def some_guest() -> str:
    await asyncio.sleep(0)
    return "ran"


@pytest.fixture
def no_never_awaited() -> Iterator[list[warnings.WarningMessage]]:
    gc.collect()  # what earlier tests left is theirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]


def refused(exc_type: type[BaseException], **kwargs: Any) -> BaseException:
    """start_guest_run(**kwargs) must raise exc_type, call nothing and
    close the coroutine."""
    cb = NoCalls()
    args: dict[str, Any] = {"run_sync_soon_threadsafe": cb, "done_callback": cb}
    args.update(kwargs)
    coro = some_guest()
    with pytest.raises(exc_type) as excinfo:
        aioguest.start_guest_run(coro, **args)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert cb.calls == []
    return excinfo.value


# ---------------------------------------------------------------------------
# wrong argument types and values


class HalfWatcher:
    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        pass  # no unwatch, no call_later


@pytest.mark.parametrize(
    "kwargs, exc_type",
    [
        ({"time_slice": 0}, ValueError),
        ({"time_slice": -1}, ValueError),
        ({"time_slice": float("nan")}, ValueError),
        ({"time_slice": "0.01"}, ValueError),
        ({"time_slice": None}, ValueError),
        ({"debug": "yes"}, TypeError),
        ({"debug": 1}, TypeError),
        ({"loop_factory": 42}, TypeError),
        ({"loop_factory": "asyncio.SelectorEventLoop"}, TypeError),
        ({"poller_watcher": object()}, TypeError),
        ({"poller_watcher": HalfWatcher()}, TypeError),
        ({"run_sync_soon_not_threadsafe": "x"}, TypeError),
    ],
    ids=lambda v: repr(v) if not isinstance(v, dict) else ",".join(f"{k}={v[k]!r}" for k in v),
)
def test_wrong_argument_is_refused_before_anything_runs(no_never_awaited, kwargs, exc_type):
    error = refused(exc_type, **kwargs)
    # the message names the argument that was wrong
    assert list(kwargs)[0] in str(error)


def test_unknown_keyword_is_typeerror(no_never_awaited):
    coro = some_guest()
    with pytest.raises(TypeError):
        aioguest.start_guest_run(  # type: ignore[call-arg]
            coro, run_sync_soon_threadsafe=print, done_callback=print, loop=None
        )
    coro.close()


def test_positional_callbacks_are_refused(no_never_awaited):
    """Callbacks are keyword-only, as in Trio: a positional mix-up cannot
    silently swap run_sync_soon_threadsafe and done_callback."""
    coro = some_guest()
    with pytest.raises(TypeError):
        aioguest.start_guest_run(coro, print, print)  # type: ignore[misc]
    coro.close()


# ---------------------------------------------------------------------------
# what is not a fresh coroutine


@pytest.mark.parametrize(
    "make",
    [
        lambda: asyncio.sleep,  # the function, not a call
        lambda: iter([1]),
    ],
    ids=["coroutine function", "iterator"],
)
def test_awaitable_like_objects_are_valueerror_like_asyncio_run(make):
    with pytest.raises(ValueError):
        asyncio.run(make())
    cb = NoCalls()
    with pytest.raises(ValueError, match="coroutine was expected"):
        aioguest.start_guest_run(make(), run_sync_soon_threadsafe=cb, done_callback=cb)
    assert cb.calls == []


def test_future_is_valueerror_like_asyncio_run():
    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        with pytest.raises(ValueError):
            asyncio.run(fut)  # type: ignore[arg-type]
        cb = NoCalls()
        with pytest.raises(ValueError):
            aioguest.start_guest_run(fut, run_sync_soon_threadsafe=cb, done_callback=cb)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_already_finished_coroutine_fails_in_the_outcome_like_asyncio_run(host):
    """asyncio.run accepts it and the task fails: 'cannot reuse already
    awaited coroutine'.  The guest run reports the same error the same way."""

    def finished() -> Any:
        coro = some_guest()
        try:
            coro.send(None)  # up to its sleep(0)
            coro.send(None)
        except StopIteration:
            return coro
        raise AssertionError("coroutine did not finish")

    with pytest.raises(RuntimeError) as expected:
        asyncio.run(finished())
    out = host.run(finished())
    assert isinstance(out, outcome.Error)
    assert type(out.error) is RuntimeError and str(out.error) == str(expected.value)


# ---------------------------------------------------------------------------
# loop_factory returning a loop aioguest cannot drive


class ProactorStandIn(asyncio.BaseEventLoop):
    """An event loop that is no SelectorEventLoop, like Windows'
    ProactorEventLoop (which does not exist on Linux)."""

    closed_by: str | None = None

    def close(self) -> None:
        self.closed_by = "close()"
        super().close()


def test_non_selector_loop_is_typeerror_and_gets_closed(no_never_awaited):
    made: list[ProactorStandIn] = []

    def factory() -> ProactorStandIn:
        made.append(ProactorStandIn())
        return made[0]

    error = refused(TypeError, loop_factory=factory)
    assert "SelectorEventLoop" in str(error) and "ProactorStandIn" in str(error)
    # the loop the factory made is not leaked
    assert made[0].is_closed() and made[0].closed_by == "close()"


@pytest.fixture(scope="module")
def uvloop() -> Any:
    uvloop = pytest.importorskip(
        "uvloop", reason="uvloop is not installed (pip install uvloop; it is a test extra)"
    )
    # libuv keeps a process-wide pipe from the first loop on: make it part
    # of the leak check's baseline, it is not the test's doing.
    uvloop.new_event_loop().close()
    return uvloop


def test_uvloop_is_typeerror_and_gets_closed(uvloop, no_never_awaited):
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(uvloop.new_event_loop())
        return made[0]

    error = refused(TypeError, loop_factory=factory)
    assert "SelectorEventLoop" in str(error) and "Loop" in str(error)
    assert made[0].is_closed()


def test_loop_already_driven_as_a_guest_is_refused(host, no_never_awaited):
    """One loop cannot be two guests: the second start is a ValueError and
    the first run goes on undisturbed."""
    release = asyncio.Event()

    async def first() -> str:
        await release.wait()
        return "first"

    task = host.start(first())
    loop = task.get_loop()
    error = refused(ValueError, loop_factory=lambda: loop)
    assert "already" in str(error)
    host.in_host(lambda: release.set())
    assert host.pump().unwrap() == "first"


def test_running_loop_from_factory_is_refused(no_never_awaited):
    """loop_factory called from host code that itself runs inside a loop
    callback of another thread's loop: refused, and that loop goes on."""
    other = asyncio.new_event_loop()
    started = threading.Event()
    t = threading.Thread(target=lambda: (other.call_soon(started.set), other.run_forever()))
    t.start()
    try:
        assert started.wait(5)
        error = refused(ValueError, loop_factory=lambda: other)
        assert "running" in str(error)
        assert other.is_running() and not other.is_closed()
    finally:
        other.call_soon_threadsafe(other.stop)
        t.join(5)
        other.close()


# ---------------------------------------------------------------------------
# a second guest in a thread that already runs one


def test_start_from_inside_a_guest_turn_is_runtimeerror(host, no_never_awaited):
    """Guest code runs inside the guest loop's run_forever, so a nested
    start is refused exactly as asyncio.run refuses it there; the outer
    run is unaffected."""

    async def main() -> tuple[str, str]:
        coro = some_guest()
        with pytest.raises(RuntimeError) as by_asyncio:
            asyncio.run(coro)
        coro.close()  # asyncio.run leaves it unclosed before 3.12
        coro = some_guest()
        with pytest.raises(RuntimeError) as by_us:
            aioguest.start_guest_run(coro, run_sync_soon_threadsafe=print, done_callback=print)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        return type(by_asyncio.value).__name__, str(by_us.value)

    name, message = host.run(main()).unwrap()
    assert name == "RuntimeError" and "running asyncio event loop" in message


def test_second_guest_started_from_host_code_between_turns(host):
    """Host code (between the first guest's turns) starts a second guest on
    the same host: supported, each with its own loop, both finish."""
    second: list[outcome.Outcome[Any]] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def other() -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        return "second"

    async def main() -> str:
        loops.append(asyncio.get_running_loop())
        started = asyncio.Event()

        def start_second() -> None:
            # (with the worker: the watch-mode host watches one fd only)
            aioguest.start_guest_run(
                other(),
                run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                done_callback=second.append,
            )
            started.set()

        host.in_host(start_second)
        await asyncio.wait_for(started.wait(), 5)
        for _ in range(500):  # bounded: up to ~5 s
            if second:
                break
            await asyncio.sleep(0.01)
        return "first"

    assert host.run(main()).unwrap() == "first"
    assert [o.unwrap() for o in second] == ["second"]
    assert len(loops) == 2 and loops[0] is not loops[1]


def test_next_guest_started_from_done_callback(host):
    """A chain of runs where each done_callback starts the next: the first
    run's loop is closed and no longer running at that point."""
    results: list[Any] = []
    q: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()

    async def step(i: int) -> int:
        await asyncio.sleep(0)
        return i

    def done(out: outcome.Outcome[int]) -> None:
        results.append(out.unwrap())
        if len(results) < 5:
            aioguest.start_guest_run(
                step(len(results)), run_sync_soon_threadsafe=q.put, done_callback=done
            )

    aioguest.start_guest_run(step(0), run_sync_soon_threadsafe=q.put, done_callback=done)
    deadline = time.monotonic() + 10
    while len(results) < 5 and time.monotonic() < deadline:
        try:
            q.get(timeout=0.5)()
        except queue.Empty:
            pass
    assert results == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------
# a done_callback that raises


class DoneFailed(Exception):
    pass


def test_done_callback_raising_propagates_to_host_after_cleanup(host):
    """The exception is the host's: it propagates out of the host callback
    that finished the run (as with Trio's start_guest_run), and by then the
    run is fully torn down: loop closed, worker gone, no turn pending."""
    raised: list[BaseException] = []

    def done(out: outcome.Outcome[str]) -> None:
        host.outcomes.append(out)
        host.done_thread_ids.append(threading.get_ident())
        raise DoneFailed("from done_callback")

    async def main() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    host.done_callback = done  # type: ignore[method-assign]
    task = host.start(main())
    original = host._run_one

    def run_one(fn: Callable[[], Any]) -> None:
        try:
            original(fn)
        except DoneFailed as exc:
            raised.append(exc)

    host._run_one = run_one  # type: ignore[method-assign]
    assert host.pump().unwrap() == "ok"
    assert [str(e) for e in raised] == ["from done_callback"]
    assert task.get_loop().is_closed()
    names = [t.name for t in threading.enumerate()]
    assert "aioguest-worker" not in names


def test_done_callback_raising_base_exception_still_cleans_up(worker_host):
    """KeyboardInterrupt from done_callback: it is the host's to handle;
    the run has nothing left to clean up when it surfaces."""
    host = worker_host
    caught: list[BaseException] = []

    def done(out: outcome.Outcome[str]) -> None:
        host.outcomes.append(out)
        host.done_thread_ids.append(threading.get_ident())
        raise KeyboardInterrupt

    host.done_callback = done  # type: ignore[method-assign]
    task = host.start(some_guest())
    deadline = time.monotonic() + 10
    while not host.outcomes and time.monotonic() < deadline:
        try:
            fn = host.queue.get(timeout=0.5)
        except queue.Empty:
            continue
        try:
            fn()
        except KeyboardInterrupt as exc:
            caught.append(exc)
    assert host.outcomes and host.outcomes[0].unwrap() == "ran"
    assert len(caught) == 1
    assert task.get_loop().is_closed()


# ---------------------------------------------------------------------------
# a host whose run_sync_soon_threadsafe raises mid-run


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """Put the default SIGINT handler back after the test, whatever the
    library left (an abandoned run cannot restore it off the main thread),
    so later tests start clean."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def abandon_by_raising_threadsafe(
    caplog: pytest.LogCaptureFixture, guest_signal: int | None = None
) -> list[Any]:
    """Start a run whose host's run_sync_soon_threadsafe raises on the
    worker thread; return once the abandonment is reported.  With
    guest_signal, the guest first installs a handler for it with
    loop.add_signal_handler (which takes over the wake-up fd)."""
    q: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
    host_thread = threading.get_ident()
    outcomes: list[Any] = []

    def threadsafe(fn: Callable[[], Any]) -> None:
        if threading.get_ident() != host_thread:
            raise RuntimeError("host queue closed")
        q.put(fn)

    async def main() -> None:
        if guest_signal is not None:
            asyncio.get_running_loop().add_signal_handler(guest_signal, lambda: None)
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="aioguest"):
        with pytest.warns(RuntimeWarning, match="abandoned"):
            aioguest.start_guest_run(
                main(), run_sync_soon_threadsafe=threadsafe, done_callback=outcomes.append
            )
            q.get(timeout=5)()  # the first turn; the worker then fails to hand back
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                "abandoned" in r.getMessage() for r in caplog.records
            ):
                time.sleep(0.01)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name == "aioguest-worker" for t in threading.enumerate()
    ):
        time.sleep(0.01)
    return outcomes


def test_threadsafe_raising_on_the_worker_thread_is_abandonment(caplog, sigint_restored):
    """The worker cannot hand the host its turn: nothing can reach the host
    thread any more, so there is no outcome to deliver.  The run is
    abandoned loudly (warning + error log naming the cause), the worker
    stops, and nothing is left behind."""
    outcomes = abandon_by_raising_threadsafe(caplog)
    assert outcomes == []
    messages = [r.getMessage() for r in caplog.records if r.name == "aioguest"]
    assert any("run_sync_soon_threadsafe raised" in m for m in messages), messages
    assert not any(t.name == "aioguest-worker" for t in threading.enumerate())
    # Asyncio's own "Task was destroyed but it is pending!" follows when the
    # abandoned task is collected; that is the accurate report.
    gc.collect()


def test_abandonment_on_the_worker_thread_gives_sigint_back(caplog, sigint_restored):
    """A run abandoned on its worker thread cannot restore SIGINT there
    (signal.signal works on the main thread only).  What it leaves behind
    must act as the default handler, and the next run must take it over so
    that Ctrl-C cancels that run's main task."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    abandon_by_raising_threadsafe(caplog)
    gc.collect()
    stale = signal.getsignal(signal.SIGINT)
    if stale is not signal.default_int_handler:
        assert callable(stale)
        with pytest.raises(KeyboardInterrupt):
            stale(signal.SIGINT, None)

    q: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
    outcomes: list[Any] = []

    async def main() -> None:
        await asyncio.sleep(3600)

    aioguest.start_guest_run(main(), run_sync_soon_threadsafe=q.put, done_callback=outcomes.append)
    handler = signal.getsignal(signal.SIGINT)
    assert handler is not stale and handler is not signal.default_int_handler
    assert callable(handler)
    handler(signal.SIGINT, None)  # what Ctrl-C does: cancels the main task
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        try:
            q.get(timeout=0.1)()
        except queue.Empty:
            pass
    assert outcomes and isinstance(outcomes[0], outcome.Error)
    assert isinstance(outcomes[0].error, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_not_threadsafe_raising_mid_run_ends_run_with_that_error(caplog):
    """The host refuses a turn on its own thread (a busy guest's next time
    slice): the refusal becomes the run's outcome, and teardown still ran."""
    q: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
    outcomes: list[Any] = []
    calls = [0]
    cleaned = []

    class Refused(Exception):
        pass

    def not_threadsafe(fn: Callable[[], Any]) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise Refused("host loop is closing")
        q.put(fn)

    async def busy() -> None:
        try:
            while True:
                await asyncio.sleep(0)
                time.sleep(0.002)  # so every turn uses up its time slice
        finally:
            cleaned.append(True)

    aioguest.start_guest_run(
        busy(),
        run_sync_soon_threadsafe=q.put,
        run_sync_soon_not_threadsafe=not_threadsafe,
        done_callback=outcomes.append,
        time_slice=0.001,
    )
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        try:
            fn = q.get(timeout=0.5)
        except queue.Empty:
            continue
        fn()
        del fn
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], outcome.Error) and isinstance(outcomes[0].error, Refused)
    assert cleaned == [True]


def test_abandonment_on_the_worker_thread_gives_the_wakeup_fd_back(caplog, sigint_restored):
    host_r, host_w = socket.socketpair()
    host_r.setblocking(False)
    host_w.setblocking(False)
    old_fd = signal.set_wakeup_fd(host_w.fileno())
    try:
        abandon_by_raising_threadsafe(caplog, guest_signal=signal.SIGUSR1)
        gc.collect()
        current = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(current, warn_on_full_buffer=False)
        if current != host_w.fileno():
            # Not restored yet (possible off the main thread): it must at
            # least not name a closed descriptor, which open() would reuse.
            os.fstat(current)
        # By the end of the next run on the main thread, the host's state
        # must be back: its wake-up fd, and no handler left by the guest.
        q: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        outcomes: list[Any] = []
        aioguest.start_guest_run(
            some_guest(), run_sync_soon_threadsafe=q.put, done_callback=outcomes.append
        )
        while not outcomes:
            q.get(timeout=5)()
        assert outcomes[0].unwrap() == "ran"
        assert signal.set_wakeup_fd(-1) == host_w.fileno()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        host_r.close()
        host_w.close()
