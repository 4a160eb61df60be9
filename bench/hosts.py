"""Host loops for the guest-mode contenders, shared by every guest library.

Each host offers what a guest mode needs (``run_sync_soon_threadsafe`` and
``run_sync_soon_not_threadsafe``) and what the host-responsiveness workload
needs (a periodic timer of the host's *own*), and nothing else: the same
host object serves aioguest, oremanj/aioguest and Trio's guest mode alike,
so differences between contenders are the guests', not the hosts'.

This module must import in both benchmark venvs and must not import
aioguest: the oremanj venv has a different package under that name.
"""

from __future__ import annotations

import queue
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

Callback = Callable[[], object]


class Probe(Protocol):
    """What a host reports its periodic timer to (workloads.common.Probe)."""

    def armed(self, due: float) -> None: ...

    def fired(self) -> None: ...


class HostError(RuntimeError):
    """A callback raised inside a host loop that would otherwise swallow it."""


class QueueHost:
    """The trivial host: a thread-safe FIFO of callbacks, pumped in a loop.

    ``queue.SimpleQueue`` (C, lock-free put) keeps the host's own cost as
    small as a Python host can make it, so what the contenders add shows.
    The periodic timer is a deadline check in the pump, as a game loop or
    a hand-written scheduler would do it.
    """

    name = "queue"

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callback] = queue.SimpleQueue()
        self.run_sync_soon_threadsafe: Callable[[Callback], None] = self._queue.put
        self.run_sync_soon_not_threadsafe: Callable[[Callback], None] = self._queue.put
        self._running = False
        self._due: float | None = None
        self._period = 0.0
        self._probe: Probe | None = None

    def start_periodic(self, period: float, probe: Probe) -> None:
        self._period = period
        self._probe = probe
        self._due = time.perf_counter() + period
        probe.armed(self._due)

    def run(self, start: Callback) -> None:
        self._queue.put(start)
        self._running = True
        get = self._queue.get
        empty = queue.Empty
        while self._running:
            due = self._due
            if due is None:
                callback = get()
            else:
                now = time.perf_counter()
                if now >= due:
                    assert self._probe is not None
                    self._probe.fired()
                    # Re-armed from now, not from the old deadline: a late
                    # firing must not be followed by a burst of catch-ups.
                    self._due = time.perf_counter() + self._period
                    self._probe.armed(self._due)
                    continue
                try:
                    callback = get(timeout=due - now)
                except empty:
                    continue
            callback()

    def stop(self) -> None:
        self._running = False
        # Make a pump blocked in get() notice.
        self._queue.put(_noop)

    def close(self) -> None:
        pass


class TkHost:
    """Tk (under Xvfb): guest callbacks go through ``after idle``.

    tkinter forwards ``after_idle`` from a non-Tk thread to the Tk thread
    (Tcl is built threaded), which is what makes it usable as
    ``run_sync_soon_threadsafe``; it is also expensive (a Tcl command is
    created per call, and each cross-thread call waits for the Tk thread),
    which is the point of measuring it.
    """

    name = "tk"

    def __init__(self) -> None:
        import tkinter

        self.root = tkinter.Tk()
        self.root.withdraw()
        self.error: BaseException | None = None
        self.root.report_callback_exception = self._report
        self.run_sync_soon_threadsafe: Callable[[Callback], Any] = self.root.after_idle
        self.run_sync_soon_not_threadsafe: Callable[[Callback], Any] = self.root.after_idle

    def _report(self, exc: type[BaseException], val: BaseException, tb: Any) -> None:
        traceback.print_exception(exc, val, tb, file=sys.stderr)
        if self.error is None:
            self.error = val
        self.root.quit()

    def start_periodic(self, period: float, probe: Probe) -> None:
        ms = max(1, round(period * 1000))

        def fire() -> None:
            probe.fired()
            arm()

        def arm() -> None:
            probe.armed(time.perf_counter() + ms / 1000)
            self.root.after(ms, fire)

        arm()

    def run(self, start: Callback) -> None:
        self.root.after_idle(start)
        self.root.mainloop()
        if self.error is not None:
            raise HostError("a callback raised in the Tk host") from self.error

    def stop(self) -> None:
        self.root.quit()

    def close(self) -> None:
        self.root.destroy()


