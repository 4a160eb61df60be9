"""Library bugs found by the conformance runner (``conformance/``), one test each.

Each test is the smallest reproduction of a difference from stock asyncio
that ``make conformance`` showed, marked ``xfail(strict=True)`` until the
library is fixed: the fix turns it into an unexpected pass, which fails, so
the marker (and the matching entry in ``conformance/expected.py`` or
workaround in ``conformance/guestloop.py``) goes away with the bug.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import aioguest
from aioguest.turn import Driver
from conftest import Spawner


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Driver.close() keeps the Handoff, and with it the stopped worker's Thread "
        "object, for as long as the driver lives: until the cyclic GC runs (the "
        "driver holds bound methods of itself), or while anything holds an "
        "exception that escaped a turn (its traceback holds Driver._turn's frame). "
        "3.10's test.support.threading_cleanup counts such Thread objects "
        "(threading._dangling) and reports those guest-mode tests as 'env changed'"
    ),
)
def test_closed_driver_releases_its_worker_thread() -> None:
    selector = aioguest.GoSelector()
    loop = asyncio.SelectorEventLoop(selector)
    host: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
    stops: list[BaseException | None] = []
    workers: list[weakref.ref[threading.Thread]] = []

    def note_worker() -> None:
        workers.extend(weakref.ref(t) for t in threading.enumerate()
                       if t.name == "aioguest-worker")
        loop.stop()

    driver = Driver(loop, selector, run_sync_soon_threadsafe=host.put,
                    run_sync_soon_not_threadsafe=host.put, on_stop=stops.append)
    try:
        # Later than the first turn, so the worker has started by then.
        loop.call_later(0.01, note_worker)
        driver.start()
        while not stops:
            host.get()()
        driver.close()
        assert stops == [None]
        assert workers, "no worker thread seen during the run"
        # The owner still holds the closed driver, as a traceback would.
        assert all(ref() is None for ref in workers), "closed driver keeps its worker Thread"
    finally:
        driver.close()
        loop.close()


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise _Interrupted


_SIGNAL_REASON = (
    "GoSelector.select() blocks in Go, whose poller retries epoll_wait on EINTR "
    "(internal/poller/wait.go), so a signal never returns control to Python until "
    "the timeout or an event: a raising handler (KeyboardInterrupt from Ctrl-C) is "
    "delayed for as long as the loop idles, forever under select(None); "
    "selectors.EpollSelector returns to run the handler (PEP 475). Found by "
    "test_selectors.SelectorUnderTest.test_select_interrupt_exc"
)


@pytest.mark.xfail(strict=True, reason=_SIGNAL_REASON)
def test_goselector_select_returns_for_a_raising_signal_handler(spawn: Spawner) -> None:
    previous = signal.signal(signal.SIGUSR1, _raise_interrupted)
    selector = aioguest.GoSelector()
    try:
        start = time.monotonic()
        with pytest.raises(_Interrupted):
            spawn(os.kill, os.getpid(), signal.SIGUSR1, delay=0.1)
            selector.select(3)
        assert time.monotonic() - start < 2, "the handler ran only when the wait ended"
    finally:
        selector.close()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.xfail(strict=True, reason=_SIGNAL_REASON)
def test_ctrl_c_reaches_an_idle_loop_on_goselector(spawn: Spawner) -> None:
    loop = asyncio.SelectorEventLoop(aioguest.GoSelector())
    try:
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            spawn(os.kill, os.getpid(), signal.SIGINT, delay=0.1)
            loop.run_until_complete(asyncio.sleep(3))
        assert time.monotonic() - start < 2, "Ctrl-C waited for the loop's next timer"
    finally:
        loop.close()
