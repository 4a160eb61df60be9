"""The edges of a guest run: async generators, signals, abandonment, errors."""

from __future__ import annotations

import asyncio
import errno
import gc
import inspect
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref

import outcome
import pytest

import aioguest

# ---------------------------------------------------------------------------
# async generators


def test_abandoned_guest_async_generator_is_finalised_by_asyncio(host):
    """Its finally runs inside the guest, as an asyncio task, while the loop runs."""
    record = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # only possible if asyncio runs the aclose()
            record.append((asyncio.get_running_loop(), asyncio.current_task() is not None))

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        del g
        gc.collect()
        for _ in range(100):  # bounded: up to ~1 s
            if record:
                break
            await asyncio.sleep(0.01)
        return asyncio.get_running_loop(), list(record)

    loop, seen = host.run(main()).unwrap()
    assert seen == [(loop, True)]


def drive(agen):
    """One step of an async generator with no event loop: what a host might do."""
    try:
        agen.asend(None).send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("async generator awaited something")


@pytest.fixture
def host_asyncgen_hooks():
    """Install host async-generator hooks for the test, restoring the old ones."""
    calls = []

    def firstiter(agen):
        calls.append(("firstiter", agen.ag_code.co_name))

    def finalizer(agen):
        calls.append(("finalizer", agen.ag_code.co_name))
        # a synchronous host closes it synchronously
        try:
            agen.aclose().send(None)
        except StopIteration:
            pass

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
    try:
        yield calls, (firstiter, finalizer)
    finally:
        sys.set_asyncgen_hooks(*old)


@pytest.mark.parametrize("dropped_in", ["host code", "guest code"])
def test_host_async_generator_is_finalised_by_host_hooks(host, host_asyncgen_hooks, dropped_in):
    """An async generator first iterated by host code between turns belongs to
    the host: its hooks, not asyncio's, see it, wherever it is dropped."""
    calls, hooks = host_asyncgen_hooks
    record = []
    handed = []

    async def host_gen():
        try:
            yield "h1"
            yield "h2"
        finally:
            record.append("host_gen finally")

    async def guest_gen():
        yield "g"

    async def main():
        loop = asyncio.get_running_loop()
        # one of the guest's own, iterated during a turn: asyncio's business
        g = guest_gen()
        assert await g.__anext__() == "g"
        stepped = loop.create_future()
        dropped = loop.create_future()

        def host_code():
            record.append(("hooks between turns", sys.get_asyncgen_hooks() == hooks))
            h = host_gen()
            record.append(drive(h))
            handed.append(h)
            loop.call_soon(stepped.set_result, None)

        def host_drop():
            handed.clear()
            loop.call_soon(dropped.set_result, None)

        host.call_later(0.01, host_code)
        await asyncio.wait_for(stepped, 5)
        if dropped_in == "host code":
            host.call_later(0.01, host_drop)
            await asyncio.wait_for(dropped, 5)
        else:
            handed.clear()
            gc.collect()
        await asyncio.sleep(0.01)
        await g.aclose()

    assert host.run(main()) == outcome.Value(None)
    assert calls == [("firstiter", "host_gen"), ("finalizer", "host_gen")]
    assert record == [("hooks between turns", True), "h1", "host_gen finally"]
    assert sys.get_asyncgen_hooks() == hooks  # the host's hooks are back after the run


# ---------------------------------------------------------------------------
# signals


@pytest.mark.parametrize("use_signal_handler", [False, True])
def test_host_wakeup_fd_is_restored_after_run(host, use_signal_handler):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    old = signal.set_wakeup_fd(a.fileno())
    try:

        async def main():
            loop = asyncio.get_running_loop()
            if not use_signal_handler:
                await asyncio.sleep(0.01)
                return None
            received = asyncio.Event()
            loop.add_signal_handler(signal.SIGUSR1, received.set)
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(received.wait(), 5)
            during = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(during, warn_on_full_buffer=False)
            return during

        during = host.run(main()).unwrap()
        if use_signal_handler:
            # asyncio really replaced it during the run (so the test means something)
            assert during not in (-1, a.fileno())
        assert signal.set_wakeup_fd(-1) == a.fileno()
    finally:
        signal.set_wakeup_fd(old)
        a.close()
        b.close()


