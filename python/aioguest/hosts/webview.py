"""Run an asyncio guest on webview-python's loop; JavaScript awaits ``async def``.

webview-python (``import webview``) wraps the webview C library: one native
window whose loop (``webview_run``) owns the main thread.  This module runs an
asyncio guest on that loop and binds ``async def`` functions so that calling
them from JavaScript returns a Promise settled with the coroutine's result::

    wv = webview.Webview()

    async def fetch_title(url):          # runs in the asyncio guest
        ...
        return title

    async def main():
        aioguest.hosts.webview.bind(wv, "fetchTitle", fetch_title)
        wv.navigate(page_url)            # JS: const t = await fetchTitle(url)
        await asyncio.Event().wait()     # until the window closes

    aioguest.hosts.webview.run(wv, main())

How the guest gets the webview's thread:

* **glib** (Linux, when PyGObject is installed; the default there): the
  webview library's GTK backend iterates the process's global default GLib
  main context, so :class:`aioguest.hosts.gtk.GLibHost` serves it as it
  serves GTK, watching the Go poller's fd with no worker thread, at idle
  priority (a busy guest does not hold up WebKit's redraws).
* **dispatch** (anywhere else): ``webview_dispatch``, the library's
  thread-safe "run this on the UI thread", with the Go worker waiting.

Why ``run()`` rather than ``Webview.run()``: the latter destroys the webview
as soon as its loop returns, leaving a running guest without a loop to finish
in.  ``run()`` cancels the guest when the window closes, keeps serving it
until its teardown is over, and destroys the webview after that.

webview-python loads its native library on import (and downloads it if it
is missing), so this module imports ``webview`` only when used.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import itertools
import json
import queue
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

from ..guest import Guest, Host, start_guest
from ..turn import DEFAULT_TIME_SLICE, PollerWatcher

__all__ = ["DispatchHost", "bind", "run", "start", "terminate"]

T = TypeVar("T")

HostKind = Literal["auto", "glib", "dispatch"]

# webview's dispatch callback: void fn(webview_t w, void *arg).
_DISPATCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# webview's binding callback: void fn(const char *id, const char *req, void *arg).
_BIND_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


def _native() -> Any:
    """webview-python's ctypes handle on the webview C library."""
    from webview._webview_ffi import _webview_lib  # type: ignore[import-untyped, import-not-found, unused-ignore]

    return _webview_lib.lib


# Dispatch hosts by key, weakly: a note the webview serves after its host
# is gone (GLib may still hold notes when the webview is destroyed) finds
# nothing instead of calling into freed memory.
_dispatch_hosts: weakref.WeakValueDictionary[int, DispatchHost] = weakref.WeakValueDictionary()
_dispatch_keys = itertools.count(1)


def _serve(_w: int | None, key: int | None) -> None:
    host = _dispatch_hosts.get(key or 0)
    if host is not None:
        host._run_next()


# One C trampoline for the process's life: ctypes frees a callback's
# trampoline with its Python object, and the webview may hold notes
# pointing at it for longer than any one host lives.
_serve_note = _DISPATCH_FN(_serve)


class DispatchHost:
    """A :class:`aioguest.Host` that queues callbacks with ``webview_dispatch``.

    Our own deque holds the callbacks and the native side only carries
    "run the next one" notes, so that :meth:`detach` can take back whatever
    the webview's loop will no longer run once it has returned.
    """

    def __init__(self, webview: Any) -> None:
        lib = _native()
        self._dispatch = lib.webview_dispatch
        self._dispatch.argtypes = [ctypes.c_void_p, _DISPATCH_FN, ctypes.c_void_p]
        self._dispatch.restype = ctypes.c_int
        self._webview = webview
        self._pending: collections.deque[Callable[[], object]] = collections.deque()
        self._key = next(_dispatch_keys)
        _dispatch_hosts[self._key] = self
        self._detached: queue.SimpleQueue[Callable[[], object]] | None = None
        # Orders a sender's "detached yet?" check and its note against
        # detach(): a note sent after the loop returned would never be served.
        self._lock = threading.Lock()

    def _run_next(self) -> None:
        try:
            fn = self._pending.popleft()
        except IndexError:
            return  # taken back by detach()
        fn()

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        with self._lock:
            if self._detached is not None:
                self._detached.put(fn)
                return
            # The webview thread pops one callback per note, in order.
            self._pending.append(fn)
            self._dispatch(self._webview._handle, _serve_note, self._key)

    run_sync_soon_not_threadsafe = run_sync_soon_threadsafe

    @property
    def poller_watcher(self) -> PollerWatcher | None:
        return None

    def detach(self) -> queue.SimpleQueue[Callable[[], object]]:
        """After the webview's loop returned: queue callbacks here instead
        (the caller runs them) and take back those never run."""
        detached: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        with self._lock:
            self._detached = detached
            while self._pending:
                detached.put(self._pending.popleft())
        return detached


def _make_host(webview: Any, kind: HostKind, watch_poller: bool) -> Host:
    if kind == "auto":
        kind = "glib" if sys.platform == "linux" and _have_glib() else "dispatch"
    if kind == "glib":
        from . import gtk

        return gtk.GLibHost(watch_poller=watch_poller)
    return DispatchHost(webview)


def _have_glib() -> bool:
    try:
        from gi.repository import GLib  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except (ImportError, ValueError):
        return False
    return True


# The guest start() began on each webview (by id), for bind()'s default.
_guests: dict[int, Guest[Any]] = {}


