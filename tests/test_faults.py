"""Faults inside a run: exceptions escaping guest callbacks, signals, and a
host that goes away.

Where asyncio.run defines the behaviour, the test runs the same scenario
under asyncio.run and compares.  (test_run_lifecycle.py has the SIGINT and
abandonment basics; this file adds the variants.)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import aioguest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(aioguest.__file__)))


@pytest.fixture
def sigint_default() -> Iterator[None]:
    """The tests below need asyncio's and aioguest's Ctrl-C handling, which
    only applies on top of the default handler."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------------
# exceptions escaping guest callbacks


def scenario_callback_raises(record: list[Any]) -> Any:
    class Boom(Exception):
        pass

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: record.append(ctx))
        loop.call_soon(_raise, Boom("in a callback"))
        loop.call_later(0.01, _raise, Boom("in a timer"))
        await asyncio.sleep(0.05)
        return "went on"

    return main()


def _raise(exc: BaseException) -> None:
    raise exc


def summary(contexts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(ctx["message"].split(" ")[0], str(ctx["exception"])) for ctx in contexts]


def test_exception_in_a_callback_goes_to_the_handler_and_the_run_goes_on(host):
    expected: list[Any] = []
    assert asyncio.run(scenario_callback_raises(expected)) == "went on"
    got: list[Any] = []
    assert host.run(scenario_callback_raises(got)).unwrap() == "went on"
    assert (
        summary(got)
        == summary(expected)
        == [
            ("Exception", "in a callback"),
            ("Exception", "in a timer"),
        ]
    )


def scenario_base_exception_in_callback(exc: BaseException, record: list[Any]) -> Any:
    async def background() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            record.append("background finally")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.create_task(background())
        await asyncio.sleep(0)
        loop.call_soon(_raise, exc)  # a plain callback, not a task
        await asyncio.sleep(100)

    return main()


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_base_exception_in_a_plain_callback_ends_the_run_after_teardown(
    host, sigint_default, exc_type
):
    """It escapes run_forever, so asyncio.run raises it after cancelling the
    remaining tasks; the guest run ends with it the same way."""
    expected: list[Any] = []
    with pytest.raises(exc_type):
        asyncio.run(scenario_base_exception_in_callback(exc_type("asyncio.run"), expected))
    exc = exc_type("guest")
    got: list[Any] = []
    out = host.run(scenario_base_exception_in_callback(exc, got))
    assert isinstance(out, outcome.Error) and out.error is exc
    assert got == expected == ["background finally"]


@pytest.mark.parametrize("raises", [ValueError, KeyboardInterrupt])
def test_exception_handler_raising(host, sigint_default, raises):
    """A custom exception handler that raises: an Exception is logged by
    asyncio and the run goes on; a BaseException ends the run like any
    other escaping one.  Both as under asyncio.run."""

    def scenario(record: list[Any]) -> Any:
        async def main() -> str:
            loop = asyncio.get_running_loop()

            def handler(loop: Any, ctx: dict[str, Any]) -> None:
                record.append(ctx["message"])
                raise raises("from the handler")

            loop.set_exception_handler(handler)
            loop.call_soon(_raise, RuntimeError("first"))
            await asyncio.sleep(0.01)
            return "went on"

        return main()

    expected: list[Any] = []
    try:
        expected_out: outcome.Outcome[Any] = outcome.Value(asyncio.run(scenario(expected)))
    except BaseException as exc:
        expected_out = outcome.Error(exc)
    got: list[Any] = []
    out = host.run(scenario(got))
    assert got == expected
    assert type(out) is type(expected_out)
    if isinstance(out, outcome.Error):
        assert isinstance(expected_out, outcome.Error)
        assert type(out.error) is type(expected_out.error) is raises
    else:
        assert out.unwrap() == expected_out.unwrap() == "went on"


# ---------------------------------------------------------------------------
# signals


