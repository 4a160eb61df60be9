"""aioguest.hosts.gtk: an asyncio guest in a GLib main loop (GTK 3 and 4).

GTK 3 runs in this process; GTK 4 cannot share a process with it
(``gi.require_version`` holds for the process's life), so its tests run a
child script.  Everything is driven by GLib's own loop with a deadline; the
GLib and GTK state that lives for the process (the default context's wake-up
fd, the X connection) is created by session fixtures, before any test's
leak-check baseline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aioguest
from conftest import PROMPT

gi = pytest.importorskip(
    "gi", reason="PyGObject is not installed (requirements/hosts.txt; needs libgirepository1.0-dev)"
)

from gi.repository import GLib  # noqa: E402

from aioguest.hosts import gtk as gtk_host  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APP = EXAMPLES / "gtk_app.py"

# Keep GTK off the accessibility bus and D-Bus autolaunch: either could
# start helper processes (dbus-launch) that outlive a test.
QUIET_GTK_ENV = {"NO_AT_BRIDGE": "1", "GTK_A11Y": "none"}


# ---------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def glib() -> Any:
    """GLib's global default context, with the fds it keeps for life."""
    context = GLib.MainContext.default()
    r, w = os.pipe()
    try:
        fired: list[int] = []
        source = GLib.unix_fd_add_full(
            GLib.PRIORITY_DEFAULT, r, GLib.IOCondition.IN, lambda *a: fired.append(1) or False
        )
        GLib.idle_add(lambda: fired.append(2) or False)
        GLib.timeout_add(1, lambda: fired.append(3) or False)
        os.write(w, b"x")
        deadline = time.monotonic() + 5
        while len(fired) < 3 and time.monotonic() < deadline:
            context.iteration(False)
        if len(fired) < 3:
            GLib.source_remove(source)
    finally:
        os.close(r)
        os.close(w)
    return GLib


@pytest.fixture(scope="session")
def gtk3(x_display: str, glib: Any) -> Iterator[Any]:
    """GTK 3, initialised (its X connection opened) once for the session."""
    saved = {k: os.environ.get(k) for k in QUIET_GTK_ENV}
    os.environ.update(QUIET_GTK_ENV)
    try:
        gi.require_version("Gtk", "3.0")
    except ValueError as exc:
        pytest.skip(f"GTK 3 cannot be loaded here: {exc}")
    try:
        from gi.repository import Gtk
    except ImportError as exc:
        pytest.skip(f"GTK 3 introspection data missing (gir1.2-gtk-3.0): {exc}")
    ok = Gtk.init_check(None)
    if not (ok[0] if isinstance(ok, tuple) else ok):
        pytest.skip(f"GTK 3 could not open display {x_display}")
    # A first window and a redraw, so that whatever GTK opens lazily (the
    # X connection, its input method, icon theme caches) is opened now.
    window = Gtk.Window()
    window.add(Gtk.Label(label="warm-up"))
    window.show_all()
    run_loop(lambda: window.get_mapped(), timeout=10)
    window.destroy()
    drain()
    yield Gtk
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def drain() -> None:
    """Dispatch whatever the default context has ready now."""
    context = GLib.MainContext.default()
    for _ in range(1000):
        if not context.iteration(False):
            break


def run_loop(done: Callable[[], bool], timeout: float = 10) -> None:
    """Run a GLib.MainLoop on the default context until done() is true.

    done() is checked every millisecond or so (a GLib timeout at default
    priority, which the guest's idle-priority sources never hold up) and
    the test fails at the deadline.
    """
    loop = GLib.MainLoop()
    deadline = time.monotonic() + timeout
    timed_out = []

    def check() -> bool:
        if done():
            loop.quit()
            return False
        if time.monotonic() >= deadline:
            timed_out.append(True)
            loop.quit()
            return False
        return True

    if done():
        return
    GLib.timeout_add(1, check)
    loop.run()
    if timed_out:
        pytest.fail(f"not done within {timeout} s")


def pump(guest: Any, timeout: float = 10) -> Any:
    """Run the GLib loop until the guest has finished; return it."""
    run_loop(guest.done, timeout)
    drain()
    return guest


def worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("aioguest")]


MODES = pytest.mark.parametrize("watch", [True, False], ids=["watch", "worker"])


# ---------------------------------------------------------------------------
# GLib-level behaviour (no display needed)


