"""Library bugs found by the conformance runner (``conformance/``), one test each.

Each test is the smallest reproduction of a difference from stock asyncio
that ``make conformance`` showed.  While a bug is open its test is marked
``xfail(strict=True)`` with the reason (and the difference is listed in
``conformance/expected.py``); the fix turns it into an unexpected pass,
which fails, so the marker goes away with the bug and the test stays as a
regression test.  docs/conformance.md lists them, open and fixed.
"""

from __future__ import annotations

import asyncio
import os
import queue
import selectors
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


def test_closed_driver_releases_its_worker_thread() -> None:
    """A closed Driver lets go of its Handoff, and so of the stopped worker's
    Thread object: the driver may outlive close() (a traceback of an exception
    that escaped a turn holds its frames), and 3.10's test.support counts
    such Thread objects as dangling ("env changed").  Fixed in 8c0b05e."""
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


def test_goselector_select_returns_for_a_raising_signal_handler(spawn: Spawner) -> None:
    """select() returns to Python on a signal, so a raising handler ends the
    wait as with EpollSelector (PEP 475); the Go poller used to retry on
    EINTR.  Found by test_selectors' test_select_interrupt_exc; fixed in
    8c0b05e."""
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


def test_ctrl_c_reaches_an_idle_loop_on_goselector(spawn: Spawner) -> None:
    """The same bug as seen by a program: Ctrl-C waited for the idle loop's
    next timer (forever with none)."""
    loop = asyncio.SelectorEventLoop(aioguest.GoSelector())
    try:
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            spawn(os.kill, os.getpid(), signal.SIGINT, delay=0.1)
            loop.run_until_complete(asyncio.sleep(3))
        assert time.monotonic() - start < 2, "Ctrl-C waited for the loop's next timer"
    finally:
        loop.close()


def test_failed_modify_reports_the_modify_error() -> None:
    selector = aioguest.GoSelector()
    r, w = os.pipe()
    try:
        selector.register(r, selectors.EVENT_READ)
        os.close(r)
        with pytest.raises(OSError) as info:
            selector.modify(r, selectors.EVENT_READ | selectors.EVENT_WRITE)
        assert "remove" not in str(info.value), str(info.value)
    finally:
        os.close(w)
        selector.close()
