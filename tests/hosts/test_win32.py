"""aioguest.hosts.win32 on Linux: what can be tested without Windows.

The module must import everywhere and refuse clearly to start off Windows.
Its pure-Python part (the callback queue, coalesced posts, the busy-guest
timer, error handling, the message loop) runs here against ``FakeWin32``,
a model of the few user32 calls it makes: a thread message queue in which
posted messages come before input, and timers after both, as in
``GetMessage``.  The real window procedure (a ctypes callback) is what the
fake dispatches to.  The real Win32 calls themselves are untested.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from aioguest.hosts import win32

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 10.0
off_windows = pytest.mark.skipif(sys.platform == "win32", reason="tests the non-Windows refusal")

INPUT = 0x0100  # WM_KEYDOWN: stands for any input the host's window gets
ERROR_INVALID_WINDOW_HANDLE = 1400


class FakeWin32:
    """The user32/kernel32 calls win32.py makes, over one thread's queue."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.posted: collections.deque[tuple[int, int, int, int]] = collections.deque()
        self.input: collections.deque[tuple[int, int]] = collections.deque()
        self.timers: dict[tuple[int, int], tuple[float, float]] = {}
        self.classes: dict[str, Any] = {}
        self.windows: dict[int, str] = {}
        self.next_hwnd = 0x1000
        self.quit_code: int | None = None
        self.last_error = 0
        self.max_posted_ours = 0
        self.post_threads: set[int] = set()
        self.set_timer_calls = 0
        self.on_input: Any = None
        self.fail_posts = False

    # -- what win32.py calls -----------------------------------------------

    def GetModuleHandleW(self, name: str | None) -> int:  # noqa: N802 - Win32 names
        return 0x400000

    def RegisterClassExW(self, wc_ref: Any) -> int:  # noqa: N802
        wc = wc_ref._obj
        assert wc.cbSize == ctypes.sizeof(win32.WNDCLASSEXW)
        if wc.lpszClassName in self.classes:
            self.last_error = win32.ERROR_CLASS_ALREADY_EXISTS
            return 0
        self.classes[wc.lpszClassName] = wc.lpfnWndProc
        return 0xC000 + len(self.classes)

    def CreateWindowExW(self, *args: Any) -> int:  # noqa: N802
        ex_style, cls, name, style, x, y, w, h, parent, menu, hinstance, param = args
        assert parent == win32.HWND_MESSAGE, "not a message-only window"
        assert cls in self.classes
        with self.cond:
            self.next_hwnd += 1
            self.windows[self.next_hwnd] = cls
            return self.next_hwnd

    def DestroyWindow(self, hwnd: int) -> int:  # noqa: N802
        with self.cond:
            del self.windows[hwnd]
            self.posted = collections.deque(m for m in self.posted if m[0] != hwnd)
        return 1

    def DefWindowProcW(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:  # noqa: N802
        return 0

    def PostMessageW(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:  # noqa: N802
        with self.cond:
            if self.fail_posts or hwnd not in self.windows:
                self.last_error = ERROR_INVALID_WINDOW_HANDLE
                return 0
            self.posted.append((hwnd, msg, wparam, lparam))
            self.post_threads.add(threading.get_ident())
            ours = sum(1 for m in self.posted if m[1] == win32.WM_AIOGUEST)
            self.max_posted_ours = max(self.max_posted_ours, ours)
            self.cond.notify_all()
        return 1

    def GetQueueStatus(self, flags: int) -> int:  # noqa: N802
        with self.cond:
            now = time.monotonic()
            status = 0
            if self.input:
                status |= win32.QS_KEY
            if any(due <= now for due, _ in self.timers.values()):
                status |= win32.QS_TIMER
            status &= flags
            return (status << 16) | status

    def SetTimer(self, hwnd: int, event_id: int, ms: int, func: Any) -> int:  # noqa: N802
        assert func is None
        with self.cond:
            self.set_timer_calls += 1
            period = max(ms, win32.USER_TIMER_MINIMUM) / 1000
            self.timers[(hwnd, event_id)] = (time.monotonic() + period, period)
            self.cond.notify_all()
        return event_id

    def KillTimer(self, hwnd: int, event_id: int) -> int:  # noqa: N802
        with self.cond:
            return 1 if self.timers.pop((hwnd, event_id), None) else 0

    def GetMessageW(self, msg_ref: Any, hwnd: Any, first: int, last: int) -> int:  # noqa: N802
        msg = msg_ref._obj
        deadline = time.monotonic() + DEADLINE
        with self.cond:
            while True:
                now = time.monotonic()
                if self.posted:
                    msg.hwnd, msg.message, msg.wParam, msg.lParam = self.posted.popleft()
                    return 1
                if self.quit_code is not None:
                    msg.hwnd, msg.message, msg.wParam, msg.lParam = 0, 0x0012, self.quit_code, 0
                    return 0
                if self.input:
                    msg.hwnd, msg.message = self.input.popleft()
                    msg.wParam = msg.lParam = 0
                    return 1
                for (t_hwnd, t_id), (due, period) in self.timers.items():
                    if due <= now:
                        self.timers[(t_hwnd, t_id)] = (now + period, period)
                        msg.hwnd, msg.message, msg.wParam, msg.lParam = t_hwnd, 0x0113, t_id, 0
                        return 1
                assert now < deadline, "the fake message loop waited for nothing"
                waits = [due - now for due, _ in self.timers.values()] + [deadline - now]
                self.cond.wait(max(min(waits), 0))

    def TranslateMessage(self, msg_ref: Any) -> int:  # noqa: N802
        return 0

    def DispatchMessageW(self, msg_ref: Any) -> int:  # noqa: N802
        msg = msg_ref._obj
        hwnd = msg.hwnd or 0
        if msg.message == INPUT:
            self.on_input()
            return 0
        proc = self.classes[self.windows[hwnd]]
        return int(proc(hwnd, msg.message, msg.wParam, msg.lParam))

    def PostQuitMessage(self, code: int) -> None:  # noqa: N802
        with self.cond:
            self.quit_code = code
            self.cond.notify_all()

    def get_last_error(self) -> int:
        return self.last_error

    # -- for the tests -----------------------------------------------------

    def inject_input(self) -> None:
        with self.cond:
            self.input.append((0x99, INPUT))
            self.cond.notify_all()


@pytest.fixture
def fake() -> FakeWin32:
    return FakeWin32()


# ---------------------------------------------------------------------------
# Off Windows


def test_importing_needs_no_windows() -> None:
    assert win32.WM_APP <= win32.WM_AIOGUEST <= 0xBFFF
    assert ctypes.sizeof(win32.MSG) >= 40
    assert callable(win32.start) and callable(win32.run_message_loop)


@off_windows
def test_start_off_windows_raises_and_closes_the_coroutine() -> None:
    async def main() -> None:
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError, match="needs Windows"):
            win32.start(main())
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


@off_windows
def test_message_loop_and_host_off_windows_raise() -> None:
    with pytest.raises(OSError, match="needs Windows"):
        win32.run_message_loop()
    with pytest.raises(OSError, match="needs Windows"):
        win32.Win32Host()


@off_windows
def test_sample_app_says_it_needs_windows() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "win32_app.py")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "needs Windows" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------
# The host against the fake