def scenario_sigint_while_busy(record: list[str]) -> Any:
    async def main() -> None:
        try:
            # Ctrl-C arrives while guest code is running, not while idle.
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                time.sleep(0)  # the handler runs between these bytecodes
            record.append("kept running until the next await")
            await asyncio.sleep(100)
        finally:
            record.append("main finally")

    return main()


def test_sigint_while_the_guest_is_busy_is_like_asyncio_run(host, sigint_default):
    if sys.version_info >= (3, 11):  # asyncio.Runner's Ctrl-C handling
        expected: list[str] = []
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(scenario_sigint_while_busy(expected))
        assert expected == ["kept running until the next await", "main finally"]
    got: list[str] = []
    try:
        out = host.run(scenario_sigint_while_busy(got))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt reached the host instead of the outcome")
    assert isinstance(out, outcome.Error) and isinstance(out.error, KeyboardInterrupt)
    assert got == ["kept running until the next await", "main finally"]


def test_guest_sigint_handler_takes_ctrl_c_and_is_undone_after(host, sigint_default):
    """A guest that handles SIGINT itself (loop.add_signal_handler) gets
    Ctrl-C instead of having its main task cancelled; afterwards the
    default handler and the host's wake-up fd are back."""
    import socket

    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    old_fd = signal.set_wakeup_fd(a.fileno())
    try:

        async def main() -> str:
            loop = asyncio.get_running_loop()
            got = asyncio.Event()
            loop.add_signal_handler(signal.SIGINT, got.set)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(got.wait(), 5)
            return "handled by the guest"

        assert host.run(main()).unwrap() == "handled by the guest"
        assert signal.set_wakeup_fd(-1) == a.fileno()
    finally:
        signal.set_wakeup_fd(old_fd)
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# a host that goes away


def abandon_watching_host(host: Any) -> None:
    """A watch-mode host that runs a few turns, then drops everything (its
    queue, its watch, its timers) without a word."""

    async def main() -> None:
        while True:
            await asyncio.sleep(0.02)

    host.start(main())
    for _ in range(3):
        host._pump_watching(0.1)
    host.queue = None
    host.poller_watcher = None
    host.task = None