def start(
    coro: Coroutine[Any, Any, T],
    *,
    webview: Any,
    host: HostKind = "auto",
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of *webview*'s loop; return its
    :class:`~aioguest.Guest`.

    Call it on the thread that runs the webview, before or while its loop
    runs; prefer :func:`run`, which also ends the guest cleanly.
    *host* picks how the guest reaches the loop (see the module doc);
    *watch_poller* applies to the GLib host.
    """
    guest, _host = _start(coro, webview, host, watch_poller, debug, loop_factory, time_slice)
    return guest


def _start(
    coro: Coroutine[Any, Any, T],
    webview: Any,
    kind: HostKind,
    watch_poller: bool,
    debug: bool | None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    time_slice: float,
) -> tuple[Guest[T], Host]:
    host = _make_host(webview, kind, watch_poller)
    guest = start_guest(coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice)
    key = id(webview)
    _guests[key] = guest

    def forget(_guest: Guest[T]) -> None:
        if _guests.get(key) is guest:
            del _guests[key]

    guest.add_done_callback(forget)
    return guest, host


def run(
    webview: Any,
    coro: Coroutine[Any, Any, T],
    *,
    host: HostKind = "auto",
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> T:
    """Run the webview's loop with *coro* as its asyncio guest, until the
    window closes (or :func:`terminate`); then cancel the guest, serve it
    until its teardown is over, destroy the webview, and return the guest's
    result (or raise its exception, ``CancelledError`` if it was still
    running when the window closed).
    """
    guest, chosen = _start(coro, webview, host, watch_poller, debug, loop_factory, time_slice)
    try:
        _native().webview_run(webview._handle)
    finally:
        _closing.add(id(webview))
        try:
            guest.cancel()
            _finish(guest, chosen)
        finally:
            try:
                _destroy(webview)
            finally:
                _closing.discard(id(webview))
    return guest.result()


def _destroy(webview: Any) -> None:
    """``webview.destroy()``, without its crash on calls still in flight.

    webview_destroy serves the loop's pending events while it takes the
    window down, after the web view itself is released; a JavaScript call
    served then runs its Python binding, whose answer (webview_return)
    evaluates script in the released web view: a segfault, seen with
    JavaScript timers calling bound functions.  So unbind everything first
    and serve what is already queued while the webview is whole (the
    bindings' trampolines kept alive meanwhile), then destroy.
    """
    lib = _native()
    handle = webview._handle
    if handle is None:
        return
    bindings = dict(webview._callbacks)
    for name in bindings:
        lib.webview_unbind(handle, name.encode())
    webview._callbacks.clear()
    # terminate() queues "stop" behind everything already pending, so this
    # run serves the queue once and returns.
    lib.webview_terminate(handle)
    lib.webview_run(handle)
    webview.destroy()
    del bindings  # only now may ctypes free the trampolines


# Webviews whose loop has returned: settling a JavaScript promise would
# evaluate script in a page that is going away.
_closing: set[int] = set()


def _finish(guest: Guest[Any], host: Host) -> None:
    """Serve *guest* on this thread until it is done (the webview's loop
    has returned)."""
    if guest.done():
        return
    if isinstance(host, DispatchHost):
        pending = host.detach()
        while not guest.done():
            pending.get()()
        return
    # The GLib host: the callbacks are sources on the default context,
    # which nobody iterates any more.
    from gi.repository import GLib  # type: ignore[import-untyped, import-not-found, unused-ignore]

    loop = GLib.MainLoop()
    guest.add_done_callback(lambda _g: loop.quit())
    if not guest.done():
        loop.run()


def terminate(webview: Any) -> None:
    """Make the webview's loop return (as closing its window does); :func:`run`
    then ends the guest and destroys the webview."""
    lib = _native()
    lib.webview_terminate(webview._handle)


def bind(
    webview: Any,
    name: str,
    fn: Callable[..., Awaitable[Any]],
    *,
    guest: Guest[Any] | None = None,
) -> None:
    """Expose ``async def`` *fn* to JavaScript as ``window[name]``.

    A call from JavaScript starts ``fn(*args)`` as a task in the guest (the
    arguments and the result travel as JSON) and returns a Promise: it
    resolves with the result, or rejects with ``{name, message}`` if the
    coroutine raised or was cancelled (as every task is when the guest
    ends).  *guest* defaults to the one :func:`start` or :func:`run` began
    on this webview.  Remove it with ``webview.unbind(name)``.
    """
    lib = _native()

    def settle(seq: str, status: int, result: Any) -> None:
        if id(webview) in _closing or webview._handle is None:
            return
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            status, payload = 1, json.dumps(_error(exc))
        webview.return_(seq, status, payload)

    def on_task_done(seq: str, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            settle(seq, 1, {"name": "CancelledError", "message": "the call was cancelled"})
        elif task.exception() is not None:
            settle(seq, 1, _error(task.exception()))
        else:
            settle(seq, 0, task.result())

    def on_call(seq_bytes: bytes, req: bytes, _arg: int | None) -> None:
        # The webview's thread, like every other host callback: the guest's
        # loop is not running, and host code may create tasks on it.
        seq = seq_bytes.decode()
        owner = guest
        if owner is None:
            owner = _guests.get(id(webview))
        if owner is None or owner.done() or owner.task is None:
            settle(seq, 1, {"name": "RuntimeError", "message": "no asyncio guest is running"})
            return
        try:
            args = json.loads(req)
            coro = fn(*args)
            task = owner.task.get_loop().create_task(_as_coroutine(coro))
        except Exception as exc:
            settle(seq, 1, _error(exc))
            return
        task.add_done_callback(lambda t: on_task_done(seq, t))

    callback = _BIND_FN(on_call)
    # webview-python keeps its own callbacks here, and unbind()/destroy()
    # release them from here: the C trampoline must live until then.
    webview._callbacks[name] = callback
    lib.webview_bind(webview._handle, name.encode(), callback, None)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _error(exc: BaseException | None) -> dict[str, str]:
    return {"name": type(exc).__name__, "message": str(exc)}
