"""Guest mode for the tests' loops: ``run_forever`` runs as a guest of a host.

Every ``run_forever`` (and so every ``run_until_complete``, ``asyncio.run``
and ``asyncio.Runner``) of a :class:`GuestEventLoop` starts a trivial host
loop on the calling thread, a :class:`queue.SimpleQueue` whose callbacks
the thread runs one by one, and lets an :class:`aioguest.turn.Driver` run
the asyncio loop in turns inside it, with the blocking wait on the Go
worker thread.  The call returns when the loop is stopped by anyone but
the driver (the test's ``loop.stop()``, ``run_until_complete``'s done
callback), and raises what escaped the loop, as the native call would.
"""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import Callable
from typing import Any

import aioguest
from aioguest.turn import Driver

from .loops import Counters, GoSelectorEventLoop

#: Work around a library bug (tests/test_conformance_bugs.py::
#: test_closed_driver_frees_its_worker_thread_without_gc): a closed Driver
#: lives on until the cyclic GC runs, and with it the stopped worker's Thread
#: object.  3.10's test.support.threading_cleanup counts such objects: every
#: guest-mode test would be "env changed" and spin in its cleanup for seconds
#: (hours for the whole run).  Set AIOGUEST_CONFORMANCE_NO_WORKAROUNDS=1 to
#: see the library as it is; remove this once the Driver frees itself.
WORKAROUND_DRIVER_CYCLE = not os.environ.get("AIOGUEST_CONFORMANCE_NO_WORKAROUNDS")


def _break_driver_cycle(driver: Driver) -> None:
    # The cycle is the driver's cached bound methods of itself.
    for name in ("_idle_call_soon_bound", "_idle_call_at_bound"):
        driver.__dict__.pop(name, None)


class GuestEventLoop(GoSelectorEventLoop):
    def run_forever(self) -> None:
        selector = self._selector
        if (
            not isinstance(selector, aioguest.GoSelector)
            or self.is_closed()
            or self.is_running()
            or asyncio._get_running_loop() is not None
        ):
            # Cases where the native call raises before running anything
            # (closed, already running, another loop running in this
            # thread), and loops a test built on a mock selector: the
            # native call is the reference behaviour.  The driver would not
            # do better: it refuses a selector that is already a guest, and
            # it hides a host's running loop on purpose, since a real host
            # may itself be an asyncio loop.
            return super().run_forever()  # type: ignore[no-any-return]
        host: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        outcome: list[BaseException | None] = []

        def on_abandon(reason: str) -> None:
            outcome.append(RuntimeError(f"the guest driver was abandoned: {reason}"))

        driver = Driver(
            self,
            selector,
            run_sync_soon_threadsafe=host.put,
            run_sync_soon_not_threadsafe=host.put,
            on_stop=outcome.append,
            on_abandon=on_abandon,
            run_forever=super().run_forever,
        )
        Counters.guest_runs += 1
        try:
            driver.start()
            while not outcome:
                host.get()()
        finally:
            driver.close()
            if WORKAROUND_DRIVER_CYCLE:
                _break_driver_cycle(driver)
        exc = outcome[0]
        if exc is not None:
            try:
                raise exc
            finally:
                exc = None  # no frame <-> traceback cycle