@pytest.mark.parametrize("sender", ["host code", "other thread"])
def test_sigint_cancels_main_task_and_ends_in_keyboardinterrupt(host, spawn, sender):
    """Like asyncio.Runner (3.11+): Ctrl-C cancels the main task, the run ends
    with KeyboardInterrupt, and the host's SIGINT handler is back afterwards."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    record = []

    async def main():
        try:
            await asyncio.sleep(100)
        finally:
            record.append("main finally")

    host.start(main())
    if sender == "host code":
        host.call_later(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    else:
        spawn(os.kill, os.getpid(), signal.SIGINT, delay=0.1)
    t0 = time.monotonic()
    try:
        out = host.pump()
    except KeyboardInterrupt:
        # never let it reach pytest: it would end the session
        pytest.fail("KeyboardInterrupt reached the host instead of cancelling the guest")
    assert isinstance(out, outcome.Error), out
    assert isinstance(out.error, KeyboardInterrupt)
    assert record == ["main finally"]
    assert time.monotonic() - t0 < 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------------
# abandonment


@pytest.mark.parametrize("state", ["turn pending", "worker waiting"])
def test_abandoned_run_warns_logs_and_stops_worker(caplog, state):
    threads_before = set(threading.enumerate())

    def start_and_abandon():
        # Everything of the run lives in this frame: once it returns, the run
        # is garbage (the host dropped its pending callback without running it).
        q = queue.SimpleQueue()

        async def main():
            while True:
                await asyncio.sleep(0 if state == "turn pending" else 0.02)

        aioguest.start_guest_run(main(), run_sync_soon_threadsafe=q.put, done_callback=q.put)
        for _ in range(3):
            q.get(timeout=5)()

    with caplog.at_level(logging.ERROR, logger="aioguest"):
        with pytest.warns(RuntimeWarning, match="abandoned") as warned:
            start_and_abandon()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                gc.collect()
                if any("abandoned" in str(w.message) for w in warned):
                    break
                time.sleep(0.01)
    assert any(
        r.name == "aioguest" and r.levelno >= logging.ERROR and "abandoned" in r.getMessage()
        for r in caplog.records
    ), caplog.records
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - threads_before, "worker thread still running"


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, queue, aioguest

    q = queue.SimpleQueue()

    async def main():
        while True:
            await asyncio.sleep({sleep})

    aioguest.start_guest_run(main(), run_sync_soon_threadsafe=q.put, done_callback=print)
    for _ in range({pumps}):
        q.get(timeout=5)()
    print("leaving", flush=True)
    """
)


