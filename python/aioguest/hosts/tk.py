"""Tkinter host: run an asyncio guest inside Tk's event loop.

::

    root = tkinter.Tk()
    guest = aioguest.hosts.tk.start(main(), root=root)
    root.mainloop()

How callbacks reach Tk's thread, and why:

* **From other threads** (the Go worker, in worker mode): a byte written to
  a pipe that Tk watches with ``createfilehandler``.  tkinter's own
  cross-thread path (``root.after_idle`` from another thread) marshals the
  call to Tk's thread and *blocks the caller* until Tk runs it; it only
  works once ``mainloop()`` runs, and otherwise fails after one second
  with ``RuntimeError: main thread is not in main loop`` (also for apps
  that pump with ``root.update()``).  The pipe never blocks the writer and
  is served by ``mainloop``, ``update`` and nested loops alike.  On Windows,
  where tkinter has no file handlers, a message-only window gets a posted
  message instead: Tcl's Windows notifier dispatches every message of its
  thread (untested: see docs/hosts.md).
* **From the host thread**, host code (a button callback waking the guest,
  the first turn): the same pipe, Tk's cheapest wake-up.
* **A guest turn asking for the next one** (a busy guest whose time slice
  ran out): ``after idle after 0``.  A file event or ``after 0`` repeated
  back to back never lets Tk reach its idle stage, where it redraws
  widgets; ``after idle`` alone re-arms from the idle stage itself, so
  ``update_idletasks()`` would never return.  Going through the idle stage
  and then a timer event lets X events, timers and redraws all through
  once per turn.  A guest that stays busy for long also gets a real 1 ms
  gap every 50 ms, because ``update()`` returns only when Tk finds nothing
  at all to do, and an app that pumps with ``update()`` would otherwise
  never get its thread back.
* **Watching the poller** (the default on Unix): ``createfilehandler`` on
  the Go poller's fd and ``after`` for its timeout; no worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import os
import sys
import threading
import time
import tkinter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE

__all__ = ["TkHost", "TkPollerWatcher", "start", "wait_window"]

T = TypeVar("T")

# How long a guest may stay busy before its next turn waits one real
# millisecond (so that a host pumping with update() gets its thread back).
_BUSY_GAP_EVERY = 0.050
# Tcl's ``after`` takes a C int of milliseconds.
_MAX_AFTER_MS = 2**31 - 1

_names = itertools.count()


def _unique(what: str) -> str:
    return f"aioguest_tk{os.getpid()}_{next(_names)}_{what}"


class _FdWatch:
    """One fd we watch with a Tk file handler (the wake pipe, the poller)."""

    __slots__ = ("active", "callback", "fd", "installed")

    def __init__(self, fd: int, callback: Callable[[], None]) -> None:
        self.fd = fd
        self.callback = callback
        self.active = True
        self.installed = False


class TkHost:
    """An :class:`aioguest.Host` on Tk's event loop.

    Create it on Tk's thread (the one that created ``root``'s interpreter).
    ``watch_poller`` (default: where Tk can watch file descriptors, i.e.
    not on Windows) makes Tk wait for the guest's I/O itself instead of a
    worker thread.  :meth:`close` releases its fds and Tcl commands;
    :func:`start` does that when its guest is done.
    """

    def __init__(self, root: tkinter.Misc, *, watch_poller: bool | None = None) -> None:
        tk = root.tk
        can_watch = hasattr(tk, "createfilehandler")
        if watch_poller is None:
            watch_poller = can_watch
        elif watch_poller and not can_watch:
            raise RuntimeError(
                "this tkinter cannot watch file descriptors (no createfilehandler, as on "
                "Windows): use watch_poller=False"
            )
        self._root = root
        self._tk = tk
        self._thread = threading.get_ident()
        self._queue: collections.deque[Callable[[], object]] = collections.deque()
        self._closed = False
        # How many of our callbacks are on the stack: a turn asking for the
        # next turn from inside one is a busy guest (see the module doc).
        self._depth = 0
        self._fair_pending = False
        self._busy_since: float | None = None
        self._commands: list[str] = []
        self._run_cmd = self._command("run", self._on_fair)
        self._wake_r = self._wake_w = -1
        self._wake_watch: _FdWatch | None = None
        self._window: Any = None
        try:
            if can_watch:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
                self._wake_watch = _FdWatch(self._wake_r, self._on_wake)
                self._install(self._wake_watch)
            elif sys.platform == "win32":
                from .win32 import _MessageWindow

                self._window = _MessageWindow(lambda message: self._invoke(self._drain))
            else:  # pragma: no cover - tkinter without file handlers, not Windows
                raise RuntimeError("tkinter has no createfilehandler on this platform")
        except BaseException:
            self.close()
            raise
        self._watcher = TkPollerWatcher(self) if watch_poller else None

    # -- the Host protocol ---------------------------------------------

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` soon on Tk's thread; callable from any thread.
        Never blocks, and works before ``mainloop()`` starts."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        self._queue.append(fn)
        self._wake()

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """The same, from Tk's thread only."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if self._closed:
            raise RuntimeError("this TkHost is closed")
        self._queue.append(fn)
        if self._depth:
            self._schedule_fair()
        else:
            self._wake()

    @property
    def poller_watcher(self) -> TkPollerWatcher | None:
        return self._watcher

    # -- state -----------------------------------------------------------

    @property
    def root(self) -> tkinter.Misc:
        return self._root

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop: drop queued callbacks, release the pipe and Tcl commands.

        Call it on Tk's thread, once no guest uses this host any more.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        # Drop what refers back to us: a cycle through root could be freed
        # by the garbage collector on any thread, and a Tk interpreter
        # freed off its own thread aborts the process.
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.unwatch()
            watcher._cancel_all()
        wake_watch, self._wake_watch = self._wake_watch, None
        if wake_watch is not None:
            self._uninstall(wake_watch)
        tk = self._tk
        for script in (("after", 0, self._run_cmd), (self._run_cmd,)):
            # ``after cancel script`` cancels the pending call of that exact
            # script; a deleted command left scheduled would raise a Tcl
            # background error when its time came.
            try:
                tk.call("after", "cancel", *script)
            except tkinter.TclError:
                pass
        for name in self._commands:
            try:
                tk.deletecommand(name)
            except tkinter.TclError:
                pass
        self._commands.clear()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._window is not None:
            self._window.close()
            self._window = None

    # -- scheduling ------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # a full pipe already means a wake-up is pending
        elif self._window is not None:
            self._window.post()

    def _schedule_fair(self) -> None:
        if self._fair_pending:
            return
        self._fair_pending = True
        now = time.perf_counter()
        if self._busy_since is None:
            self._busy_since = now
        if now - self._busy_since >= _BUSY_GAP_EVERY:
            self._busy_since = now
            self._tk.call("after", 1, self._run_cmd)
        else:
            self._tk.call("after", "idle", "after", 0, self._run_cmd)

    def _on_fair(self) -> None:
        self._fair_pending = False
        self._invoke(self._drain)

    def _on_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        self._drain()

    def _drain(self) -> None:
        # Only what is queued now: callbacks queued meanwhile have asked
        # for (and get) their own wake-up, after Tk's pending events.
        queue = self._queue
        for _ in range(len(queue)):
            if self._closed or not queue:  # a nested loop may have run them
                return
            self._invoke(queue.popleft())

    def _invoke(self, fn: Callable[[], object]) -> None:
        """Run one of our callbacks the way Tk runs a widget callback."""
        self._depth += 1
        try:
            fn()
        except Exception:
            # An exception escaping a Tcl callback into _tkinter ends
            # mainloop() (and is re-raised there); tkinter's own callbacks
            # report it instead, and so do we.
            self._report()
        finally:
            self._depth -= 1
            if not self._depth and not self._fair_pending:
                self._busy_since = None

    def _report(self) -> None:
        exc_type, exc, tb = sys.exc_info()
        assert exc_type is not None and exc is not None
        try:
            tk_root = self._root.nametowidget(".")
            tk_root.report_callback_exception(exc_type, exc, tb)
        except Exception:
            import traceback

            traceback.print_exception(exc_type, exc, tb)

    # -- Tcl commands and file handlers -----------------------------------

    def _command(self, what: str, fn: Callable[..., object]) -> str:
        name = _unique(what)
        self._tk.createcommand(name, fn)
        self._commands.append(name)
        return name

    def _install(self, watch: _FdWatch) -> None:
        def on_event(fd: object, mask: int) -> None:
            self._on_fd(watch)

        self._tk.createfilehandler(watch.fd, tkinter.READABLE, on_event)
        watch.installed = True

    def _uninstall(self, watch: _FdWatch) -> None:
        watch.active = False
        if watch.installed:
            watch.installed = False
            self._tk.deletefilehandler(watch.fd)

    def _on_fd(self, watch: _FdWatch) -> None:
        if not self._closed and watch.active:
            self._invoke(watch.callback)


