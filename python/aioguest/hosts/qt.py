"""Run an asyncio guest inside a Qt event loop: PySide6, PyQt6 or PyQt5.

The host is the event loop of the thread that creates it (normally the GUI
thread and ``app.exec()``); nested loops (``QDialog.exec()``, ``QMenu.exec()``,
``QEventLoop.exec()``) serve it too::

    app = QApplication([])
    window = MainWindow()
    guest = aioguest.hosts.qt.start(main(), window=window)
    window.show()
    app.exec()

* Turns are posted events: the callbacks go into a deque and one custom
  ``QEvent`` is posted to a receiver ``QObject`` that lives in the host
  thread (``QCoreApplication.postEvent`` is thread-safe, needs no meta-call
  marshalling as a queued signal does, and the receiver's thread is where
  Qt delivers it).  At most one such event is pending at a time, however
  many callbacks are queued, and one event runs only the callbacks that were
  queued when it arrived: a guest that keeps queueing turns gets one batch
  per pass of the event loop, behind input, timers and paints.
* By default the guest waits in Qt's loop itself: a ``QSocketNotifier``
  watches the Go poller's descriptor and a single-shot ``PreciseTimer``
  stands for asyncio's timer, so no thread is involved
  (``watch_poller=False`` leaves the wait to the Go worker thread instead).
* The binding is the one the application already uses (the module of the
  ``QCoreApplication`` instance), else ``binding=``, else the first of
  PySide6, PyQt6, PyQt5 that imports.
* ``window=``: closing the window cancels the guest; the window closes only
  once the guest's teardown is over.  A guest still running when the
  application's loop is made to return (``app.exit()``, Qt 5's ``quit()``)
  is cancelled from ``aboutToQuit`` and torn down in a short nested loop
  before ``exec()`` returns.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import logging
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE, PollerWatcher

__all__ = [
    "BINDINGS",
    "QtHost",
    "QtWatcher",
    "detect_binding",
    "exec_dialog",
    "qt_modules",
    "start",
]

T = TypeVar("T")

logger = logging.getLogger("aioguest")

#: The bindings this module knows, in the order it tries to import them.
BINDINGS = ("PySide6", "PyQt6", "PyQt5")

# QTimer.start() takes a C int of milliseconds.
_MAX_TIMER_MS = 2**31 - 1


def detect_binding(*, app: Any = None, binding: str | None = None) -> str:
    """Which Qt binding to use: ``"PySide6"``, ``"PyQt6"`` or ``"PyQt5"``.

    The binding of *app* (or of the application object that exists already)
    wins: a host built on another binding would post to a loop nobody runs.
    Then *binding*, then a binding that is imported already, then the first
    one that imports.  Asking for a binding other than the running
    application's is a :class:`ValueError`.
    """
    if binding is not None and binding not in BINDINGS:
        raise ValueError(f"unknown Qt binding {binding!r}; expected one of {BINDINGS}")
    running: list[str] = []
    if app is not None:
        running.append(type(app).__module__.split(".", 1)[0])
        if running[0] not in BINDINGS:
            raise ValueError(f"{app!r} is not a QCoreApplication of {', '.join(BINDINGS)}")
    else:
        for name in BINDINGS:
            core = sys.modules.get(f"{name}.QtCore")
            if core is not None and core.QCoreApplication.instance() is not None:
                running.append(name)
    if running:
        if binding is not None and binding not in running:
            raise ValueError(
                f"binding={binding!r}, but the application object is {running[0]}'s: "
                f"its event loop is the one that runs"
            )
        return binding if binding is not None else running[0]
    if binding is not None:
        return binding
    for name in BINDINGS:
        if f"{name}.QtCore" in sys.modules:
            return name
    errors = []
    for name in BINDINGS:
        try:
            importlib.import_module(f"{name}.QtCore")
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
        else:
            return name
    raise ImportError("no Qt binding could be imported (" + "; ".join(errors) + ")")


class _Binding:
    """One binding's modules, the event type we post, and our QObject classes.

    The classes must derive from that binding's ``QObject``, so they are made
    here, once per binding, instead of at import time.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.QtCore: Any = importlib.import_module(f"{name}.QtCore")
        QtCore = self.QtCore
        # registerEventType hands out numbers from QEvent::MaxUser down, so
        # ours cannot collide with an application's own custom events.
        self.event_type: Any = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())
        self.close_type: Any = _enum(QtCore.QEvent, "Type", "Close")
        self.read_type: Any = _enum(QtCore.QSocketNotifier, "Type", "Read")
        self.precise_timer: Any = _enum(QtCore.Qt, "TimerType", "PreciseTimer")
        event_type = self.event_type
        close_type = self.close_type

        class Receiver(QtCore.QObject):  # type: ignore[misc, name-defined]
            # customEvent, not event(): QObject::event() hands only custom
            # types to customEvent, so Qt's own events to this object (timers,
            # deferred deletes) never pass through Python.
            def __init__(self, host: QtHost) -> None:
                super().__init__()
                self._host = host

            def customEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
                if event.type() == event_type:
                    self._host._run_batch()

        class CloseFilter(QtCore.QObject):  # type: ignore[misc, name-defined]
            def __init__(self, parent: Any, on_close: Callable[[Any], bool]) -> None:
                super().__init__(parent)
                self._on_close = on_close

            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
                if event.type() == close_type:
                    return self._on_close(event)
                return False

        self.Receiver = Receiver
        self.CloseFilter = CloseFilter


