"""aioguest.hosts.tk under Xvfb: the adapter in-process, and the sample app
(examples/tk_app.py) in a subprocess.

Every in-process test pumps Tk itself (``mainloop`` or ``update``) with a
deadline; none uses the queue host.  Tests that depend on where the guest
waits run twice: Tk watching the poller's fd ("watch") and the Go worker
thread ("worker").
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

tkinter = pytest.importorskip(
    "tkinter", reason="tkinter is not importable in this Python (built without Tcl/Tk)"
)

from aioguest.hosts import tk as tk_host  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "tk_app.py"
DEADLINE = 10.0


# ---------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="session")
def tk_first(x_display: str) -> None:
    """Create and destroy one Tk first: Tcl's notifier thread (with its
    pipe) and the X connection stay for the process's life, so they must be
    part of every test's leak-check baseline."""
    root = tkinter.Tk()
    root.update()
    root.destroy()


class Root:
    """A Tk root for one test, with callback exceptions collected."""

    def __init__(self) -> None:
        self.tk = tkinter.Tk()
        self.tk.geometry("240x120+20+20")
        self.errors: list[BaseException] = []
        self.tk.report_callback_exception = self._report  # type: ignore[method-assign]
        self.tk.update()

    def _report(self, exc_type: Any, exc: BaseException, tb: Any) -> None:
        self.errors.append(exc)

    def mainloop_until(self, cond: Callable[[], bool], timeout: float = DEADLINE) -> None:
        """Run Tk's mainloop until ``cond()``; fail after *timeout* s."""
        root = self.tk
        deadline = time.monotonic() + timeout
        timed_out = []

        def check() -> None:
            if cond():
                root.quit()
            elif time.monotonic() > deadline:
                timed_out.append(True)
                root.quit()
            else:
                root.after(5, check)

        root.after(5, check)
        root.mainloop()
        assert not timed_out, f"condition not reached within {timeout} s"

    def finish(self, guest: Any) -> None:
        """Cancel *guest* if it still runs and pump until it is done."""
        if not guest.done():
            guest.cancel()
            self.mainloop_until(guest.done)


@pytest.fixture
def root(tk_first: None) -> Iterator[Root]:
    r = Root()
    yield r
    try:
        # Tcl's timers belong to the thread, not to the interpreter: one
        # left behind would fire in the next test's mainloop.
        for after_id in r.tk.tk.splitlist(r.tk.call("after", "info")):
            r.tk.after_cancel(after_id)
        r.tk.destroy()
    except tkinter.TclError:
        pass
    r.tk = None  # type: ignore[assignment]
    # A Tk root and its widgets form reference cycles.  If the garbage
    # collector freed them on another thread (a test's helper thread, the
    # Go worker), Tcl would abort the process ("Tcl_AsyncDelete: async
    # handler deleted by the wrong thread"): free them here, on Tk's thread.
    gc.collect()
    assert not r.errors, f"exceptions in Tk callbacks: {r.errors!r}"


@pytest.fixture(params=["watch", "worker"])
def watch(request: pytest.FixtureRequest) -> bool:
    """Whether Tk watches the poller's fd (else the Go worker waits)."""
    return bool(request.param == "watch")


def aioguest_commands(tk: Any) -> str:
    return str(tk.call("info", "commands", "aioguest_tk*"))


def send_wm_delete(display: str, window: int) -> None:
    """Do what a window manager's close button does: send the window a
    WM_PROTOCOLS/WM_DELETE_WINDOW client message, through Xlib."""

    class XClientMessageEvent(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int),
            ("serial", ctypes.c_ulong),
            ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p),
            ("window", ctypes.c_ulong),
            ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int),
            ("data", ctypes.c_long * 5),
        ]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", XClientMessageEvent), ("pad", ctypes.c_long * 24)]

    name = ctypes.util.find_library("X11")
    if name is None:
        pytest.skip("libX11 not found (needed to send a real WM_DELETE_WINDOW)")
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(XEvent),
    ]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open display {display}"
    try:
        event = XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        assert x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


# ---------------------------------------------------------------------------
# Running a guest: results, errors, cancellation, where it waits