def test_abandoned_watching_host_is_reported(caplog):
    from conftest import QueueHost

    host = QueueHost(watch=True)
    host.thread_id = None  # set by start()
    try:
        with caplog.at_level(logging.ERROR, logger="aioguest"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                abandon_watching_host(host)
                for _ in range(3):
                    gc.collect()
        assert any("abandoned" in str(w.message) for w in caught), [str(w.message) for w in caught]
    finally:
        host.close()


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, queue, select
    from conftest import QueueHost

    async def main():
        while True:
            await asyncio.sleep({sleep})

    host = QueueHost(watch=True)
    host.start(main())
    watcher = host.poller_watcher
    for _ in range({pumps}):
        # one host callback at a time: a busy guest always has the next
        # turn queued, so draining the queue would never end
        try:
            host.queue.get_nowait()()
            continue
        except queue.Empty:
            pass
        if watcher.fd is not None and select.select([watcher.fd], [], [], 0.1)[0]:
            watcher.fire()
        watcher.run_due_timers()
    print("leaving", flush=True)
    """
)


@pytest.mark.parametrize(
    "sleep, pumps", [(100, 0), (100, 3), (0, 3)], ids=["never pumped", "waiting", "busy"]
)
def test_interpreter_exit_with_unfinished_watch_mode_run(sleep, pumps):
    """As test_run_lifecycle's worker-mode variant: the process exits
    promptly and says why, with a host that watches the poller itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (TESTS_DIR, PACKAGE_PARENT, env.get("PYTHONPATH")) if p
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT.format(sleep=sleep, pumps=pumps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"interpreter hung at exit; stderr: {exc.stderr!r}")
    assert proc.stdout == "leaving\n"
    assert proc.returncode == 0, proc.stderr
    assert "abandoned" in proc.stderr


class WatcherBroke(Exception):
    pass


def test_watcher_refusing_to_watch_ends_the_run_with_its_error(host):
    """The watch starts with the guest's first wait, on the host thread: a
    watcher that refuses it ends the run with its error, after teardown, as
    a refused turn does."""
    if host.poller_watcher is None:
        pytest.skip("watch mode only")

    def refuse(*args: Any) -> None:
        raise WatcherBroke("watch refused")

    host.poller_watcher.watch = refuse  # type: ignore[method-assign]
    cleaned: list[bool] = []

    async def main() -> None:
        try:
            await asyncio.sleep(0.01)
        finally:
            cleaned.append(True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no abandonment warning
        out = host.run(main())
    assert isinstance(out, outcome.Error) and isinstance(out.error, WatcherBroke)
    assert cleaned == [True]
    assert host.loop.is_closed()


def test_watcher_call_later_raising_mid_run_ends_the_run_with_its_error(host):
    """The host's PollerWatcher raising inside our callback (mid-run, on the
    host thread): the run ends cleanly with that exception as its outcome,
    as when run_sync_soon_not_threadsafe raises."""
    if host.poller_watcher is None:
        pytest.skip("watch mode only")
    watcher = host.poller_watcher
    original = watcher.call_later
    calls = [0]

    def flaky(delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        calls[0] += 1
        if calls[0] == 3:
            raise WatcherBroke("call_later refused")
        return original(delay, callback)

    watcher.call_later = flaky  # type: ignore[method-assign]
    cleaned: list[bool] = []

    async def main() -> None:
        try:
            for _ in range(20):
                await asyncio.sleep(0.005)
        finally:
            cleaned.append(True)

    task = host.start(main())
    escaped: list[BaseException] = []
    deadline = time.monotonic() + 5
    while not host.outcomes and time.monotonic() < deadline:
        try:
            host._pump_watching(0.05)
        except WatcherBroke as exc:
            escaped.append(exc)
    try:
        assert escaped == [], "the watcher's error escaped into the host"
        assert len(host.outcomes) == 1
        out = host.outcomes[0]
        assert isinstance(out, outcome.Error) and isinstance(out.error, WatcherBroke)
        assert cleaned == [True]
        assert task.get_loop().is_closed()
    finally:
        # With the bug the run is stuck: close its loop so the fds go.
        loop = task.get_loop()
        if not loop.is_closed():
            aioguest_run = [r for r in gc.get_referrers(loop) if hasattr(r, "_abandon")]
            for run in aioguest_run:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run._abandon("test cleanup")


def test_host_refusing_a_busy_guests_turn_still_completes_teardown(host):
    class Refused(Exception):
        pass

    original = host.run_sync_soon_not_threadsafe
    refuse_after = time.monotonic() + 0.1

    def refusing(fn: Callable[[], Any]) -> None:
        nonlocal refuse_after
        if time.monotonic() > refuse_after:
            refuse_after = math.inf
            raise Refused("the host's loop is closing")
        original(fn)

    host.run_sync_soon_not_threadsafe = refusing  # type: ignore[method-assign]
    cleaned: list[int] = []

    async def busy(i: int) -> None:
        try:
            while True:
                await asyncio.sleep(0)
                time.sleep(0.0005)  # so turns end by their time slice
        finally:
            await asyncio.sleep(0.01)  # a cleanup that needs more iterations
            cleaned.append(i)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(busy(i)) for i in range(3)]
        await loop.run_in_executor(None, time.sleep, 0.01)  # a default executor
        await asyncio.gather(*tasks)

    out = host.run(main())
    assert isinstance(out, outcome.Error) and isinstance(out.error, Refused)
    assert sorted(cleaned) == [0, 1, 2]
    # asyncio.run's teardown leaves no task unfinished (the loop is closed:
    # one left pending now is "destroyed but pending" when collected)
    assert host.loop.is_closed()
    assert asyncio.all_tasks(host.loop) == set()