class QtHost:
    """PyQt5 (offscreen): guest callbacks travel as a custom posted QEvent.

    ``QCoreApplication.postEvent`` is thread-safe and wakes the GUI thread's
    event dispatcher; the receiver runs the callback from ``event()``.
    """

    name = "qt"

    def __init__(self) -> None:
        from PyQt5 import QtCore, QtWidgets

        self._qtcore = QtCore
        app = QtWidgets.QApplication.instance()
        self.app = app if app is not None else QtWidgets.QApplication(["aioguest-bench"])
        self.error: BaseException | None = None
        event_type = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())
        host = self

        class CallEvent(QtCore.QEvent):
            def __init__(self, fn: Callback) -> None:
                super().__init__(event_type)
                self.fn = fn

        class Receiver(QtCore.QObject):
            def event(self, ev: Any) -> bool:
                if ev.type() != event_type:
                    return bool(super().event(ev))
                try:
                    ev.fn()
                except BaseException as exc:
                    # PyQt aborts the process on an exception escaping a
                    # virtual; end the loop and re-raise after it instead.
                    traceback.print_exc()
                    if host.error is None:
                        host.error = exc
                    host.app.quit()
                return True

        self._receiver = Receiver()
        post = QtCore.QCoreApplication.postEvent
        receiver = self._receiver

        def run_sync_soon(fn: Callback) -> None:
            post(receiver, CallEvent(fn))

        self.run_sync_soon_threadsafe: Callable[[Callback], None] = run_sync_soon
        self.run_sync_soon_not_threadsafe: Callable[[Callback], None] = run_sync_soon
        self._timer: Any = None

    def start_periodic(self, period: float, probe: Probe) -> None:
        QtCore = self._qtcore
        timer = QtCore.QTimer()
        timer.setSingleShot(True)
        timer.setTimerType(QtCore.Qt.PreciseTimer)
        ms = max(1, round(period * 1000))

        def arm() -> None:
            probe.armed(time.perf_counter() + ms / 1000)
            timer.start(ms)

        def fire() -> None:
            probe.fired()
            arm()

        timer.timeout.connect(fire)
        arm()
        self._timer = timer

    def run(self, start: Callback) -> None:
        self.run_sync_soon_not_threadsafe(start)
        self.app.exec_()
        if self.error is not None:
            raise HostError("a callback raised in the Qt host") from self.error

    def stop(self) -> None:
        self.app.quit()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None


class TrioHost:
    """Trio as the host (``TrioToken.run_sync_soon``), for asyncio-in-Trio.

    The token exists only inside ``trio.run``, so the run_sync_soon methods
    are bound when the loop starts; ``start`` is called from inside it.
    """

    name = "trio"

    def __init__(self) -> None:
        self._period = 0.0
        self._probe: Probe | None = None
        self._done: Any = None
        self.run_sync_soon_threadsafe: Callable[[Callback], None] = _not_started
        self.run_sync_soon_not_threadsafe: Callable[[Callback], None] = _not_started

    def start_periodic(self, period: float, probe: Probe) -> None:
        self._period = period
        self._probe = probe

    async def _periodic(self) -> None:
        await trio_periodic(self._period, self._probe)

    def run(self, start: Callback) -> None:
        import trio

        async def main() -> None:
            token = trio.lowlevel.current_trio_token()
            self.run_sync_soon_threadsafe = token.run_sync_soon
            self.run_sync_soon_not_threadsafe = token.run_sync_soon
            self._done = trio.Event()
            async with trio.open_nursery() as nursery:
                if self._probe is not None:
                    nursery.start_soon(self._periodic)
                start()
                await self._done.wait()
                nursery.cancel_scope.cancel()

        trio.run(main)

    def stop(self) -> None:
        self._done.set()

    def close(self) -> None:
        pass


async def trio_periodic(period: float, probe: Probe | None) -> None:
    """Trio's own periodic timer: a task sleeping *period* in a loop."""
    import trio

    assert probe is not None
    while True:
        probe.armed(time.perf_counter() + period)
        await trio.sleep(period)
        probe.fired()


def asyncio_periodic(period: float, probe: Probe) -> None:
    """asyncio's own periodic timer (call_later re-armed on each firing),
    for the contenders whose loop is the host."""
    import asyncio

    loop = asyncio.get_running_loop()

    def fire() -> None:
        probe.fired()
        arm()

    def arm() -> None:
        probe.armed(time.perf_counter() + period)
        loop.call_later(period, fire)

    arm()


def _noop() -> None:
    pass


def _not_started(fn: Callback) -> None:
    raise RuntimeError("the Trio host is not running yet")


HOSTS: dict[str, Callable[[], Any]] = {
    "queue": QueueHost,
    "tk": TkHost,
    "qt": QtHost,
    "trio": TrioHost,
}