def test_result_io_and_where_the_guest_waits(root: Root, watch: bool) -> None:
    tk = root.tk
    host_thread = threading.get_ident()

    async def main() -> tuple[bytes, set[str], int]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            # Host code writes later: the guest must wake for I/O.
            tk.after(20, lambda: b.send(b"ping"))
            data = await loop.sock_recv(a, 16)
            threads = {t.name for t in threading.enumerate()}
        await asyncio.sleep(0.01)
        return data, threads, threading.get_ident()

    guest = tk_host.start(main(), root=tk, watch_poller=watch)
    root.mainloop_until(guest.done)
    data, threads, thread = guest.result()
    assert data == b"ping"
    assert thread == host_thread
    assert ("aioguest-worker" in threads) == (not watch)


def test_exception_is_the_outcome(root: Root, watch: bool) -> None:
    async def main() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("boom")

    guest = tk_host.start(main(), root=root.tk, watch_poller=watch)
    root.mainloop_until(guest.done)
    assert isinstance(guest.exception(), LookupError)
    with pytest.raises(LookupError, match="boom"):
        guest.result()


def test_cancel_from_a_host_button(root: Root, watch: bool) -> None:
    async def main() -> None:
        await asyncio.sleep(3600)

    guest = tk_host.start(main(), root=root.tk, watch_poller=watch)
    button = tkinter.Button(root.tk, text="Cancel", command=guest.cancel)
    button.pack()
    root.tk.after(30, button.invoke)
    root.mainloop_until(guest.done)
    assert guest.cancelled()


def test_timers_never_fire_early(root: Root) -> None:
    # Tcl's ``after`` counts whole milliseconds: the watcher must round up.
    delays = [0.0004, 0.0013, 0.0049, 0.0123, 0.0301]

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        slept = []
        for delay in delays:
            t0 = loop.time()
            await asyncio.sleep(delay)
            slept.append(loop.time() - t0)
        return slept

    guest = tk_host.start(main(), root=root.tk, watch_poller=True)
    root.mainloop_until(guest.done)
    for delay, slept in zip(delays, guest.result(), strict=True):
        assert slept >= delay, f"asyncio.sleep({delay}) returned after {slept}"


def test_several_guests_share_one_root(root: Root, watch: bool) -> None:
    async def worker(n: int) -> int:
        for _ in range(5):
            await asyncio.sleep(0.002 * n)
        return n

    guests = [tk_host.start(worker(n), root=root.tk, watch_poller=watch) for n in (1, 2, 3)]
    root.mainloop_until(lambda: all(g.done() for g in guests))
    assert [g.result() for g in guests] == [1, 2, 3]


def test_start_refuses_a_watch_tk_cannot_do_and_closes_the_coroutine(root: Root) -> None:
    class NoFileHandlers:
        """A Tk interpreter as on Windows: no createfilehandler."""

        def __init__(self, real: Any) -> None:
            self._real = real

        def __getattr__(self, name: str) -> Any:
            if name in ("createfilehandler", "deletefilehandler"):
                raise AttributeError(name)
            return getattr(self._real, name)

    class WindowsishRoot:
        tk = NoFileHandlers(root.tk.tk)

    async def main() -> None:
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="createfilehandler"):
            tk_host.start(main(), root=WindowsishRoot(), watch_poller=True)  # type: ignore[arg-type]
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_done_guest_releases_its_fds_commands_and_timers(root: Root, watch: bool) -> None:
    tk = root.tk
    before = aioguest_commands(tk)

    async def main() -> None:
        # Leave the host with a timer and a busy turn or two pending.
        for _ in range(3):
            await asyncio.sleep(0.003)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.02:
            await asyncio.sleep(0)

    guest = tk_host.start(main(), root=tk, watch_poller=watch)
    assert aioguest_commands(tk) != before
    root.mainloop_until(guest.done)
    assert aioguest_commands(tk) == before
    scripts = [str(tk.call("after", "info", i)) for i in tk.splitlist(tk.call("after", "info"))]
    assert not [s for s in scripts if "aioguest" in s], scripts
    # (The autouse leak check sees the wake-up pipe's fds closed.)


# ---------------------------------------------------------------------------
# TkHost's scheduling, directly


def test_threadsafe_calls_never_block_and_work_before_mainloop(root: Root, spawn: Any) -> None:
    # tkinter's own cross-thread path (root.after_idle from a thread)
    # blocks the caller, and before mainloop() fails after 1 s with
    # "main thread is not in main loop".  Ours must do neither.
    host = tk_host.TkHost(root.tk)
    try:
        ran: list[tuple[int, int, int]] = []

        def producer(i: int) -> None:
            for j in range(50):
                host.run_sync_soon_threadsafe(
                    lambda i=i, j=j: ran.append((i, j, threading.get_ident()))
                )

        threads = [spawn(producer, i) for i in range(4)]
        for t in threads:
            t.join(DEADLINE)
        assert not any(t.is_alive() for t in threads), "run_sync_soon_threadsafe blocked"
        assert not ran, "callbacks ran off Tk's loop"
        root.mainloop_until(lambda: len(ran) == 200)
        assert {ident for _, _, ident in ran} == {threading.get_ident()}
        for i in range(4):
            assert [j for k, j, _ in ran if k == i] == list(range(50)), "FIFO per thread"
    finally:
        host.close()