_bindings: dict[str, _Binding] = {}
_bindings_lock = threading.Lock()


def _binding(name: str) -> _Binding:
    with _bindings_lock:
        found = _bindings.get(name)
        if found is None:
            found = _bindings[name] = _Binding(name)
            _warn_if_broken(name, found.QtCore)
        return found


def _enum(owner: Any, scope: str, member: str) -> Any:
    # PyQt6 has only scoped enums (QEvent.Type.Close); PyQt5 has some scoped
    # members and not others (QEvent.Type has no Quit there); PySide6 both.
    try:
        return getattr(getattr(owner, scope), member)
    except AttributeError:
        return getattr(owner, member)


def _warn_if_broken(name: str, core: Any) -> None:
    if name == "PySide6" and sys.version_info < (3, 12):
        version = getattr(core, "__version_info__", ())[:3]
        if tuple(version) == (6, 12, 0):
            # Its functions that return nothing hand back None without a
            # reference on Python < 3.12 (where None is not immortal), so
            # every postEvent/processEvents/QTimer.start call lowers None's
            # count, and a busy app dies with "Fatal Python error:
            # none_dealloc".  A guest makes such calls all the time.
            warnings.warn(
                "PySide6 6.12.0 corrupts the reference count of None on Python < 3.12 "
                "and crashes long-running programs (Fatal Python error: none_dealloc); "
                "use PySide6 6.11 or Python 3.12+",
                RuntimeWarning,
                stacklevel=4,
            )


def qt_modules(binding: str | None = None, *names: str) -> tuple[Any, ...]:
    """Import and return the named modules of the binding
    :func:`detect_binding` picks, e.g. ``QtCore, QtWidgets =
    qt_modules(None, "QtCore", "QtWidgets")`` (for programs that run on
    any binding, like ``examples/qt_app.py``)."""
    name = detect_binding(binding=binding)
    return tuple(importlib.import_module(f"{name}.{module}") for module in names)


def _milliseconds(delay: float) -> int:
    # Round up: a timer that fires before asyncio's deadline only makes the
    # guest go back to waiting, one more turn for nothing.
    return min(max(math.ceil(delay * 1000), 0), _MAX_TIMER_MS)