class TkPollerWatcher:
    """Tk watches the guest's poller fd (``createfilehandler``) and runs its
    timeout (``after``): the :class:`aioguest.PollerWatcher` of a
    :class:`TkHost`."""

    def __init__(self, host: TkHost) -> None:
        self._host = host
        self._watch: _FdWatch | None = None
        self._timers: dict[str, tuple[str, Callable[[], None]]] = {}
        self._keys = itertools.count()
        self._timer_cmd = host._command("timer", self._on_timer)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        current = self._watch
        if current is not None and current.fd == fd and current.active:
            # Tcl's notifier re-reads its fd masks on every change: keep
            # the handler rather than replace it.
            current.callback = callback
            return
        self.unwatch()
        self._watch = _FdWatch(fd, callback)
        self._host._install(self._watch)

    def unwatch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._host._uninstall(watch)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        # Tcl timers have millisecond resolution: round up, never early.
        ms = min(max(math.ceil(delay * 1000), 0), _MAX_AFTER_MS)
        key = str(next(self._keys))
        after_id = self._host._tk.call("after", ms, self._timer_cmd, key)
        self._timers[key] = (after_id, callback)

        def cancel() -> None:
            entry = self._timers.pop(key, None)
            if entry is not None and not self._host._closed:
                self._host._tk.call("after", "cancel", entry[0])

        return cancel

    def _on_timer(self, key: str) -> None:
        entry = self._timers.pop(key, None)
        if entry is not None and not self._host._closed:
            self._host._invoke(entry[1])

    def _cancel_all(self) -> None:
        timers, self._timers = self._timers, {}
        for after_id, _ in timers.values():
            try:
                self._host._tk.call("after", "cancel", after_id)
            except tkinter.TclError:
                pass


