"""Guest mode for the tests' loops: ``run_forever`` runs as a guest of a host.

Every ``run_forever`` (and so every ``run_until_complete``, ``asyncio.run``
and ``asyncio.Runner``) of a :class:`GuestEventLoop` starts a trivial host
loop on the calling thread and lets an :class:`aioguest.turn.Driver` run the
asyncio loop in turns inside it.  The call returns when the loop is stopped
by anyone but the driver (the test's ``loop.stop()``, ``run_until_complete``'s
done callback), and raises what escaped the loop, as the native call would.

Two hosts, one per way a driver can wait:

* ``guest`` (:class:`QueueHost`): a :class:`queue.SimpleQueue` whose
  callbacks the thread runs one by one; the blocking wait happens on the Go
  worker thread, which queues the next turn.
* ``guest-watch`` (:class:`PollHost`): a ``poll()`` loop that watches the
  poller's descriptor and runs the driver's timers itself, as a GUI toolkit
  host would; no worker thread exists.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
import queue
import select
import time
from collections.abc import Callable
from typing import Any

import aioguest
from aioguest.turn import Driver

from .loops import Counters, GoSelectorEventLoop

_Callback = Callable[[], Any]


class QueueHost:
    """The simplest host: run queued callbacks in order, block when none."""

    watcher: Any = None

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Callback] = queue.SimpleQueue()
        self.run_sync_soon_threadsafe = self._queue.put
        self.run_sync_soon_not_threadsafe = self._queue.put

    def run_one(self) -> None:
        self._queue.get()()

    def close(self) -> None:
        pass


class PollHost:
    """A host that polls file descriptors itself, and its PollerWatcher.

    Callbacks queued from other threads write a pipe, so that ``poll()``
    notices them; the driver only ever queues from this thread here, but a
    host must not rely on that.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Callback] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._fd: int | None = None
        self._on_readable: _Callback | None = None
        self._timers: list[tuple[float, int, list[_Callback | None]]] = []
        self._seq = itertools.count()
        self.run_sync_soon_not_threadsafe = self._queue.put
        self.watcher = self

    def run_sync_soon_threadsafe(self, fn: _Callback) -> None:
        self._queue.put(fn)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # a wake-up is already pending

    # -- PollerWatcher ----------------------------------------------------

    def watch(self, fd: int, callback: _Callback) -> None:
        self._fd, self._on_readable = fd, callback

    def unwatch(self) -> None:
        self._fd = self._on_readable = None

    def call_later(self, delay: float, callback: _Callback) -> _Callback:
        entry: list[_Callback | None] = [callback]
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), entry))

        def cancel() -> None:
            entry[0] = None

        return cancel

    # -- the loop -----------------------------------------------------------

    def run_one(self) -> None:
        """One host iteration: queued callbacks, else wait for fds or a timer."""
        try:
            fn = self._queue.get_nowait()
        except queue.Empty:
            pass
        else:
            fn()
            return
        while self._timers and self._timers[0][2][0] is None:
            heapq.heappop(self._timers)
        timeout_ms = -1
        if self._timers:
            # Rounded up: a timer must not be found "not yet due" on wake-up.
            delay = self._timers[0][0] - time.monotonic()
            timeout_ms = max(math.ceil(delay * 1000), 0)
        poll = select.poll()
        poll.register(self._wake_r, select.POLLIN)
        fd = self._fd
        if fd is not None:
            poll.register(fd, select.POLLIN)
        ready = {f for f, _ in poll.poll(timeout_ms)}
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        if fd is not None and fd in ready and fd == self._fd and self._on_readable is not None:
            self._on_readable()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, entry = heapq.heappop(self._timers)
            callback, entry[0] = entry[0], None
            if callback is not None:
                callback()

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)


class GuestEventLoop(GoSelectorEventLoop):
    """Each ``run_forever`` is a guest run in a :class:`QueueHost`."""

    _host_class: Callable[[], QueueHost | PollHost] = QueueHost

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
        host = self._host_class()
        outcome: list[BaseException | None] = []

        def on_abandon(reason: str) -> None:
            outcome.append(RuntimeError(f"the guest driver was abandoned: {reason}"))

        try:
            driver = Driver(
                self,
                selector,
                run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
                on_stop=outcome.append,
                on_abandon=on_abandon,
                watcher=host.watcher,
                run_forever=super().run_forever,
            )
            Counters.guest_runs += 1
            try:
                driver.start()
                while not outcome:
                    host.run_one()
            finally:
                driver.close()
        finally:
            host.close()
        exc = outcome[0]
        if exc is not None:
            try:
                raise exc
            finally:
                exc = None  # no frame <-> traceback cycle


class GuestWatchEventLoop(GuestEventLoop):
    """Each ``run_forever`` is a guest run in a :class:`PollHost`."""

    _host_class = PollHost