def test_guest_runs_on_the_message_loop(fake: FakeWin32) -> None:
    host_thread = threading.get_ident()

    async def main() -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(*await echo_server(loop))
        writer.write(b"ping")
        data = await reader.readexactly(4)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.01)
        return data, threading.get_ident()

    async def echo_server(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(await r.readexactly(4))
            await w.drain()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[:2]

    servers: list[asyncio.Server] = []
    guest = win32.start(main(), quit_when_done=True, _api=fake)
    assert win32.run_message_loop(_api=fake) == 0
    assert guest.result() == (b"ping", host_thread)
    # The worker thread woke the loop by posting, from its own thread.
    assert fake.post_threads - {host_thread}
    assert not fake.windows, "the message window outlived its guest"


def test_posts_are_coalesced_and_callbacks_fifo(fake: FakeWin32, spawn: Any) -> None:
    host = win32.Win32Host(_api=fake)
    ran: list[tuple[int, int, int]] = []

    def producer(i: int) -> None:
        for j in range(100):
            host.run_sync_soon_threadsafe(
                lambda i=i, j=j: ran.append((i, j, threading.get_ident()))
            )

    threads = [spawn(producer, i) for i in range(4)]
    for t in threads:
        t.join(DEADLINE)
    host.run_sync_soon_threadsafe(lambda: fake.PostQuitMessage(0))
    win32.run_message_loop(_api=fake)
    host.close()
    assert len(ran) == 400
    assert {ident for _, _, ident in ran} == {threading.get_ident()}
    for i in range(4):
        assert [j for k, j, _ in ran if k == i] == list(range(100))
    assert fake.max_posted_ours == 1, "one message in the queue at a time"


def test_busy_guest_lets_input_through(fake: FakeWin32, spawn: Any) -> None:
    # Posted messages come before input: a busy guest that re-posted its
    # next turn would keep the window's input waiting for ever.
    spins = 0
    inputs = 0
    stop = threading.Event()

    deadline = time.monotonic() + DEADLINE

    async def spin() -> None:
        nonlocal spins
        while time.monotonic() < deadline:
            spins += 1
            await asyncio.sleep(0)
        raise AssertionError(f"the host's input starved: {inputs} inputs in {DEADLINE} s")

    def on_input() -> None:
        nonlocal inputs
        inputs += 1
        if inputs == 20:
            guest.cancel()

    def typist() -> None:
        # Input arrives every millisecond, from "the system".
        while not stop.wait(0.001):
            fake.inject_input()

    fake.on_input = on_input
    guest = win32.start(spin(), quit_when_done=True, _api=fake)
    spawn(typist)
    try:
        win32.run_message_loop(_api=fake)
    finally:
        stop.set()
    if not guest.cancelled():
        guest.result()
    assert spins >= 100, "the guest did not run between the inputs"
    assert fake.set_timer_calls > 0
    assert not fake.timers, "the one-shot timer was left running"


def test_host_code_cancels_an_idle_guest(fake: FakeWin32) -> None:
    async def main() -> None:
        await asyncio.sleep(3600)

    guest = win32.start(main(), quit_when_done=True, _api=fake)
    fake.on_input = guest.cancel  # a "Cancel button"
    fake.inject_input()
    win32.run_message_loop(_api=fake)
    assert guest.cancelled()


def test_exceptions_from_callbacks(fake: FakeWin32, capsys: pytest.CaptureFixture[str]) -> None:
    host = win32.Win32Host(_api=fake)
    ran: list[int] = []

    def fail() -> None:
        raise ZeroDivisionError("host callback")

    def interrupt() -> None:
        raise KeyboardInterrupt

    host.run_sync_soon_threadsafe(fail)
    host.run_sync_soon_threadsafe(lambda: ran.append(1))
    host.run_sync_soon_threadsafe(interrupt)
    # An Exception is printed and the loop goes on; KeyboardInterrupt cannot
    # cross DispatchMessageW (a ctypes callback), so it ends the loop and
    # run_message_loop raises it.
    with pytest.raises(KeyboardInterrupt):
        win32.run_message_loop(_api=fake)
    assert ran == [1]
    assert "ZeroDivisionError: host callback" in capsys.readouterr().err
    host.close()


def test_argument_checks_and_close(fake: FakeWin32) -> None:
    host = win32.Win32Host(_api=fake)
    assert host.poller_watcher is None
    assert host.hwnd in fake.windows
    with pytest.raises(TypeError):
        host.run_sync_soon_threadsafe("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        host.run_sync_soon_not_threadsafe(None)  # type: ignore[arg-type]
    fake.fail_posts = True
    with pytest.raises(OSError, match="PostMessageW failed"):
        host.run_sync_soon_threadsafe(lambda: None)
    fake.fail_posts = False
    host.run_sync_soon_threadsafe(lambda: None)  # a failed post is retried
    host.close()
    assert host.closed and host.hwnd is None
    assert not fake.windows
    host.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        host.run_sync_soon_threadsafe(lambda: None)


def test_second_host_reuses_the_window_class(fake: FakeWin32) -> None:
    first = win32.Win32Host(_api=fake)
    second = win32.Win32Host(_api=fake)
    assert len(fake.classes) == 1
    assert first.hwnd != second.hwnd
    first.close()
    second.close()