def start(
    coro: Coroutine[Any, Any, T],
    *,
    root: tkinter.Tk | tkinter.Toplevel,
    watch_poller: bool | None = None,
    cancel_on_close: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of Tk's loop; return its Guest.

    Call it on Tk's thread, before or after ``root.mainloop()`` started (the
    guest runs once Tk processes events: ``mainloop``, ``update``, or a
    nested loop such as ``wait_window``).  The guest may touch widgets
    directly: it runs on Tk's thread.

    ``cancel_on_close``: closing *root* (the window manager's close button,
    ``WM_DELETE_WINDOW``) cancels the guest instead of destroying the
    window; once the guest has finished its teardown, the close goes on as
    it would have without the guest: the window's previous
    ``WM_DELETE_WINDOW`` handler if it had one, else ``root.destroy()``.
    ``watch_poller``: see :class:`TkHost`.  The other arguments are those of
    :func:`aioguest.start_guest_run`.
    """
    try:
        host = TkHost(root, watch_poller=watch_poller)
    except BaseException:
        _close_coroutine(coro)
        raise
    try:
        guest = start_guest(
            coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice
        )
    except BaseException:
        host.close()
        raise
    guest.add_done_callback(lambda _: host.close())
    if cancel_on_close:
        _cancel_on_close(root, guest)
    return guest


def _cancel_on_close(window: tkinter.Tk | tkinter.Toplevel, guest: Guest[Any]) -> None:
    previous = window.protocol("WM_DELETE_WINDOW")
    closing = False

    def on_close() -> None:
        nonlocal closing
        closing = True
        guest.cancel()

    name = window.register(on_close)
    window.protocol("WM_DELETE_WINDOW", name)

    def go_on_closing() -> None:
        try:
            if previous:
                window.tk.eval(previous)
            else:
                window.destroy()
        except tkinter.TclError:
            pass  # destroyed meanwhile

    def on_done(_: Guest[Any]) -> None:
        try:
            window.protocol("WM_DELETE_WINDOW", previous)
            window.deletecommand(name)
        except tkinter.TclError:
            return  # the window is gone already: nothing left to close
        if closing:
            # After the application's own done callbacks (registered
            # after ours), which may still want to touch the window.
            window.after_idle(go_on_closing)

    guest.add_done_callback(on_done)


async def wait_window(window: tkinter.Misc) -> None:
    """Wait until *window* is destroyed, without blocking the guest.

    The awaitable form of ``window.wait_window()``: that one spins a nested
    Tk loop and does not return until the window is gone, so guest code
    calling it blocks the whole guest (like any blocking call in asyncio).
    Use this for modal dialogs opened by guest code.
    """
    loop = asyncio.get_running_loop()
    tk = window.tk
    try:
        if not window.winfo_exists():
            return
    except tkinter.TclError:
        return
    done: asyncio.Future[None] = loop.create_future()

    def destroyed() -> None:
        if not done.done():
            done.set_result(None)

    # A bind tag of our own on the window alone: ``bind $window <Destroy>``
    # would also fire for each child (children carry their toplevel's name
    # among their bind tags) and would have to share the window's binding
    # script with the application's.
    tag = _unique("destroy")
    tk.createcommand(tag, destroyed)
    try:
        tk.call("bind", tag, "<Destroy>", tag)
        window.bindtags((tag, *window.bindtags()))
        await done
    finally:
        try:
            if window.winfo_exists():
                window.bindtags(tuple(t for t in window.bindtags() if t != tag))
            tk.call("bind", tag, "<Destroy>", "")
        except tkinter.TclError:
            pass
        tk.deletecommand(tag)


def _close_coroutine(coro: object) -> None:
    close = getattr(coro, "close", None)
    if asyncio.iscoroutine(coro) and callable(close):
        close()