@MODES
def test_result_io_and_timers_on_the_glib_thread(glib, watch):
    a, b = socket.socketpair()
    host_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    async def main():
        loop = asyncio.get_running_loop()
        seen["thread"] = threading.get_ident()
        seen["workers"] = worker_threads()
        t0 = loop.time()
        await asyncio.sleep(0.03)
        seen["slept"] = loop.time() - t0
        reader, writer = await asyncio.open_connection(sock=a)
        loop.call_later(0.01, b.send, b"ping\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    done_threads = []
    try:
        guest = gtk_host.start(main(), watch_poller=watch)
        guest.add_done_callback(lambda g: done_threads.append(threading.get_ident()))
        pump(guest)
    finally:
        b.close()
    assert guest.result() == b"ping\n"
    assert seen["thread"] == host_thread
    assert done_threads == [host_thread]
    assert seen["slept"] >= 0.03
    # watch mode waits in GLib itself; worker mode has aioguest's thread.
    assert bool(seen["workers"]) is (not watch), seen["workers"]


@MODES
def test_exception_and_cancel(glib, watch):
    async def boom():
        await asyncio.sleep(0)
        raise ValueError("boom")

    guest = pump(gtk_host.start(boom(), watch_poller=watch))
    assert isinstance(guest.exception(), ValueError)
    with pytest.raises(ValueError, match="boom"):
        guest.result()

    cleaned = []
    waiting = []

    async def forever():
        try:
            waiting.append(True)
            await asyncio.Event().wait()
        finally:
            # Teardown that needs more turns after the cancellation.
            await asyncio.sleep(0.01)
            cleaned.append(True)

    guest = gtk_host.start(forever(), watch_poller=watch)
    # (A task cancelled before its first step never runs its finally.)
    run_loop(lambda: bool(waiting))
    guest.cancel()
    pump(guest)
    assert guest.cancelled()
    assert cleaned == [True]


@MODES
def test_other_threads_wake_the_guest(glib, watch, spawn):
    host = gtk_host.GLibHost(watch_poller=watch)
    ran_on: list[int] = []
    event_holder: dict[str, Any] = {}

    async def main():
        event = asyncio.Event()
        event_holder["loop"] = asyncio.get_running_loop()
        event_holder["event"] = event
        await event.wait()  # no timeout: only another thread can end this
        return "woken"

    guest = aioguest.start_guest(main(), host)

    def from_thread():
        host.run_sync_soon_threadsafe(lambda: ran_on.append(threading.get_ident()))
        time.sleep(0.05)  # let the guest go idle first
        event_holder["loop"].call_soon_threadsafe(event_holder["event"].set)

    run_loop(lambda: "event" in event_holder)
    spawn(from_thread)
    t0 = time.monotonic()
    pump(guest)
    assert guest.result() == "woken"
    assert time.monotonic() - t0 < PROMPT
    assert ran_on == [threading.get_ident()]


def test_timeouts_round_up_and_never_fire_early(glib):
    assert gtk_host._milliseconds(0.0001) == 1
    assert gtk_host._milliseconds(0.001) == 1
    assert gtk_host._milliseconds(0.0011) == 2
    assert gtk_host._milliseconds(1e12) == 2**32 - 1

    watcher = gtk_host.GLibWatcher(GLib.MainContext.default(), GLib.PRIORITY_DEFAULT_IDLE)
    fired: list[float] = []
    t0 = time.monotonic()
    watcher.call_later(0.0155, lambda: fired.append(time.monotonic() - t0))
    cancel = watcher.call_later(0.001, lambda: fired.append(-1.0))
    cancel()
    cancel()  # twice is harmless
    run_loop(lambda: bool(fired))
    assert fired[0] >= 0.0155
    cancel_after = watcher.call_later(0.001, lambda: fired.append(1.0))
    run_loop(lambda: len(fired) == 2)
    cancel_after()  # after it fired: a no-op, no GLib warning about a missing source


def test_watch_is_level_triggered_and_unwatch_works_inside_the_callback(glib):
    r, w = os.pipe()
    try:
        watcher = gtk_host.GLibWatcher(GLib.MainContext.default(), GLib.PRIORITY_DEFAULT)
        calls = []

        def on_readable():
            calls.append(1)
            if len(calls) == 3:
                watcher.unwatch()

        watcher.watch(r, on_readable)
        os.write(w, b"x")  # never read: stays readable
        run_loop(lambda: len(calls) >= 3)
        drain()
        time.sleep(0.01)
        drain()
        assert len(calls) == 3
    finally:
        os.close(r)
        os.close(w)


@MODES
def test_own_main_context_on_another_thread(glib, watch):
    """A GLib loop on a thread-default context of its own (not GTK's)."""
    results: dict[str, Any] = {}

    def thread_main():
        context = GLib.MainContext()
        context.push_thread_default()
        try:
            host = gtk_host.GLibHost(watch_poller=watch)
            results["context_ok"] = host.context == context
            loop = GLib.MainLoop(context)

            async def main():
                results["guest_thread"] = threading.get_ident()
                await asyncio.sleep(0.02)
                a, b = socket.socketpair()
                with a, b:
                    reader, writer = await asyncio.open_connection(sock=a)
                    b.send(b"hello\n")
                    line = await reader.readline()
                    writer.close()
                    await writer.wait_closed()
                return line

            guest = aioguest.start_guest(main(), host)
            guest.add_done_callback(lambda g: loop.quit())
            deadline = GLib.timeout_source_new(10_000)
            deadline.set_callback(lambda *a: loop.quit() or False)
            deadline.attach(context)
            loop.run()
            deadline.destroy()
            results["guest"] = guest
            results["thread"] = threading.get_ident()
            # Nothing of ours may be left on the context.
            while context.iteration(False):
                pass
            if host.poller_watcher is not None:
                host.poller_watcher.unwatch()
        finally:
            context.pop_thread_default()

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    assert results["context_ok"]
    guest = results["guest"]
    assert guest.done(), "the guest did not finish on its own context"
    assert guest.result() == b"hello\n"
    assert results["guest_thread"] == results["thread"]


# ---------------------------------------------------------------------------
# GTK 3 in this process


@MODES
def test_busy_guest_does_not_starve_timers_or_redraws(gtk3, watch):
    Gtk = gtk3
    window = Gtk.Window()
    area = Gtk.DrawingArea()
    area.set_size_request(50, 50)
    window.add(area)
    draws = []
    area.connect("draw", lambda *a: draws.append(1))
    window.show_all()
    run_loop(window.get_mapped)
    spins = [0]

    async def spin():
        while True:
            spins[0] += 1
            await asyncio.sleep(0)

    guest = gtk_host.start(spin(), watch_poller=watch)
    ticks = []
    draws_before = len(draws)

    def tick():
        ticks.append(spins[0])
        area.queue_draw()
        return len(ticks) < 20

    GLib.timeout_add(10, tick)
    try:
        run_loop(lambda: len(ticks) >= 20 and len(draws) - draws_before >= 5)
    finally:
        guest.cancel()
        pump(guest)
        window.destroy()
        drain()
    # The guest really was busy all along, between the host's ticks.
    assert ticks[-1] > ticks[0] > 0


@MODES
def test_closing_the_window_cancels_and_waits_for_teardown(gtk3, watch):
    Gtk = gtk3
    window = Gtk.Window()
    window.show_all()
    run_loop(window.get_mapped)
    log = []

    async def main():
        try:
            log.append("waiting")
            await asyncio.Event().wait()
        finally:
            log.append("cancelled")
            await asyncio.sleep(0.05)  # cleanup that needs the loop
            log.append("cleaned up")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guest = gtk_host.start(main(), window=window, watch_poller=watch)
        window.connect("destroy", lambda w: log.append(("destroyed", guest.done())))
        run_loop(lambda: bool(log))
        window.close()
        run_loop(lambda: any(isinstance(x, tuple) for x in log))
        drain()
    assert log == ["waiting", "cancelled", "cleaned up", ("destroyed", True)]
    assert guest.cancelled()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught


def test_closing_after_the_guest_finished_closes_at_once(gtk3):
    Gtk = gtk3
    window = Gtk.Window()
    window.show_all()
    run_loop(window.get_mapped)

    async def quick():
        return 1

    guest = pump(gtk_host.start(quick(), window=window))
    destroyed = []
    window.connect("destroy", lambda w: destroyed.append(True))
    window.close()
    run_loop(lambda: bool(destroyed))
    assert guest.result() == 1


@MODES
def test_nested_dialog_run_from_host_code_keeps_the_guest_running(gtk3, watch):
    """Gtk.Dialog.run() spins a nested main loop: the guest runs inside it."""
    Gtk = gtk3
    dialog = Gtk.Dialog(title="nested")
    progress: list[str] = []
    responses = []

    async def main():
        # Guest code, running while the host is blocked in dialog.run():
        # timers and socket I/O both need turns from the nested loop.
        while not dialog.get_mapped():
            await asyncio.sleep(0.005)
        a, b = socket.socketpair()
        with a, b:
            reader, writer = await asyncio.open_connection(sock=a)
            for i in range(5):
                b.send(b"%d\n" % i)
                progress.append((await reader.readline()).decode().strip())
                await asyncio.sleep(0.005)
            writer.close()
            await writer.wait_closed()
        dialog.response(Gtk.ResponseType.OK)
        return "done"

    guest = gtk_host.start(main(), watch_poller=watch)

    def host_code():
        # Bounded: if the guest never answers, the dialog ends itself.
        GLib.timeout_add(10_000, lambda: dialog.response(Gtk.ResponseType.NONE))
        responses.append(dialog.run())
        return False

    GLib.timeout_add(1, host_code)
    try:
        pump(guest)
        run_loop(lambda: bool(responses))
    finally:
        dialog.destroy()
        drain()
    assert progress == ["0", "1", "2", "3", "4"]
    assert responses == [Gtk.ResponseType.OK]
    assert guest.result() == "done"


@MODES
def test_run_dialog_awaits_without_blocking_other_tasks(gtk3, watch):
    Gtk = gtk3
    dialog = Gtk.Dialog(title="awaited")
    other_ticks = []

    async def answer_later():
        # If run_dialog blocked the guest, this would never run.
        while len(other_ticks) < 5:
            await asyncio.sleep(0.01)
            if dialog.get_visible():
                other_ticks.append(1)
        dialog.response(42)

    async def main():
        async with asyncio.TaskGroup() if hasattr(asyncio, "TaskGroup") else _Group() as tg:
            tg.create_task(answer_later())
            response = await gtk_host.run_dialog(dialog)
        return response

    try:
        guest = pump(gtk_host.start(main(), watch_poller=watch))
        assert guest.result() == 42
        assert len(other_ticks) == 5
    finally:
        dialog.destroy()
        drain()


def test_run_dialog_cancelled_hides_the_dialog(gtk3):
    Gtk = gtk3
    dialog = Gtk.Dialog(title="cancelled")

    async def main():
        task = asyncio.ensure_future(gtk_host.run_dialog(dialog))
        while not dialog.get_visible():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return dialog.get_visible()

    try:
        guest = pump(gtk_host.start(main()))
        assert guest.result() is False
    finally:
        dialog.destroy()
        drain()


class _Group:
    """asyncio.TaskGroup's little brother, for Python 3.10."""

    async def __aenter__(self) -> _Group:
        self.tasks: list[asyncio.Task[Any]] = []
        return self

    def create_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*self.tasks)