class _Timer:
    """A reusable single-shot QTimer (one QObject per wait would be churn)."""

    def __init__(self, watcher: QtWatcher) -> None:
        qt = watcher._host._qt
        self._watcher = watcher
        self.qtimer: Any = qt.QtCore.QTimer(watcher._host._receiver)
        self.qtimer.setSingleShot(True)
        # The default CoarseTimer may fire up to 5% early or late; asyncio
        # deadlines want the millisecond the guest asked for.
        self.qtimer.setTimerType(qt.precise_timer)
        self.qtimer.timeout.connect(self._fire)
        self.callback: Callable[[], None] | None = None
        # Which arming a cancel function belongs to: the timer is reused.
        self._generation = 0

    def _fire(self) -> None:
        callback, self.callback = self.callback, None
        self._generation += 1
        self._watcher._free_timers.append(self)
        if callback is not None:
            callback()

    def arm(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        self.callback = callback
        self._generation += 1
        generation = self._generation
        self.qtimer.start(_milliseconds(delay))

        def cancel() -> None:
            # A no-op once the timer fired or was re-armed for someone else.
            if self._generation == generation:
                self._generation += 1
                self.callback = None
                self.qtimer.stop()
                self._watcher._free_timers.append(self)

        return cancel


class QtWatcher:
    """A :class:`~aioguest.PollerWatcher` on Qt's loop: ``QSocketNotifier``
    for the descriptor, single-shot ``QTimer`` for the timeout.  One per
    guest (``watch`` replaces the previous watch)."""

    def __init__(self, host: QtHost) -> None:
        self._host = host
        self._notifier: Any = None
        # Every timer made, strongly: the bindings hold only weak references
        # to a bound method connected as a slot.
        self._timers: list[_Timer] = []
        self._free_timers: list[_Timer] = []

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self.unwatch()
        qt = self._host._qt
        # Parented to the receiver, so Qt owns it: unwatch() may run inside
        # this notifier's own activated signal, where only deleteLater() is
        # a safe way to get rid of it.
        notifier = qt.QtCore.QSocketNotifier(fd, qt.read_type, self._host._receiver)
        # Qt 6 passes (QSocketDescriptor, Type), Qt 5 the int descriptor.
        notifier.activated.connect(lambda *_args: callback())
        notifier.setEnabled(True)
        self._notifier = notifier

    def unwatch(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            # Disabled at once (the descriptor may be closed right after);
            # deleted once control is back in the loop.
            notifier.setEnabled(False)
            notifier.deleteLater()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        if self._free_timers:
            timer = self._free_timers.pop()
        else:
            timer = _Timer(self)
            self._timers.append(timer)
        return timer.arm(delay, callback)


class QtHost:
    """A :class:`aioguest.Host` on the Qt event loop of the calling thread.

    Create it (or let :func:`start` create one) in the thread whose event
    loop will run the guests, after the ``QCoreApplication`` exists.
    ``watch_poller=False`` makes guests wait on the Go worker thread instead
    of a ``QSocketNotifier``.  ``quit_timeout`` bounds how long
    ``aboutToQuit`` waits for cancelled guests to finish their teardown.
    """

    def __init__(
        self,
        *,
        app: Any = None,
        binding: str | None = None,
        watch_poller: bool = True,
        quit_timeout: float = 5.0,
    ) -> None:
        self._qt = _binding(detect_binding(app=app, binding=binding))
        QtCore = self._qt.QtCore
        if app is None:
            app = QtCore.QCoreApplication.instance()
            if app is None:
                raise RuntimeError(
                    "create the QApplication (or QCoreApplication) before the guest's host"
                )
        self.app: Any = app
        self.binding = self._qt.name
        self.watch_poller = watch_poller
        self.quit_timeout = quit_timeout
        self.thread_id = threading.get_ident()
        self._receiver: Any = self._qt.Receiver(self)
        self._callbacks: collections.deque[Callable[[], object]] = collections.deque()
        self._lock = threading.Lock()
        self._posted = False
        self._guests: set[Guest[Any]] = set()
        self._quitting = False
        # aboutToQuit fires in the application's thread only; a host on
        # another thread's loop leaves that to its thread's owner.
        if QtCore.QThread.currentThread() == app.thread():
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- Host ---------------------------------------------------------------

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        # Append before looking at _posted: the batch clears _posted before
        # it counts the deque, so either it sees fn, or we see _posted
        # cleared and post a new event.
        self._callbacks.append(fn)
        with self._lock:
            if self._posted:
                return
            self._posted = True
        qt = self._qt
        try:
            qt.QtCore.QCoreApplication.postEvent(self._receiver, qt.QtCore.QEvent(qt.event_type))
        except BaseException:
            with self._lock:
                self._posted = False
            raise

    run_sync_soon_not_threadsafe = run_sync_soon_threadsafe

    @property
    def poller_watcher(self) -> PollerWatcher | None:
        # A fresh watcher per guest: a watcher watches one descriptor.
        return QtWatcher(self) if self.watch_poller else None

    def _run_batch(self) -> None:
        with self._lock:
            self._posted = False
        callbacks = self._callbacks
        try:
            # Only what was queued before this event arrived: what these
            # callbacks queue goes behind the events Qt has pending.
            for _ in range(len(callbacks)):
                fn = callbacks.popleft()
                try:
                    fn()
                except Exception:
                    # PyQt ends the process (qFatal) when an exception leaves
                    # a virtual method like customEvent.
                    logger.exception("exception in a callback run by the Qt host: %r", fn)
        finally:
            if callbacks:
                with self._lock:
                    post = not self._posted
                    self._posted = True
                if post:
                    qt = self._qt
                    qt.QtCore.QCoreApplication.postEvent(
                        self._receiver, qt.QtCore.QEvent(qt.event_type)
                    )

    # -- guests -------------------------------------------------------------

    def start(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        window: Any = None,
        debug: bool | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        time_slice: float = DEFAULT_TIME_SLICE,
    ) -> Guest[T]:
        """Start *coro* as a guest of this host; see :func:`start`."""
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("start the guest in the thread that created its QtHost")
        guest = start_guest(
            coro, self, debug=debug, loop_factory=loop_factory, time_slice=time_slice
        )
        if not guest.done():
            self._guests.add(guest)
            guest.add_done_callback(self._guests.discard)
            if window is not None:
                _close_after_guest(self._qt, window, guest)
        return guest

    def _on_about_to_quit(self) -> None:
        """The application's loop is returning: cancel our guests and run
        their teardown in a nested loop, so ``exec()`` returns after it."""
        live = [g for g in self._guests if not g.done()]
        if not live or self._quitting:
            return
        self._quitting = True
        try:
            QtCore = self._qt.QtCore
            loop = QtCore.QEventLoop()

            def one_done(_guest: Guest[Any]) -> None:
                if all(g.done() for g in live):
                    loop.quit()

            for guest in live:
                guest.cancel()
                guest.add_done_callback(one_done)
            if not all(g.done() for g in live):
                deadline = QtCore.QTimer()
                deadline.setSingleShot(True)
                deadline.timeout.connect(loop.quit)
                deadline.start(_milliseconds(self.quit_timeout))
                started = time.monotonic()
                loop.exec()
                deadline.stop()
                if not all(g.done() for g in live):
                    logger.error(
                        "guests still running %.1f s after the Qt application quit: %r",
                        time.monotonic() - started,
                        [g for g in live if not g.done()],
                    )
            for guest in live:
                guest.remove_done_callback(one_done)
        finally:
            self._quitting = False


def _close_after_guest(qt: _Binding, window: Any, guest: Guest[Any]) -> None:
    """Closing *window* cancels *guest*; the close happens once it is done."""
    close_requested = False

    def on_close(event: Any) -> bool:
        nonlocal close_requested
        if guest.done():
            return False
        # Keep the window (and whatever the guest's teardown touches in it)
        # until the guest has finished.
        event.ignore()
        if not close_requested:
            close_requested = True
            guest.cancel()
        return True

    close_filter = qt.CloseFilter(window, on_close)
    window.installEventFilter(close_filter)

    def on_done(_guest: Guest[Any]) -> None:
        try:
            window.removeEventFilter(close_filter)
            close_filter.deleteLater()
            if close_requested:
                window.close()
        except RuntimeError:
            # The C++ window is gone already (its parent was deleted).
            pass

    guest.add_done_callback(on_done)


_default_hosts = threading.local()


def _default_host(app: Any, binding: str | None, watch_poller: bool) -> QtHost:
    name = detect_binding(app=app, binding=binding)
    hosts: dict[tuple[str, bool], QtHost] = getattr(_default_hosts, "hosts", None) or {}
    _default_hosts.hosts = hosts
    host = hosts.get((name, watch_poller))
    core = _binding(name).QtCore
    current = app if app is not None else core.QCoreApplication.instance()
    if host is None or host.app is not current:
        host = hosts[name, watch_poller] = QtHost(
            app=current, binding=name, watch_poller=watch_poller
        )
    return host


def start(
    coro: Coroutine[Any, Any, T],
    *,
    window: Any = None,
    app: Any = None,
    binding: str | None = None,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the calling thread's Qt loop.

    Call it after the ``QApplication`` exists, before or inside ``exec()``.
    With *window* (any ``QWidget`` or ``QWindow``), closing the window
    cancels the guest and the window closes once the guest has finished.
    The thread's default :class:`QtHost` for the binding is used (see
    :func:`detect_binding` for *app* and *binding*).
    """
    host = _default_host(app, binding, watch_poller)
    return host.start(
        coro, window=window, debug=debug, loop_factory=loop_factory, time_slice=time_slice
    )


async def exec_dialog(dialog: Any) -> int:
    """Show *dialog* and wait for its result, without blocking the guest.

    The awaitable form of ``dialog.exec()``: the dialog is opened window-
    modal with ``open()`` and the result comes from its ``finished``
    signal, so other guest tasks keep running meanwhile.  Cancelling the
    wait rejects the dialog.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[int] = loop.create_future()

    def on_finished(code: int) -> None:
        if not result.done():
            result.set_result(int(code))

    dialog.finished.connect(on_finished)
    try:
        dialog.open()
        return await result
    finally:
        try:
            dialog.finished.disconnect(on_finished)
        except (RuntimeError, TypeError):
            pass  # the dialog is gone, or the binding disconnected it already
        # Cancelling the task cancelled the future too: no result came.
        if (not result.done() or result.cancelled()) and dialog.isVisible():
            dialog.reject()
