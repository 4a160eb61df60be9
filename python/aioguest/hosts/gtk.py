"""Run an asyncio guest inside a GLib main loop: GTK 3, GTK 4, or plain GLib.

GTK has no loop of its own: ``Gtk.main()``, ``Gtk.Application.run()``,
``Gtk.Dialog.run()`` and ``GLib.MainLoop.run()`` all iterate a
``GLib.MainContext`` (the global default one, for GTK).  So the host here is
that context, and it serves any program built on it through PyGObject::

    window = Gtk.Window()
    guest = aioguest.hosts.gtk.start(main(), window=window)
    Gtk.main()          # or app.run(), or GLib.MainLoop().run()

* Turns are idle sources on the context (``g_idle_add`` and
  ``g_source_attach`` are thread-safe and wake the context, so the Go worker
  may queue them too).
* By default the guest waits in the context itself: a ``GUnixFDSource``
  watches the Go poller's descriptor and a timeout source stands for
  asyncio's timer, so no thread is involved (``watch_poller=False`` leaves
  the wait to the Go worker thread instead).
* Everything runs at ``GLib.PRIORITY_DEFAULT_IDLE`` unless told otherwise:
  GLib dispatches only the most urgent ready sources in an iteration, so a
  guest busy at ``PRIORITY_DEFAULT`` would shut out GTK's redraws
  (``GDK_PRIORITY_REDRAW``, between the two) for as long as it stays busy.
  Input events and ordinary timeouts (``PRIORITY_DEFAULT``) come first either
  way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gi.repository import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    GLib,
    GObject,
)

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE, PollerWatcher

__all__ = ["GLibHost", "GLibWatcher", "run_dialog", "start"]

T = TypeVar("T")

# GLib's timeouts take a guint of milliseconds.
_MAX_TIMEOUT_MS = 2**32 - 1


def _call_once(fn: Callable[[], object]) -> bool:
    fn()
    # An idle or timeout source whose callback returns True runs again.
    return GLib.SOURCE_REMOVE  # type: ignore[no-any-return]


def _fire_fd(_fd: int, _condition: Any, callback: Callable[[], None]) -> bool:
    callback()
    # Keep the source: the driver removes it through unwatch() when it wants
    # to (even from inside this callback; GLib then ignores our answer).
    return GLib.SOURCE_CONTINUE  # type: ignore[no-any-return]


def _milliseconds(delay: float) -> int:
    # Round up: a timeout that ends before asyncio's timer is due would
    # only make the guest wait again.
    return min(max(math.ceil(delay * 1000), 0), _MAX_TIMEOUT_MS)


class _FdSource(GLib.Source):  # type: ignore[misc]
    """A readable-fd source for a context other than the global default.

    ``GLib.unix_fd_add_full`` always attaches to the global default context,
    and a ``g_unix_fd_source_new`` source cannot be given a Python callback
    (PyGObject marshals it as a plain ``GSourceFunc``), so for other
    contexts the source is written in Python.
    """

    def __init__(self, fd: int, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback = callback
        self._tag = self.add_unix_fd(fd, GLib.IOCondition.IN)

    def prepare(self) -> tuple[bool, int]:
        return False, -1

    def check(self) -> bool:
        return bool(self.query_unix_fd(self._tag) & GLib.IOCondition.IN)

    def dispatch(self, _callback: object, _args: object) -> bool:
        self._callback()
        return GLib.SOURCE_CONTINUE  # type: ignore[no-any-return]


class _Timer:
    """One ``call_later``: a timeout source, cancelled at most once."""

    __slots__ = ("_callback", "_cancel")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback
        self._cancel: Callable[[], object] | None = None

    def fire(self, *_user_data: object) -> bool:
        callback, self._callback = self._callback, None
        # The source goes away as this returns False: nothing to cancel.
        self._cancel = None
        if callback is not None:
            callback()
        return GLib.SOURCE_REMOVE  # type: ignore[no-any-return]

    def cancel(self) -> None:
        self._callback = None
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()


class GLibWatcher:
    """The :class:`~aioguest.PollerWatcher` of a :class:`GLibHost`."""

    def __init__(self, context: Any, priority: int) -> None:
        self._context = context
        self._priority = priority
        self._default = context == GLib.MainContext.default()
        self._source_id = 0
        self._source: Any = None

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self.unwatch()
        if self._default:
            self._source_id = GLib.unix_fd_add_full(
                self._priority, fd, GLib.IOCondition.IN, _fire_fd, callback
            )
        else:
            source = _FdSource(fd, callback)
            source.set_priority(self._priority)
            source.attach(self._context)
            # A Python-defined source is destroyed with its wrapper: keep it.
            self._source = source

    def unwatch(self) -> None:
        source_id, self._source_id = self._source_id, 0
        if source_id:
            GLib.source_remove(source_id)
        source, self._source = self._source, None
        if source is not None:
            source.destroy()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        timer = _Timer(callback)
        ms = _milliseconds(delay)
        if self._default:
            source_id = GLib.timeout_add(ms, timer.fire, priority=self._priority)
            timer._cancel = lambda: GLib.source_remove(source_id)
        else:
            source = GLib.timeout_source_new(ms)
            source.set_priority(self._priority)
            source.set_callback(timer.fire)
            source.attach(self._context)
            timer._cancel = source.destroy
        return timer.cancel


class GLibHost:
    """A :class:`aioguest.Host` on a ``GLib.MainContext``.

    *context* defaults to the calling thread's default context (the global
    default one, which GTK uses, unless the thread pushed its own).  Create
    the host on the thread that runs that context.
    """

    def __init__(
        self,
        context: Any = None,
        *,
        priority: int = GLib.PRIORITY_DEFAULT_IDLE,
        watch_poller: bool = True,
    ) -> None:
        if context is None:
            context = GLib.MainContext.ref_thread_default()
        self.context: Any = context
        self.priority = priority
        self._default = context == GLib.MainContext.default()
        self._watcher = GLibWatcher(context, priority) if watch_poller else None

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        if self._default:
            GLib.idle_add(_call_once, fn, priority=self.priority)
            return
        source = GLib.idle_source_new()
        source.set_priority(self.priority)
        source.set_callback(_call_once, fn)
        # g_source_attach locks the context and wakes it if it is polling in
        # another thread; the context keeps the source alive until it ran.
        source.attach(self.context)

    # g_idle_add has no cheaper same-thread form.
    run_sync_soon_not_threadsafe = run_sync_soon_threadsafe

    @property
    def poller_watcher(self) -> PollerWatcher | None:
        return self._watcher


def start(
    coro: Coroutine[Any, Any, T],
    *,
    window: Any = None,
    context: Any = None,
    priority: int = GLib.PRIORITY_DEFAULT_IDLE,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the GLib main loop; return its
    :class:`~aioguest.Guest`.  Call it on the thread that runs the loop
    (before or after the loop starts).

    *window* (a ``Gtk.Window``, GTK 3 or 4): closing it cancels the guest,
    and the window is destroyed only once the guest has finished tearing
    down (so ``Gtk.main_quit`` on ``destroy``, or a ``Gtk.Application``
    that quits with its last window, end the program after the guest).
    Connect a handler that vetoes closing before calling this, if you have
    one.
    """
    host = GLibHost(context, priority=priority, watch_poller=watch_poller)
    guest = start_guest(coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice)
    if window is not None:
        _close_after_guest(window, guest)
    return guest