# ---------------------------------------------------------------------------
# GTK 4, in a child process

GTK4_CHILD = textwrap.dedent(
    """
    import asyncio, json, socket, sys
    import gi
    gi.require_version("Gtk", "4.0")
    from gi.repository import GLib, Gtk
    from aioguest.hosts import gtk as gtk_host

    watch = sys.argv[1] == "watch"
    out = {}
    assert Gtk.init_check()
    out["gtk"] = Gtk.get_major_version()

    def run_until(done, timeout=10):
        loop = GLib.MainLoop()
        def check():
            if done() or time_up[0]:
                loop.quit()
                return False
            return True
        time_up = [False]
        def up():
            time_up[0] = True
            return False
        t = GLib.timeout_add(int(timeout * 1000), up)
        GLib.timeout_add(1, check)
        loop.run()
        if not time_up[0]:
            GLib.source_remove(t)
        return not time_up[0]

    # 1. A nested GLib.MainLoop run by host code keeps the guest running.
    progress = []
    nested = GLib.MainLoop()

    async def during_nested():
        while not nested.is_running():
            await asyncio.sleep(0.005)
        a, b = socket.socketpair()
        with a, b:
            reader, writer = await asyncio.open_connection(sock=a)
            for i in range(3):
                b.send(b"x\\n")
                progress.append(await reader.readline())
            writer.close()
            await writer.wait_closed()
        nested.quit()
        return len(progress)

    guest = gtk_host.start(during_nested(), watch_poller=watch)
    def host_code():
        GLib.timeout_add(10_000, nested.quit)
        nested.run()
        out["nested_returned_with"] = len(progress)
        return False
    GLib.timeout_add(1, host_code)
    out["nested_finished"] = run_until(lambda: guest.done() and "nested_returned_with" in out)
    out["nested_result"] = guest.result()

    # 2. run_dialog with a GTK 4 dialog, other tasks keep running.
    dialog = Gtk.Dialog(title="gtk4")
    ticks = []
    async def answer():
        while len(ticks) < 5:
            await asyncio.sleep(0.01)
            if dialog.get_visible():
                ticks.append(1)
        dialog.response(7)
    async def dialog_main():
        helper = asyncio.ensure_future(answer())
        response = await gtk_host.run_dialog(dialog)
        await helper
        return response
    guest = gtk_host.start(dialog_main(), watch_poller=watch)
    out["dialog_finished"] = run_until(guest.done)
    out["dialog_response"] = guest.result()
    out["dialog_ticks"] = len(ticks)
    dialog.destroy()

    # 3. close-request cancels the guest and waits for its teardown.
    window = Gtk.Window()
    window.present()
    log = []
    async def until_closed():
        try:
            log.append("waiting")
            await asyncio.Event().wait()
        finally:
            log.append("cancelled")
            await asyncio.sleep(0.05)
            log.append("cleaned up")
    guest = gtk_host.start(until_closed(), window=window, watch_poller=watch)
    # GTK 4 emits "destroy" only once the last reference goes (ours stays):
    # gtk_window_destroy unrealizes the window at once.
    window.connect("unrealize", lambda w: log.append("destroyed, guest done: %s" % guest.done()))
    run_until(lambda: bool(log))
    window.close()
    out["close_finished"] = run_until(lambda: len(log) == 4)
    out["close_log"] = log
    out["close_cancelled"] = guest.cancelled()
    print(json.dumps(out))
    """
)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(QUIET_GTK_ENV)
    return env