def test_not_threadsafe_runs_in_order_and_reports_exceptions(root: Root) -> None:
    host = tk_host.TkHost(root.tk)
    try:
        ran: list[int] = []

        def fail() -> None:
            raise ZeroDivisionError("host callback")

        host.run_sync_soon_not_threadsafe(lambda: ran.append(1))
        host.run_sync_soon_not_threadsafe(fail)
        host.run_sync_soon_not_threadsafe(lambda: ran.append(2))
        host.run_sync_soon_threadsafe(lambda: ran.append(3))
        root.mainloop_until(lambda: len(ran) == 3)
        assert ran == [1, 2, 3]
        # Reported like a widget callback's exception; mainloop went on.
        assert [type(e) for e in root.errors] == [ZeroDivisionError]
        root.errors.clear()
        with pytest.raises(TypeError):
            host.run_sync_soon_threadsafe(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            host.run_sync_soon_not_threadsafe(None)  # type: ignore[arg-type]
    finally:
        host.close()
    with pytest.raises(RuntimeError, match="closed"):
        host.run_sync_soon_threadsafe(lambda: None)
    host.close()  # idempotent


def test_app_pumping_with_update_gets_the_worker_turns(root: Root) -> None:
    # No mainloop(): tkinter's cross-thread calls would fail here.
    async def main() -> int:
        total = 0
        for _ in range(20):
            await asyncio.sleep(0.002)
            total += 1
        return total

    guest = tk_host.start(main(), root=root.tk, watch_poller=False)
    deadline = time.monotonic() + DEADLINE
    while not guest.done() and time.monotonic() < deadline:
        root.tk.update()
        time.sleep(0.001)
    assert guest.result() == 20


def test_update_returns_while_the_guest_spins(root: Root, watch: bool) -> None:
    # update() returns only when Tk finds nothing at all to do; a guest
    # that is never idle must still leave it gaps.
    tk = root.tk
    spins = 0

    async def spin() -> None:
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    guest = tk_host.start(spin(), root=tk, watch_poller=watch)
    stuck = []
    last_return = time.monotonic()

    def watchdog() -> None:
        # Runs inside update(): if update() has not returned for long, end
        # the guest so that it does, and fail.
        if time.monotonic() - last_return > 3:
            stuck.append(True)
            guest.cancel()
        else:
            tk.after(50, watchdog)

    tk.after(50, watchdog)
    progressed = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while progressed < 5 and not stuck and time.monotonic() < deadline:
            before = spins
            tk.update()
            last_return = time.monotonic()
            if spins > before:
                progressed += 1
            time.sleep(0.002)  # the app's own work between updates
    finally:
        root.finish(guest)
    assert not stuck, "update() did not return while the guest was busy"
    assert progressed >= 5, "the guest did not run inside update()"


# ---------------------------------------------------------------------------
# Fairness: a busy guest must not starve Tk


def test_spinning_guest_starves_no_kind_of_tk_event(root: Root, watch: bool) -> None:
    tk = root.tk
    spins = 0

    async def spin() -> None:
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    counts = {"timer": 0, "idle": 0, "queued": 0, "x_configure": 0, "update_idletasks": 0}
    label = tkinter.Label(tk, text="x")
    label.pack()

    def timer() -> None:
        counts["timer"] += 1
        tk.after(5, timer)

    in_update_idletasks = False

    def idle() -> None:
        # The idle stage is where Tk redraws: mainloop must keep reaching
        # it (update_idletasks() below runs idle callbacks too: not those).
        if not in_update_idletasks:
            counts["idle"] += 1
        tk.after(5, lambda: tk.after_idle(idle))

    def queue_event() -> None:
        # Queued at the tail of Tcl's event queue, as X events are.
        label.event_generate("<<Poke>>", when="tail")
        tk.after(5, queue_event)

    moves = 0

    def move() -> None:
        # A real round trip through the X server: ConfigureNotify.
        nonlocal moves
        moves += 1
        tk.geometry(f"+{20 + moves % 40}+20")
        tk.after(10, move)

    def idletasks() -> None:
        # Would never return if the guest re-armed itself from Tk's idle
        # stage (pytest-timeout then fails the test).
        nonlocal in_update_idletasks
        in_update_idletasks = True
        tk.update_idletasks()
        in_update_idletasks = False
        counts["update_idletasks"] += 1
        tk.after(10, idletasks)

    def on_configure(event: Any) -> None:
        if event.widget is tk:
            counts["x_configure"] += 1

    label.bind("<<Poke>>", lambda e: counts.__setitem__("queued", counts["queued"] + 1))
    tk.bind("<Configure>", on_configure)
    guest = tk_host.start(spin(), root=tk, watch_poller=watch)
    for fn in (timer, idle, queue_event, move, idletasks):
        tk.after(5, fn)
    try:
        root.mainloop_until(lambda: min(counts.values()) >= 15 and spins >= 1000)
    except AssertionError:
        raise AssertionError(f"starved: {counts}, guest spins: {spins}") from None
    finally:
        root.finish(guest)


def test_saturated_socket_does_not_starve_tk_idle(root: Root, watch: bool) -> None:
    # A guest reading a socket that never runs dry: Tk queues a file event
    # whenever its notifier finds an fd readable, and serves queued events
    # before idle callbacks, so a guest woken for I/O (or a worker's wake-up
    # pipe) back to back must still leave Tk its idle stage.  The writer is
    # another process, so that it does not need our GIL.
    tk = root.tk
    a, b = socket.socketpair()
    with b:
        flood = subprocess.Popen(
            ["yes", "x" * 4000], stdout=b, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    received = 0

    async def reader() -> None:
        nonlocal received
        loop = asyncio.get_running_loop()
        a.setblocking(False)
        while True:
            received += len(await loop.sock_recv(a, 1 << 20))

    idle = 0

    def on_idle() -> None:
        nonlocal idle
        idle += 1
        tk.after(5, lambda: tk.after_idle(on_idle))

    guest = tk_host.start(reader(), root=tk, watch_poller=watch)
    tk.after(5, on_idle)
    try:
        root.mainloop_until(lambda: idle >= 15 and received >= 4 << 20)
    except AssertionError:
        raise AssertionError(f"idle stage reached {idle} times; read {received} bytes") from None
    finally:
        flood.kill()
        flood.wait()
        root.finish(guest)
        a.close()


# ---------------------------------------------------------------------------
# Closing the window


def test_closing_the_window_cancels_then_waits_for_teardown(
    root: Root, watch: bool, x_display: str
) -> None:
    tk = root.tk
    during_teardown: list[bool] = []
    in_done_callback: list[bool] = []
    destroyed: list[float] = []

    async def main() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            # Teardown that needs the loop (and the window) for a while.
            await asyncio.sleep(0.05)
            during_teardown.append(bool(tk.winfo_exists()))

    guest = tk_host.start(main(), root=tk, watch_poller=watch)
    guest.add_done_callback(lambda g: in_done_callback.append(bool(tk.winfo_exists())))
    tk.bind("<Destroy>", lambda e: destroyed.append(time.monotonic()) if e.widget is tk else None)
    tk.after(30, lambda: send_wm_delete(x_display, int(tk.wm_frame(), 16)))
    watchdog = tk.after(int(DEADLINE * 1000), tk.quit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tk.mainloop()  # returns once the root is destroyed
        gc.collect()
    assert destroyed, "the window was not destroyed after the guest finished"
    tk.after_cancel(watchdog)
    assert guest.cancelled()
    assert during_teardown == [True], "the window went before the guest's teardown ran"
    assert in_done_callback == [True], "done callbacks must still find the window"
    assert not [w for w in caught if "abandoned" in str(w.message)]


def test_close_goes_on_to_the_previous_handler_after_teardown(root: Root) -> None:
    tk = root.tk
    calls: list[bool] = []

    def app_close() -> None:
        calls.append(guest.done())

    tk.protocol("WM_DELETE_WINDOW", app_close)
    previous = tk.protocol("WM_DELETE_WINDOW")

    async def main() -> None:
        await asyncio.sleep(3600)

    guest = tk_host.start(main(), root=tk)
    assert tk.protocol("WM_DELETE_WINDOW") != previous
    tk.after(20, lambda: tk.tk.eval(tk.protocol("WM_DELETE_WINDOW")))
    root.mainloop_until(lambda: bool(calls))
    assert calls == [True], "the app's own handler must run after the guest is done"
    assert tk.protocol("WM_DELETE_WINDOW") == previous
    assert tk.winfo_exists()


def test_guest_done_on_its_own_restores_the_close_handler(root: Root) -> None:
    tk = root.tk
    before = tk.protocol("WM_DELETE_WINDOW")

    async def main() -> int:
        await asyncio.sleep(0.001)
        return 7

    guest = tk_host.start(main(), root=tk)
    root.mainloop_until(guest.done)
    assert guest.result() == 7
    assert tk.protocol("WM_DELETE_WINDOW") == before
    assert tk.winfo_exists()


# ---------------------------------------------------------------------------
# Modal dialogs: nested Tk loops


def test_host_modal_wait_window_keeps_the_guest_running(root: Root, watch: bool) -> None:
    tk = root.tk
    ticks_in_dialog = 0
    dialog: list[Any] = []
    returned: list[int] = []
    gave_up = []

    async def ticker() -> None:
        nonlocal ticks_in_dialog
        while True:
            await asyncio.sleep(0.003)
            if dialog:
                ticks_in_dialog += 1
                if ticks_in_dialog == 10:
                    dialog[0].destroy()  # guest code may touch widgets

    def open_dialog() -> None:
        # A host button callback running a modal dialog: a nested loop.
        dlg = tkinter.Toplevel(tk)
        dialog.append(dlg)
        tk.wait_window(dlg)
        dialog.clear()
        returned.append(ticks_in_dialog)

    def give_up() -> None:
        if dialog:
            gave_up.append(True)
            dialog[0].destroy()

    guest = tk_host.start(ticker(), root=tk, watch_poller=watch)
    button = tkinter.Button(tk, text="Open", command=open_dialog)
    button.pack()
    tk.after(20, button.invoke)
    tk.after(int(DEADLINE * 1000), give_up)
    try:
        root.mainloop_until(lambda: bool(returned))
    finally:
        root.finish(guest)
    assert not gave_up, "the guest did not run inside the host's wait_window()"
    assert returned == [10]


def test_awaitable_wait_window_keeps_the_guest_running(root: Root, watch: bool) -> None:
    tk = root.tk
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.003)
            ticks += 1

    async def main() -> tuple[int, int, str]:
        dialog = tkinter.Toplevel(tk)
        child = tkinter.Button(dialog, text="OK")
        child.pack()
        tag_count = len(dialog.bindtags())
        task = asyncio.create_task(ticker())

        def host_side() -> None:
            # Destroying a child must not end the wait; the dialog does.
            if ticks >= 5 and child.winfo_exists():
                child.destroy()
            if ticks >= 10:
                dialog.destroy()
            else:
                tk.after(5, host_side)

        tk.after(5, host_side)
        waiting = asyncio.create_task(tk_host.wait_window(dialog))
        await asyncio.sleep(0.01)
        assert len(dialog.bindtags()) == tag_count + 1
        await waiting
        task.cancel()
        return ticks, tag_count, aioguest_commands(tk)

    commands = aioguest_commands(tk)
    guest = tk_host.start(main(), root=tk, watch_poller=watch)
    root.mainloop_until(guest.done)
    ticks_seen, _, commands_after_wait = guest.result()
    assert ticks_seen >= 10
    # The wait's own command is gone once it returned (the host's are not
    # until the guest is done).
    assert "destroy" not in commands_after_wait
    assert aioguest_commands(tk) == commands


def test_awaitable_wait_window_cleans_up_when_cancelled(root: Root) -> None:
    tk = root.tk
    dialog = tkinter.Toplevel(tk)
    tags = dialog.bindtags()

    async def main() -> None:
        waiting = asyncio.create_task(tk_host.wait_window(dialog))
        await asyncio.sleep(0.01)
        assert dialog.bindtags() != tags
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert dialog.bindtags() == tags
        assert "destroy" not in aioguest_commands(tk)
        gone = tkinter.Toplevel(tk)
        gone.destroy()
        await tk_host.wait_window(gone)  # already destroyed: returns at once

    guest = tk_host.start(main(), root=tk)
    root.mainloop_until(guest.done)
    guest.result()
    assert dialog.winfo_exists()


def test_blocking_wait_window_in_guest_code_blocks_only_the_guest(root: Root, watch: bool) -> None:
    # Guest code that runs a nested Tk loop blocks the guest (as any
    # blocking call does in asyncio); Tk goes on, and so does the guest
    # afterwards, without re-entering its loop meanwhile.
    tk = root.tk
    ticks = 0
    host_ticks = 0

    def host_timer() -> None:
        nonlocal host_ticks
        host_ticks += 1
        tk.after(5, host_timer)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    async def main() -> tuple[int, int, int]:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        dialog = tkinter.Toplevel(tk)
        tk.after(100, dialog.destroy)
        before, host_before = ticks, host_ticks
        tk.wait_window(dialog)
        during, host_during = ticks - before, host_ticks - host_before
        while ticks < before + 5:
            await asyncio.sleep(0.002)
        task.cancel()
        return during, host_during, ticks - before

    tk.after(5, host_timer)
    guest = tk_host.start(main(), root=tk, watch_poller=watch)
    root.mainloop_until(guest.done)
    during, host_during, after = guest.result()
    assert during == 0, "the guest's loop was re-entered from a nested Tk loop"
    assert host_during >= 3, "Tk did not go on while guest code waited"
    assert after >= 5


# ---------------------------------------------------------------------------
# The sample app, in a subprocess


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    """A download server owned by the tests, so that the server thread's
    complaints about cancelled downloads stay out of the app's stderr."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from downloads import start_server
    finally:
        sys.path.remove(str(REPO / "examples"))
    server, port = start_server()
    yield port
    server.shutdown()
    server.server_close()


def app_env(display: str) -> dict[str, str]:
    env = dict(os.environ, DISPLAY=display)
    env.pop("PYTHONWARNINGS", None)
    return env


def run_app(display: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", str(APP), "--linger", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=app_env(display),
        stdin=subprocess.DEVNULL,
    )


def check_result(stdout: str, stderr: str, returncode: int, expected: str) -> int:
    """Assert the app's final line; return its tick count."""
    assert returncode == 0, stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"result: {expected}; ticks "), last
    assert "Traceback" not in stderr, stderr
    assert "abandoned" not in stderr, stderr
    assert "never awaited" not in stderr, stderr
    return int(last.rsplit(" ", 1)[1])


@pytest.mark.parametrize("mode", ["watch", "worker"])
def test_app_downloads_while_the_ui_ticks(x_display: str, tk_first: None, mode: str) -> None:
    args = ["--size", "0.75"] + (["--worker"] if mode == "worker" else [])
    done = run_app(x_display, *args)
    ticks = check_result(done.stdout, done.stderr, done.returncode, "downloaded 786432 bytes")
    # 12 blocks of 64 KiB at 20 ms each: ~0.24 s, 50 ms per tick.
    assert ticks >= 3, "Tk's timer did not keep running while the guest downloaded"


def test_app_cancel_button(x_display: str, tk_first: None, http_port: int) -> None:
    done = run_app(x_display, "--size", "16", "--port", str(http_port), "--cancel-after", "0.4")
    ticks = check_result(done.stdout, done.stderr, done.returncode, "cancelled")
    assert ticks >= 4


def test_app_close_after_flag(x_display: str, tk_first: None, http_port: int) -> None:
    done = run_app(x_display, "--size", "16", "--port", str(http_port), "--close-after", "0.4")
    ticks = check_result(done.stdout, done.stderr, done.returncode, "cancelled")
    assert ticks >= 4


def test_app_closed_by_the_window_manager(x_display: str, tk_first: None, http_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-X", "dev", str(APP), "--size", "16", "--port", str(http_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=app_env(x_display),
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("window: "), first
        time.sleep(0.4)  # fixed and short: let the download get going
        send_wm_delete(x_display, int(first.split()[1], 16))
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ticks = check_result(first + stdout, stderr, proc.returncode, "cancelled")
    assert ticks >= 4


def test_app_screenshot_mid_download(x_display: str, tk_first: None, tmp_path: Path) -> None:
    pytest.importorskip("PIL.ImageGrab", reason="Pillow is needed for --screenshot")
    shot = tmp_path / "tk_app.png"
    done = run_app(x_display, "--size", "1.5", "--screenshot", str(shot))
    check_result(done.stdout, done.stderr, done.returncode, "downloaded 1572864 bytes")
    assert f"screenshot: {shot}" in done.stdout
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # The window only (no window manager under Xvfb: no decorations), not
    # the 1280x800 screen.
    assert 200 <= width <= 600 and 60 <= height <= 300, (width, height)
    target = os.environ.get("AIOGUEST_UPDATE_SCREENSHOTS")
    if target:
        # Opt-in, so that test runs don't rewrite a tracked file.
        dest = Path(target) / "tk_app.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest)
