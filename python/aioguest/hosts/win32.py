"""Win32 host: run an asyncio guest inside a thread's Win32 message loop.

::

    guest = aioguest.hosts.win32.start(main(), quit_when_done=True)
    aioguest.hosts.win32.run_message_loop()   # or the application's own loop

Windows only, and **untested**: aioguest's tests run on Linux, where this
module imports (so that its pure-Python parts are tested against a fake of
the Win32 calls) but :func:`start` raises :class:`OSError`.  aioguest's Go
poller has no Windows backend yet either, so today a guest cannot run on
Windows at all; this host is ready for when it has.

How callbacks reach the GUI thread: a message-only window (parent
``HWND_MESSAGE``: invisible, never enumerated, receives posted messages
only) created on that thread, and ``PostMessageW`` to it from any thread;
its window procedure runs the queued callbacks when the thread's message
loop dispatches the message.  Posts are coalesced: one message in the
queue at a time, whatever the number of callbacks.

Posted messages come out of ``GetMessage`` before input, ``WM_PAINT`` and
``WM_TIMER``, so a guest that reschedules itself by posting would starve
the window's input and painting.  When a turn asks for the next one while
the thread has input, paint or timer messages waiting, the next turn comes
from a ``WM_TIMER`` instead (the lowest priority, ``USER_TIMER_MINIMUM`` =
10 ms later): the host's own messages go first.

Windows has no file descriptor for the host loop to watch, so the guest
waits on aioguest's worker thread (no :class:`~aioguest.PollerWatcher`).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE

__all__ = ["Win32Host", "run_message_loop", "start"]

T = TypeVar("T")

# -- Win32 types and constants (ctypes.wintypes needs Windows on old Pythons)

_HWND = ctypes.c_void_p
_UINT = ctypes.c_uint
_WPARAM = ctypes.c_size_t  # UINT_PTR
_LPARAM = ctypes.c_ssize_t  # LONG_PTR
_LRESULT = ctypes.c_ssize_t

# WINFUNCTYPE (stdcall) exists only on Windows; elsewhere the type is only
# built so that the fake Win32 of the tests can call the window procedure.
_FUNCTYPE: Any = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
WNDPROC = _FUNCTYPE(_LRESULT, _HWND, _UINT, _WPARAM, _LPARAM)

HWND_MESSAGE = -3
WM_TIMER = 0x0113
WM_APP = 0x8000
#: The message that runs our callbacks (any value in WM_APP..0xBFFF is ours).
WM_AIOGUEST = WM_APP + 0x0A10
QS_KEY = 0x0001
QS_MOUSEMOVE = 0x0002
QS_MOUSEBUTTON = 0x0004
QS_PAINT = 0x0020
QS_TIMER = 0x0010
QS_HOTKEY = 0x0080
QS_RAWINPUT = 0x0400
#: Messages that Windows delivers after posted ones: the host's own work.
QS_HOST = QS_KEY | QS_MOUSEMOVE | QS_MOUSEBUTTON | QS_RAWINPUT | QS_HOTKEY | QS_PAINT | QS_TIMER
USER_TIMER_MINIMUM = 10
ERROR_CLASS_ALREADY_EXISTS = 1410
_TIMER_ID = 1


class POINT(ctypes.Structure):
    _fields_ = [("x", ctypes.c_long), ("y", ctypes.c_long)]


class MSG(ctypes.Structure):
    _fields_ = [
        ("hwnd", _HWND),
        ("message", _UINT),
        ("wParam", _WPARAM),
        ("lParam", _LPARAM),
        ("time", ctypes.c_ulong),
        ("pt", POINT),
    ]


class WNDCLASSEXW(ctypes.Structure):
    _fields_ = [
        ("cbSize", _UINT),
        ("style", _UINT),
        ("lpfnWndProc", WNDPROC),
        ("cbClsExtra", ctypes.c_int),
        ("cbWndExtra", ctypes.c_int),
        ("hInstance", ctypes.c_void_p),
        ("hIcon", ctypes.c_void_p),
        ("hCursor", ctypes.c_void_p),
        ("hbrBackground", ctypes.c_void_p),
        ("lpszMenuName", ctypes.c_wchar_p),
        ("lpszClassName", ctypes.c_wchar_p),
        ("hIconSm", ctypes.c_void_p),
    ]


class Api(Protocol):
    """The user32/kernel32 functions this module calls (the tests fake it)."""

    def GetModuleHandleW(self, name: str | None, /) -> int | None: ...
    def RegisterClassExW(self, wc: Any, /) -> int: ...
    def CreateWindowExW(self, *args: Any) -> int | None: ...
    def DestroyWindow(self, hwnd: int, /) -> int: ...
    def DefWindowProcW(self, hwnd: int, msg: int, wparam: int, lparam: int, /) -> int: ...
    def PostMessageW(self, hwnd: int, msg: int, wparam: int, lparam: int, /) -> int: ...
    def GetQueueStatus(self, flags: int, /) -> int: ...
    def SetTimer(self, hwnd: int, event_id: int, ms: int, func: Any, /) -> int: ...
    def KillTimer(self, hwnd: int, event_id: int, /) -> int: ...
    def GetMessageW(self, msg: Any, hwnd: int | None, first: int, last: int, /) -> int: ...
    def TranslateMessage(self, msg: Any, /) -> int: ...
    def DispatchMessageW(self, msg: Any, /) -> int: ...
    def PostQuitMessage(self, code: int, /) -> None: ...
    def get_last_error(self) -> int: ...


class _Win32:
    """The real functions, with prototypes (so pointer-sized values stay
    64-bit on Win64 instead of ctypes' default C int)."""

    def __init__(self) -> None:
        if sys.platform == "win32":
            self._bind(
                ctypes.WinDLL("user32", use_last_error=True),
                ctypes.WinDLL("kernel32", use_last_error=True),
            )
        else:
            raise OSError(
                f"aioguest.hosts.win32 needs Windows (this is {sys.platform}): it drives a "
                "Win32 message loop through user32.dll"
            )

    def _bind(self, user32: Any, kernel32: Any) -> None:
        pmsg = ctypes.POINTER(MSG)
        protos: list[tuple[Any, str, Any, list[Any]]] = [
            (kernel32, "GetModuleHandleW", ctypes.c_void_p, [ctypes.c_wchar_p]),
            (user32, "RegisterClassExW", ctypes.c_ushort, [ctypes.POINTER(WNDCLASSEXW)]),
            (
                user32,
                "CreateWindowExW",
                _HWND,
                [ctypes.c_ulong, ctypes.c_wchar_p, ctypes.c_wchar_p, ctypes.c_ulong]
                + [ctypes.c_int] * 4
                + [_HWND, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p],
            ),
            (user32, "DestroyWindow", ctypes.c_int, [_HWND]),
            (user32, "DefWindowProcW", _LRESULT, [_HWND, _UINT, _WPARAM, _LPARAM]),
            (user32, "PostMessageW", ctypes.c_int, [_HWND, _UINT, _WPARAM, _LPARAM]),
            (user32, "GetQueueStatus", ctypes.c_ulong, [_UINT]),
            (user32, "SetTimer", _WPARAM, [_HWND, _WPARAM, _UINT, ctypes.c_void_p]),
            (user32, "KillTimer", ctypes.c_int, [_HWND, _WPARAM]),
            (user32, "GetMessageW", ctypes.c_int, [pmsg, _HWND, _UINT, _UINT]),
            (user32, "TranslateMessage", ctypes.c_int, [pmsg]),
            (user32, "DispatchMessageW", _LRESULT, [pmsg]),
            (user32, "PostQuitMessage", None, [ctypes.c_int]),
        ]
        for dll, name, restype, argtypes in protos:
            fn = getattr(dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def get_last_error(self) -> int:
        return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]


_api: Api | None = None
_api_lock = threading.Lock()


def _load_api() -> Api:
    global _api
    with _api_lock:
        api = _api
        if api is None:
            api = _api = cast(Api, _Win32())
        return api


def _win_error(api: Api, what: str) -> OSError:
    code = api.get_last_error()
    return OSError(f"{what} failed (Windows error {code})")


# -- the message-only window ----------------------------------------------------

# Message-only windows by handle, for the one window procedure; and the
# window class registered per Api (once per process for the real one),
# with its procedure, a ctypes callback that must outlive every window.
_windows: dict[int, _MessageWindow] = {}
_classes: weakref.WeakKeyDictionary[Any, tuple[str, Any]] = weakref.WeakKeyDictionary()
# An exception (KeyboardInterrupt, SystemExit) raised by a callback inside
# the window procedure, per thread: ctypes cannot propagate it through
# DispatchMessageW, so run_message_loop() re-raises it.
_pending = threading.local()


def _window_proc(api_ref: weakref.ref[Any]) -> Any:
    def proc(hwnd: int | None, msg: int, wparam: int, lparam: int) -> int:
        api: Api | None = api_ref()
        if api is None:
            return 0
        window = _windows.get(hwnd or 0)
        if window is not None and (msg == WM_AIOGUEST or (msg == WM_TIMER and wparam == _TIMER_ID)):
            try:
                window._on_message(msg)
            except Exception:
                traceback.print_exc()
            except BaseException as exc:
                _pending.error = exc
                api.PostQuitMessage(0)
            return 0
        return int(api.DefWindowProcW(hwnd or 0, msg, wparam, lparam))

    return WNDPROC(proc)


def _window_class(api: Api) -> str:
    entry = _classes.get(api)
    if entry is None:
        name = "aioguest.MessageWindow"
        proc = _window_proc(weakref.ref(api))
        wc = WNDCLASSEXW()
        wc.cbSize = ctypes.sizeof(WNDCLASSEXW)
        wc.lpfnWndProc = proc
        wc.hInstance = api.GetModuleHandleW(None)
        wc.lpszClassName = name
        if not api.RegisterClassExW(ctypes.byref(wc)):
            if api.get_last_error() != ERROR_CLASS_ALREADY_EXISTS:
                raise _win_error(api, "RegisterClassExW")
        entry = _classes[api] = (name, proc)
    return entry[0]


class _MessageWindow:
    """A message-only window on the calling thread.

    ``post()`` (any thread) makes the thread's message loop call
    ``on_message(WM_AIOGUEST)`` soon, at most one message pending at a
    time; ``set_timer()`` (owning thread) makes it call
    ``on_message(WM_TIMER)`` once, after input and paint messages.
    """

    def __init__(self, on_message: Callable[[int], object], *, api: Api | None = None) -> None:
        self._api = api if api is not None else _load_api()
        self._on_message_cb = on_message
        self._lock = threading.Lock()
        self._posted = False
        self._timer = False
        cls = _window_class(self._api)
        hinstance = self._api.GetModuleHandleW(None)
        hwnd = self._api.CreateWindowExW(
            0, cls, None, 0, 0, 0, 0, 0, HWND_MESSAGE, None, hinstance, None
        )
        if not hwnd:
            raise _win_error(self._api, "CreateWindowExW(HWND_MESSAGE)")
        self.hwnd: int | None = int(hwnd)
        _windows[self.hwnd] = self

    def post(self) -> None:
        with self._lock:
            hwnd = self.hwnd
            if hwnd is None:
                raise RuntimeError("the message window is closed")
            if self._posted:
                return
            self._posted = True
        if not self._api.PostMessageW(hwnd, WM_AIOGUEST, 0, 0):
            with self._lock:
                self._posted = False
            raise _win_error(self._api, "PostMessageW")

    def set_timer(self) -> None:
        if self._timer or self.hwnd is None:
            return
        if not self._api.SetTimer(self.hwnd, _TIMER_ID, USER_TIMER_MINIMUM, None):
            raise _win_error(self._api, "SetTimer")
        self._timer = True

    def host_busy(self) -> bool:
        """Whether the thread has input, paint or timer messages waiting."""
        # The high word says what is in the queue now (the low word: what
        # arrived since the last call).
        return bool((self._api.GetQueueStatus(QS_HOST) >> 16) & QS_HOST)

    def _on_message(self, msg: int) -> None:
        if msg == WM_TIMER:
            if not self._timer:
                return
            # SetTimer timers repeat: we want one shot.
            self._timer = False
            if self.hwnd is not None:
                self._api.KillTimer(self.hwnd, _TIMER_ID)
        else:
            with self._lock:
                self._posted = False
        self._on_message_cb(msg)

    def close(self) -> None:
        """Destroy the window (on its own thread).  Idempotent."""
        with self._lock:
            hwnd, self.hwnd = self.hwnd, None
        if hwnd is None:
            return
        _windows.pop(hwnd, None)
        if self._timer:
            self._timer = False
            self._api.KillTimer(hwnd, _TIMER_ID)
        self._api.DestroyWindow(hwnd)


# -- the host -------------------------------------------------------------------


class Win32Host:
    """An :class:`aioguest.Host` on the calling thread's Win32 message loop.

    Create it on the thread whose message loop will run the guest (a
    window belongs to the thread that creates it, and its messages are
    dispatched only there).  The loop may be :func:`run_message_loop`, the
    application's own ``GetMessage``/``DispatchMessage`` loop, or any GUI
    framework's that dispatches the thread's messages.
    """

    def __init__(self, *, _api: Api | None = None) -> None:
        self._queue: collections.deque[Callable[[], object]] = collections.deque()
        self._closed = False
        self._depth = 0
        self._window = _MessageWindow(self._on_message, api=_api)

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` soon on the host thread; callable from any thread."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if self._closed:
            raise RuntimeError("this Win32Host is closed")
        self._queue.append(fn)
        self._window.post()

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """The same, from the host thread only."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if self._closed:
            raise RuntimeError("this Win32Host is closed")
        self._queue.append(fn)
        if self._depth and self._window.host_busy():
            # A turn asks for the next one while the window has its own
            # messages waiting: let them go first (see the module doc).
            self._window.set_timer()
        else:
            self._window.post()

    @property
    def poller_watcher(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def hwnd(self) -> int | None:
        """The message-only window's handle (None once closed)."""
        return self._window.hwnd

    def close(self) -> None:
        """Drop queued callbacks and destroy the window; on the host
        thread, once no guest uses this host.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._window.close()

    def _on_message(self, msg: int) -> None:
        # Only what is queued now: later callbacks have their own message.
        queue = self._queue
        for _ in range(len(queue)):
            if self._closed or not queue:
                return
            fn = queue.popleft()
            self._depth += 1
            try:
                fn()
            except Exception:
                traceback.print_exc()
            finally:
                self._depth -= 1


def start(
    coro: Coroutine[Any, Any, T],
    *,
    quit_when_done: bool = False,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
    _api: Api | None = None,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the calling thread's Win32
    message loop; return its :class:`aioguest.Guest`.

    ``quit_when_done``: post ``WM_QUIT`` when the guest is done, which ends
    :func:`run_message_loop` (handy for console programs).  Raises
    :class:`OSError` on any platform but Windows (the coroutine is closed).
    """
    try:
        host = Win32Host(_api=_api)
    except BaseException:
        close = getattr(coro, "close", None)
        if asyncio.iscoroutine(coro) and callable(close):
            close()
        raise
    try:
        guest = start_guest(
            coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice
        )
    except BaseException:
        host.close()
        raise
    api = host._window._api

    def on_done(_: Guest[T]) -> None:
        host.close()
        if quit_when_done:
            api.PostQuitMessage(0)

    guest.add_done_callback(on_done)
    return guest


def run_message_loop(*, _api: Api | None = None) -> int:
    """Run the calling thread's message loop until ``WM_QUIT``; return its
    exit code.  A ``KeyboardInterrupt`` or ``SystemExit`` raised by a
    callback ends the loop and is re-raised here."""
    api = _api if _api is not None else _load_api()
    msg = MSG()
    pmsg = ctypes.byref(msg)
    while True:
        got = api.GetMessageW(pmsg, None, 0, 0)
        if got == 0:
            break
        if got == -1:
            raise _win_error(api, "GetMessageW")
        api.TranslateMessage(pmsg)
        api.DispatchMessageW(pmsg)
    error = getattr(_pending, "error", None)
    if error is not None:
        _pending.error = None
        raise error
    return int(msg.wParam)