@MODES
def test_gtk4_nested_loop_run_dialog_and_close_request(x_display, watch):
    mode = "watch" if watch else "worker"
    proc = subprocess.run(
        [sys.executable, "-c", GTK4_CHILD, mode],
        capture_output=True,
        text=True,
        timeout=50,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    if "Namespace Gtk not available for version 4.0" in proc.stderr:
        pytest.skip("GTK 4 introspection data missing (gir1.2-gtk-4.0)")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["gtk"] == 4
    assert out["nested_finished"] and out["nested_result"] == 3
    # The nested loop returned only because the guest, running inside it, quit it.
    assert out["nested_returned_with"] == 3
    assert out["dialog_finished"] and out["dialog_response"] == 7
    assert out["dialog_ticks"] == 5
    assert out["close_finished"], out["close_log"]
    assert out["close_log"] == [
        "waiting",
        "cancelled",
        "cleaned up",
        "destroyed, guest done: True",
    ]
    assert out["close_cancelled"]
    assert "abandoned" not in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# the sample app


def app_tracebacks(stderr: str) -> int:
    """Tracebacks in stderr that are not the demo server's.

    http.server prints one traceback per connection that the cancelled
    client dropped (BrokenPipeError in its handler thread), each after an
    "Exception occurred during processing of request" line; threads print
    them interleaved, so count rather than cut them out.
    """
    server = stderr.count("Exception occurred during processing of request")
    return stderr.count("Traceback (most recent call last)") - server


def run_app(*args: str) -> tuple[subprocess.CompletedProcess[str], str, int]:
    proc = subprocess.run(
        [sys.executable, str(APP), "--size", "1", "--files", "2", "--linger", "0", *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    match = re.search(r"ticks (\d+)$", last)
    ticks = int(match.group(1)) if match else -1
    assert "abandoned" not in proc.stderr
    assert app_tracebacks(proc.stderr) == 0, proc.stderr
    return proc, last, ticks


APP_VERSIONS = pytest.mark.parametrize("version", ["3", "4"])


@APP_VERSIONS
@pytest.mark.parametrize("mode", [[], ["--worker"]], ids=["watch", "worker"])
def test_app_downloads_while_the_ui_ticks(x_display, tmp_path, version, mode):
    shot = tmp_path / "window.png"
    proc, last, ticks = run_app("--gtk", version, "--screenshot", str(shot), *mode)
    assert proc.returncode == 0, proc.stderr
    # 1 MiB and 1.5 MiB
    assert last.startswith(f"result: downloaded {int(2.5 * 2**20)} bytes"), last
    # The largest file takes >= 0.45 s (24 blocks, 20 ms apart): a 50 ms
    # timer that was never starved ticks several times meanwhile.
    assert ticks >= 3, last
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@APP_VERSIONS
@pytest.mark.parametrize("how", ["--cancel-after", "--close-after"])
def test_app_cancel_and_close(x_display, version, how):
    proc, last, ticks = run_app("--gtk", version, how, "0.25", "--size", "4")
    assert proc.returncode == 0, proc.stderr
    assert last.startswith("result: cancelled"), last
    assert ticks >= 1, last


@APP_VERSIONS
def test_app_ctrl_c_closes_the_window_cleanly(x_display, version):
    proc = subprocess.Popen(
        [sys.executable, str(APP), "--gtk", version, "--size", "8", "--linger", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        # A shell may start us with SIGINT ignored (background jobs).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # bounded by the test's timeout
        assert first.strip() == "downloading", first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 130, err
    assert out.strip().splitlines()[-1].startswith("result: interrupted"), out
    assert "abandoned" not in err
    assert app_tracebacks(err) == 0, err