def _close_after_guest(window: Any, guest: Guest[Any]) -> None:
    # GTK 4 replaced GTK 3's delete-event with close-request; both stop the
    # window from closing when a handler returns True.
    if GObject.signal_lookup("close-request", type(window)):
        signal = "close-request"
    else:
        signal = "delete-event"
    closing = False

    def on_close(*_args: object) -> bool:
        nonlocal closing
        if guest.done():
            return False
        if not closing:
            closing = True
            guest.cancel()
            guest.add_done_callback(lambda _guest: window.destroy())
        return True

    window.connect(signal, on_close)


async def run_dialog(dialog: Any) -> Any:
    """Show *dialog* and wait for its ``response`` signal without blocking
    the guest; return the response id.

    The awaitable form of GTK 3's ``Gtk.Dialog.run()`` (which spins a nested
    main loop and so would freeze every other guest task until it returns)
    and of what GTK 4 leaves to the ``response`` signal.  Works with
    anything that has a ``response`` signal and ``present()`` or ``show()``
    (``Gtk.Dialog``, ``Gtk.FileChooserNative``).  If the waiting task is
    cancelled, the dialog is hidden.
    """
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_response(_dialog: Any, response: Any) -> None:
        if not future.done():
            future.set_result(response)

    handler = dialog.connect("response", on_response)
    try:
        present = getattr(dialog, "present", None)
        if present is not None:
            present()
        else:
            dialog.show()
        return await future
    except asyncio.CancelledError:
        set_visible = getattr(dialog, "set_visible", None)
        if set_visible is not None:
            set_visible(False)
        else:
            dialog.hide()
        raise
    finally:
        dialog.disconnect(handler)