@pytest.mark.parametrize(
    "sleep, pumps",
    [(100, 0), (100, 1), (0, 3)],
    ids=["never pumped", "worker waiting", "turn pending"],
)
def test_interpreter_exit_with_unfinished_run(sleep, pumps):
    """The process exits promptly (no join on a blocked worker) and says why."""
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(aioguest.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (parent, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT.format(sleep=sleep, pumps=pumps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"interpreter hung at exit; stderr: {exc.stderr!r}")
    assert proc.stdout == "leaving\n"
    assert proc.returncode == 0, proc.stderr
    assert "abandoned" in proc.stderr


# ---------------------------------------------------------------------------
# errors raised by start_guest_run itself


class NoCalls:
    """Stands in for the callbacks; records any call."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)


def assert_closed_without_warning(coro, caught):
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def some_guest():
    await asyncio.sleep(0)


def test_start_inside_running_loop_is_runtimeerror():
    cb = NoCalls()

    async def outer():
        coro = some_guest()
        with pytest.raises(RuntimeError):
            aioguest.start_guest_run(coro, run_sync_soon_threadsafe=cb, done_callback=cb)
        return coro

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = asyncio.run(outer())
        assert_closed_without_warning(coro, caught)
    assert cb.calls == []


@pytest.mark.parametrize(
    "main", [some_guest, None, 42, "coro"], ids=["uncalled async fn", "None", "int", "str"]
)
def test_non_coroutine_is_valueerror_like_asyncio_run(main):
    with pytest.raises(ValueError):
        asyncio.run(main)
    cb = NoCalls()
    with pytest.raises(ValueError):
        aioguest.start_guest_run(main, run_sync_soon_threadsafe=cb, done_callback=cb)
    assert cb.calls == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"run_sync_soon_threadsafe": None},
        {"run_sync_soon_threadsafe": 42},
        {"done_callback": None},
        {"done_callback": "x"},
        {"run_sync_soon_not_threadsafe": 42},
    ],
    ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_non_callable_callback_is_typeerror(kwargs):
    cb = NoCalls()
    args = {"run_sync_soon_threadsafe": cb, "done_callback": cb, **kwargs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = some_guest()
        with pytest.raises(TypeError):
            aioguest.start_guest_run(coro, **args)
        assert_closed_without_warning(coro, caught)
    assert cb.calls == []


def closed_loop():
    loop = asyncio.SelectorEventLoop()
    loop.close()
    return loop


@pytest.mark.parametrize("factory", [object, closed_loop], ids=["object", "closed loop"])
def test_loop_factory_returning_unusable_loop_is_rejected(factory):
    cb = NoCalls()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = some_guest()
        with pytest.raises((TypeError, ValueError)) as excinfo:
            aioguest.start_guest_run(
                coro, run_sync_soon_threadsafe=cb, done_callback=cb, loop_factory=factory
            )
        assert "loop" in str(excinfo.value).lower()  # says what was wrong
        assert_closed_without_warning(coro, caught)
    assert cb.calls == []


def test_loop_factory_raising_is_delivered_to_done_callback(host):
    exc = OSError("no loop for you")

    def factory():
        raise exc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = some_guest()
        assert host.start(coro, loop_factory=factory) is None
        out = host.pump()
        assert_closed_without_warning(coro, caught)
    assert isinstance(out, outcome.Error) and out.error is exc


# ---------------------------------------------------------------------------
# BaseExceptions raised by guest code


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_guest_ends_run_after_teardown(host, exc_type):
    def scenario(exc, record):
        async def background():
            try:
                await asyncio.sleep(100)
            finally:
                record.append("background finally")

        async def main():
            record.append(asyncio.get_running_loop())
            asyncio.get_running_loop().create_task(background())
            await asyncio.sleep(0.01)
            raise exc

        return main()

    expected: list = []
    with pytest.raises(exc_type):
        asyncio.run(scenario(exc_type("asyncio.run"), expected))
    assert expected[1:] == ["background finally"]

    exc = exc_type("guest")
    record: list = []
    out = host.run(scenario(exc, record))
    assert isinstance(out, outcome.Error) and out.error is exc
    loop, *rest = record
    assert rest == ["background finally"]
    assert loop.is_closed()


# ---------------------------------------------------------------------------
# failures of the handoff itself, and the worker/host hand-over


@pytest.mark.parametrize("step", ["collect", "request"])
def test_handoff_failure_ends_run_with_that_error_after_teardown(worker_host, monkeypatch, step):
    """An OS error from the kernel wait must end the run (like an exception
    out of select() under asyncio.run), not leave it stuck forever."""
    host = worker_host
    from aioguest.handoff import Handoff

    original = getattr(Handoff, step)
    calls = []

    def failing(self, *args):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.EIO, f"injected {step} failure")
        return original(self, *args)

    monkeypatch.setattr(Handoff, step, failing)
    cleaned_up = []

    async def main():
        try:
            for _ in range(5):
                await asyncio.sleep(0.01)
        finally:
            cleaned_up.append(True)

    out = host.run(main())
    assert isinstance(out, outcome.Error), out
    assert isinstance(out.error, OSError) and out.error.errno == errno.EIO
    assert cleaned_up == [True], "teardown did not cancel the main task"


def test_run_survives_gc_when_host_runs_turn_before_worker_resumes():
    """Race: the worker hands a turn to the host, and the host runs it and
    starts the next wait before the worker thread resumes.  The run must
    still be held for that next wait, even though nobody else references it:
    a garbage collection at that point must not end the guest."""
    from aioguest import run as run_module

    turns: queue.SimpleQueue = queue.SimpleQueue()
    turns_run = [0]
    turn_done = threading.Condition()
    results: list = []
    host_thread = threading.get_ident()

    def threadsafe(fn):
        with turn_done:
            before = turns_run[0]
            turns.put(fn)
            if threading.get_ident() != host_thread:
                # Hold the worker until the host has run this very turn
                # (and so has requested the next wait).
                turn_done.wait_for(lambda: turns_run[0] > before, timeout=5)

    async def main():
        for _ in range(3):
            await asyncio.sleep(0.02)
        return "finished"

    aioguest.start_guest_run(
        main(), run_sync_soon_threadsafe=threadsafe, done_callback=results.append
    )
    (the_run,) = run_module._live_runs
    run_ref = weakref.ref(the_run)
    del the_run
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        try:
            fn = turns.get(timeout=0.5)
        except queue.Empty:
            continue
        fn()
        del fn
        with turn_done:
            turns_run[0] += 1
            turn_done.notify_all()
        # Collect for a while after every turn: with the bookkeeping right,
        # something (the wait set, the worker's hand-over, the host's queue)
        # owns the run at every instant, so it can never be collected.
        settle = time.monotonic() + 0.2
        while time.monotonic() < settle and run_ref() is not None:
            gc.collect()
            time.sleep(0.002)
    assert results, "the guest never finished: its run was collected mid-wait"
    assert results[0].unwrap() == "finished"


def test_host_refusing_the_first_turn_gets_its_own_error_back(caplog):
    """The host's run_sync_soon raising at start is the host's error: it
    propagates from start_guest_run, with nothing left behind (no pending
    task logged as destroyed, no abandonment reported, no thread, no fd)."""

    class HostClosed(Exception):
        pass

    def closed_host(fn):
        raise HostClosed("queue closed")

    async def main():
        return "never"

    with caplog.at_level(logging.ERROR), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with pytest.raises(HostClosed):
            aioguest.start_guest_run(
                main(), run_sync_soon_threadsafe=closed_host, done_callback=print
            )
        gc.collect()
    assert not [w for w in warned if "abandoned" in str(w.message)]
    # neither aioguest's "abandoned" nor asyncio's "Task was destroyed but it
    # is pending!" (a main task created and then left behind)
    assert not [r for r in caplog.records if r.name in ("aioguest", "asyncio")], caplog.records
