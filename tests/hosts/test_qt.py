"""The Qt host: PySide6, PyQt6 and PyQt5, headless (QT_QPA_PLATFORM=offscreen).

Two bindings cannot share one process (each wants its own QApplication), so
the adapter tests run in this process on one binding (AIOGUEST_QT_BINDING,
else the first that imports) and ``test_binding_in_subprocess`` reruns this
file in a child process for each other installed binding.  The sample app
runs in subprocesses with every installed binding.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aioguest.hosts import qt as qt_host

from .samples import ctrl_c_sample

BINDING_ENV = "AIOGUEST_QT_BINDING"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SAMPLE = EXAMPLES / "qt_app.py"

os.environ["QT_QPA_PLATFORM"] = "offscreen"


def _pick_binding() -> str | None:
    wanted = os.environ.get(BINDING_ENV)
    for name in [wanted] if wanted else qt_host.BINDINGS:
        try:
            importlib.import_module(f"{name}.QtWidgets")
        except ImportError:
            continue
        return name
    return None


BINDING = _pick_binding()
if BINDING is None:
    pytest.skip(
        f"no Qt binding importable ({os.environ.get(BINDING_ENV) or ', '.join(qt_host.BINDINGS)}): "
        "pip install -r requirements/hosts.txt",
        allow_module_level=True,
    )
QtCore: Any = importlib.import_module(f"{BINDING}.QtCore")
QtWidgets: Any = importlib.import_module(f"{BINDING}.QtWidgets")
IN_CHILD = BINDING_ENV in os.environ


def _exec(obj: Any) -> Any:
    # PyQt5 before Python 3 support for the name had only exec_.
    return (obj.exec if hasattr(obj, "exec") else obj.exec_)()


@pytest.fixture(scope="session")
def qapp() -> Iterator[Any]:
    """One QApplication for the session, warmed up before any leak baseline:
    the offscreen platform, fonts and the event dispatcher open descriptors
    on first use and keep them for the process's life."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    # Tests close windows; the session's application must not quit on that.
    app.setQuitOnLastWindowClosed(False)
    w = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(w)
    layout.addWidget(QtWidgets.QLabel("warm-up"))
    layout.addWidget(QtWidgets.QProgressBar())
    w.show()
    w.grab()
    dialog = QtWidgets.QDialog()
    dialog.open()
    dialog.accept()
    r, wfd = os.pipe()
    notifier = QtCore.QSocketNotifier(r, qt_host._binding(BINDING).read_type)
    notifier.setEnabled(False)
    del notifier
    os.close(r)
    os.close(wfd)
    w.close()
    spin(lambda: False, 0.05, fail=False)
    yield app


@pytest.fixture(params=[True, False], ids=["watch", "worker"])
def watch(request: pytest.FixtureRequest, qapp: Any) -> bool:
    """Every test that takes it runs with the QSocketNotifier watch and with
    the Go worker waiting."""
    return bool(request.param)


@pytest.fixture
def host(qapp: Any, watch: bool) -> qt_host.QtHost:
    return qt_host.QtHost(watch_poller=watch)


def spin(done: Callable[[], bool], timeout: float = 10, *, fail: bool = True) -> None:
    """Run Qt's event loop until ``done()`` or the deadline."""
    if done():
        return
    loop = QtCore.QEventLoop()
    check = QtCore.QTimer()
    check.timeout.connect(lambda: done() and loop.quit())
    check.start(2)
    deadline = QtCore.QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    deadline.start(int(timeout * 1000))
    _exec(loop)
    check.stop()
    deadline.stop()
    if fail and not done():
        pytest.fail(f"not done within {timeout} s")


def run_guest(host: qt_host.QtHost, coro: Any, timeout: float = 10, **kw: Any) -> Any:
    guest = host.start(coro, **kw)
    spin(guest.done, timeout)
    return guest


def later(ms: int, fn: Callable[[], object]) -> None:
    QtCore.QTimer.singleShot(ms, fn)


class Ticker:
    """A host timer: proof that the host's own events keep being served."""

    def __init__(self, interval_ms: int = 5) -> None:
        self.ticks = 0
        self.timer = QtCore.QTimer()
        self.timer.timeout.connect(self._tick)
        self.timer.start(interval_ms)

    def _tick(self) -> None:
        self.ticks += 1

    def stop(self) -> None:
        self.timer.stop()


# ---------------------------------------------------------------------------
# Adapter, in this process


def test_result_on_the_host_thread(host):
    async def main():
        await asyncio.sleep(0.01)
        return threading.get_ident()

    guest = run_guest(host, main())
    assert guest.result() == threading.get_ident()


def test_exception_reaches_the_guest(host):
    async def main():
        await asyncio.sleep(0)
        raise ValueError("boom")

    guest = run_guest(host, main())
    assert isinstance(guest.exception(), ValueError)


def test_cancel_from_a_host_timer(host):
    async def main():
        await asyncio.Event().wait()

    guest = host.start(main())
    later(20, guest.cancel)
    spin(guest.done)
    assert guest.cancelled()


def test_timers_do_not_fire_early(host):
    async def main():
        loop = asyncio.get_running_loop()
        short = []
        for delay in (0.001, 0.0105, 0.03):
            start = loop.time()
            await asyncio.sleep(delay)
            elapsed = loop.time() - start
            if elapsed < delay - loop._clock_resolution:
                short.append((delay, elapsed))
        return short

    assert run_guest(host, main()).result() == []


def test_stream_round_trips(host):
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    async def main():
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(200):
            msg = f"{i}\n".encode()
            writer.write(msg)
            assert await reader.readline() == msg
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return "ok"

    assert run_guest(host, main()).result() == "ok"


def test_host_code_wakes_an_idle_guest(host):
    event_box: list[asyncio.Event] = []

    async def main():
        event_box.append(asyncio.Event())
        await event_box[0].wait()
        return "woken"

    guest = host.start(main())
    spin(lambda: bool(event_box))
    later(30, lambda: event_box[0].set())  # host code, between turns
    spin(guest.done)
    assert guest.result() == "woken"


def test_busy_guest_does_not_starve_host_timers(host):
    spins = 0

    async def main():
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    ticker = Ticker(5)
    guest = host.start(main())
    try:
        spin(lambda: ticker.ticks >= 20)
    finally:
        ticker.stop()
        guest.cancel()
    spin(guest.done)
    assert guest.cancelled()
    assert spins > 20


def test_two_guests_share_a_host(host):
    async def main(n):
        await asyncio.sleep(0.01 * n)
        return n

    guests = [host.start(main(n)) for n in (1, 2)]
    spin(lambda: all(g.done() for g in guests))
    assert [g.result() for g in guests] == [1, 2]


@pytest.mark.parametrize("watch_poller", [True, False], ids=["watch", "worker"])
def test_a_host_on_another_threads_event_loop(qapp, watch_poller):
    """A QtHost belongs to the thread that creates it: a worker thread
    running its own QEventLoop hosts guests as well as the GUI thread."""
    out: dict[str, Any] = {}

    def thread_main() -> None:
        try:
            host = qt_host.QtHost(watch_poller=watch_poller)

            async def main():
                await asyncio.sleep(0.01)
                return threading.get_ident()

            guest = host.start(main())
            spin(guest.done)
            out["result"] = guest.result()
            out["thread"] = threading.get_ident()
            del host, guest
            # deleteLater'd notifiers of this thread, before it ends.
            QtCore.QCoreApplication.sendPostedEvents(None, 0)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=thread_main)
    t.start()
    t.join(15)
    assert not t.is_alive()
    assert "error" not in out, out.get("error")
    assert out["result"] == out["thread"] != threading.get_ident()


def test_callbacks_from_other_threads_run_in_order_on_the_host_thread(qapp):
    host = qt_host.QtHost()
    ran: list[tuple[int, int, int]] = []
    n_threads, per_thread = 4, 300

    def post(t: int) -> None:
        for i in range(per_thread):
            host.run_sync_soon_threadsafe(lambda i=i: ran.append((t, i, threading.get_ident())))

    threads = [threading.Thread(target=post, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    try:
        spin(lambda: len(ran) == n_threads * per_thread)
    finally:
        for t in threads:
            t.join(10)
    assert {ident for _, _, ident in ran} == {threading.get_ident()}
    for t in range(n_threads):
        assert [i for tt, i, _ in ran if tt == t] == list(range(per_thread))


def test_queued_callbacks_share_one_posted_event(qapp):
    host = qt_host.QtHost()
    batches = 0
    real_batch = host._run_batch

    def counting_batch() -> None:
        nonlocal batches
        batches += 1
        real_batch()

    host._run_batch = counting_batch  # type: ignore[method-assign]
    ran: list[int] = []
    for i in range(1000):
        host.run_sync_soon_threadsafe(lambda i=i: ran.append(i))
    spin(lambda: len(ran) == 1000)
    assert ran == list(range(1000))
    assert batches == 1


def test_callbacks_queued_by_a_batch_wait_for_the_next_pass(qapp):
    host = qt_host.QtHost()
    batches = 0
    real_batch = host._run_batch

    def counting_batch() -> None:
        nonlocal batches
        batches += 1
        real_batch()

    host._run_batch = counting_batch  # type: ignore[method-assign]
    ran_in: dict[str, int] = {}

    def first() -> None:
        ran_in["first"] = batches
        host.run_sync_soon_threadsafe(lambda: ran_in.setdefault("requeued", batches))

    host.run_sync_soon_threadsafe(first)
    spin(lambda: "requeued" in ran_in)
    # Running it in the same batch would let a guest that keeps queueing
    # turns hold the host thread for good.
    assert ran_in["requeued"] == ran_in["first"] + 1


def test_a_failing_callback_is_logged_and_the_rest_run(qapp, caplog):
    host = qt_host.QtHost()
    ran: list[str] = []

    def bad() -> None:
        raise RuntimeError("callback failed")

    host.run_sync_soon_threadsafe(bad)
    host.run_sync_soon_threadsafe(lambda: ran.append("after"))
    with caplog.at_level(logging.ERROR, logger="aioguest"):
        spin(lambda: ran == ["after"])
    assert "callback failed" in caplog.text


def test_watcher_is_level_triggered_and_unwatch_stops_it(qapp):
    watcher = qt_host.QtWatcher(qt_host.QtHost())
    r, w = os.pipe()
    try:
        calls = 0

        def readable() -> None:
            nonlocal calls
            calls += 1

        os.write(w, b"x")
        watcher.watch(r, readable)
        spin(lambda: calls >= 3)  # still readable: called again and again
        watcher.unwatch()
        seen = calls
        spin(lambda: False, 0.05, fail=False)
        assert calls == seen
        os.read(r, 1)
        watcher.watch(r, readable)
        spin(lambda: False, 0.05, fail=False)
        assert calls == seen  # nothing to read: no call
        os.write(w, b"y")
        spin(lambda: calls > seen)
        watcher.unwatch()
    finally:
        spin(lambda: False, 0.01, fail=False)  # the notifiers' deleteLater
        os.close(r)
        os.close(w)


def test_watcher_timer_rounds_up_and_cancels(qapp):
    watcher = qt_host.QtWatcher(qt_host.QtHost())
    fired: list[float] = []
    start = time.monotonic()
    watcher.call_later(0.0101, lambda: fired.append(time.monotonic() - start))
    cancel = watcher.call_later(0.005, lambda: fired.append(-1.0))
    cancel()
    cancel()  # idempotent
    spin(lambda: bool(fired))
    spin(lambda: False, 0.03, fail=False)
    assert len(fired) == 1
    assert fired[0] >= 0.0101
    # The timer is reused: a cancel function of a past arming is a no-op.
    again = watcher.call_later(0.001, lambda: fired.append(2.0))
    cancel()
    spin(lambda: len(fired) == 2)
    again()


def test_closing_the_window_cancels_the_guest_and_waits_for_teardown(host):
    window = QtWidgets.QWidget()
    window.show()
    seen_in_teardown: list[bool] = []

    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            seen_in_teardown.append(window.isVisible())
            await asyncio.sleep(0.02)  # teardown that needs more turns
            seen_in_teardown.append(window.isVisible())

    guest = host.start(main(), window=window)
    closed_at_once: list[bool] = []
    later(20, lambda: closed_at_once.append(window.close()))
    spin(guest.done)
    spin(lambda: not window.isVisible())
    assert closed_at_once == [False]  # the first close was refused...
    assert seen_in_teardown == [True, True]  # ...so the window outlived the teardown
    assert guest.cancelled()


def test_window_closes_plainly_once_the_guest_is_done(host):
    window = QtWidgets.QWidget()
    window.show()

    async def main():
        return 1

    guest = run_guest(host, main(), window=window)
    assert guest.result() == 1
    assert window.isVisible()
    assert window.close() is True


@pytest.mark.parametrize("how", ["exit", "quit"])
def test_app_exit_runs_guest_teardown_before_exec_returns(qapp, how):
    host = qt_host.QtHost()
    teardown: list[str] = []

    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)
            teardown.append("done")

    guest = host.start(main())
    later(30, getattr(qapp, how))
    # A guard, should exec() not return by itself.
    guard = QtCore.QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(lambda: qapp.exit(99))
    guard.start(10_000)
    try:
        code = _exec(qapp)
    finally:
        guard.stop()
    assert code == 0
    assert teardown == ["done"]
    assert guest.cancelled()


def test_app_quit_with_a_guest_window_waits_for_the_teardown(qapp):
    """Qt 6's quit() first asks every window to close: ours refuses until
    the guest is done, then closes, and the last window closing quits.
    Qt 5's quit() is exit(0): aboutToQuit runs the teardown."""
    host = qt_host.QtHost()
    window = QtWidgets.QWidget()
    window.show()
    teardown: list[bool] = []

    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)
            teardown.append(window.isVisible())

    guest = host.start(main(), window=window)
    later(30, qapp.quit)
    guard = QtCore.QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(lambda: qapp.exit(99))
    guard.start(10_000)
    qapp.setQuitOnLastWindowClosed(True)
    try:
        code = _exec(qapp)
    finally:
        qapp.setQuitOnLastWindowClosed(False)
        guard.stop()
        window.close()
    assert code == 0
    assert teardown == [True]
    assert guest.cancelled()


def test_host_code_in_a_nested_dialog_loop_keeps_the_guest_running(host):
    count = 0

    async def main():
        nonlocal count
        while True:
            count += 1
            await asyncio.sleep(0.001)

    guest = host.start(main())
    dialog = QtWidgets.QDialog()
    seen: dict[str, Any] = {}

    def watch_dialog() -> None:
        if "open" in seen and count - seen["open"] >= 5:
            dialog.accept()
        elif time.monotonic() > seen.get("deadline", float("inf")):
            dialog.reject()

    checker = QtCore.QTimer()
    checker.timeout.connect(watch_dialog)

    def modal() -> None:  # host code: a blocking exec() from a timer
        seen["open"] = count
        seen["deadline"] = time.monotonic() + 10
        checker.start(2)
        seen["code"] = _exec(dialog)
        checker.stop()
        seen["closed"] = count

    later(10, modal)
    try:
        spin(lambda: "code" in seen, 15)
    finally:
        guest.cancel()
        spin(guest.done)
    assert seen["code"] == QtWidgets.QDialog.DialogCode.Accepted
    assert seen["closed"] - seen["open"] >= 5


def test_exec_dialog_keeps_other_guest_tasks_running(host):
    dialog = QtWidgets.QDialog()
    count = 0
    at_open: list[int] = []

    async def ticker():
        nonlocal count
        while True:
            count += 1
            await asyncio.sleep(0.001)

    async def main():
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        try:
            code = await qt_host.exec_dialog(dialog)
        finally:
            task.cancel()
        return code

    def watch_dialog() -> None:
        if dialog.isVisible():
            if not at_open:
                at_open.append(count)
            elif count - at_open[0] >= 5:
                dialog.done(7)

    checker = QtCore.QTimer()
    checker.timeout.connect(watch_dialog)
    checker.start(2)
    try:
        guest = run_guest(host, main(), 15)
    finally:
        checker.stop()
    assert guest.result() == 7
    assert not dialog.isVisible()


def test_guest_code_calling_the_blocking_exec_blocks_only_the_guest(host):
    """Guest code that calls dialog.exec() blocks the guest like any
    blocking call (asyncio's loop is not reentrant: the turns the nested
    loop would run wait), while Qt keeps serving the host; afterwards the
    guest goes on."""
    dialog = QtWidgets.QDialog()
    count = 0
    ticker = Ticker(5)

    async def io():
        nonlocal count
        while True:
            await asyncio.sleep(0.002)
            count += 1

    async def main():
        task = asyncio.create_task(io())
        await asyncio.sleep(0.02)
        ticks, before = ticker.ticks, count
        later(100, dialog.accept)
        code = _exec(dialog)
        during = count - before
        host_ticks = ticker.ticks - ticks
        await asyncio.sleep(0.02)
        task.cancel()
        return code, during, host_ticks, count - before

    try:
        guest = run_guest(host, main())
    finally:
        ticker.stop()
    code, during, host_ticks, after = guest.result()
    assert code == QtWidgets.QDialog.DialogCode.Accepted
    assert during == 0  # the guest's own tasks waited...
    assert host_ticks >= 5  # ...while the host's timer kept ticking
    assert after > 0  # and the guest went on afterwards


def test_cancelling_exec_dialog_rejects_the_dialog(host):
    dialog = QtWidgets.QDialog()

    async def main():
        return await qt_host.exec_dialog(dialog)

    guest = host.start(main())
    spin(dialog.isVisible)
    guest.cancel()
    spin(guest.done)
    assert guest.cancelled()
    assert not dialog.isVisible()
    assert dialog.result() == QtWidgets.QDialog.DialogCode.Rejected


def test_module_start_uses_one_default_host_per_thread(qapp):
    async def main():
        return 5

    guests = [qt_host.start(main()), qt_host.start(main())]
    spin(lambda: all(g.done() for g in guests))
    assert [g.result() for g in guests] == [5, 5]
    hosts = qt_host._default_hosts.hosts
    assert hosts[BINDING, True].app is qapp


def test_binding_detection_follows_the_application(qapp):
    assert qt_host.detect_binding() == BINDING
    assert qt_host.detect_binding(app=qapp) == BINDING
    other = next(b for b in qt_host.BINDINGS if b != BINDING)
    with pytest.raises(ValueError, match="application object"):
        qt_host.detect_binding(binding=other)
    with pytest.raises(ValueError, match="unknown Qt binding"):
        qt_host.detect_binding(binding="PySide2")


def test_pyside_6_12_0_on_old_python_is_reported(monkeypatch):
    class Core:
        __version_info__ = (6, 12, 0, "", "")

    monkeypatch.setattr(sys, "version_info", (3, 11, 7, "final", 0))
    with pytest.warns(RuntimeWarning, match="none_dealloc"):
        qt_host._warn_if_broken("PySide6", Core)
    Core.__version_info__ = (6, 11, 3, "", "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qt_host._warn_if_broken("PySide6", Core)


def test_qt_calls_keep_none_alive():
    """The installed binding does not drop references to None (PySide6
    6.12.0 does on Python < 3.12, and then crashes a busy program)."""
    app = QtCore.QCoreApplication.instance()
    receiver = QtCore.QObject()
    event_type = qt_host._binding(BINDING).event_type
    before = sys.getrefcount(None)
    for _ in range(200):
        QtCore.QCoreApplication.postEvent(receiver, QtCore.QEvent(event_type))
        app.processEvents()
    assert sys.getrefcount(None) - before > -100


# ---------------------------------------------------------------------------
# Out of process: no application yet, import laziness, the other bindings


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    import aioguest

    # The child imports the same aioguest as we do (in-tree or installed).
    package_root = str(Path(aioguest.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


def _python(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(**extra),
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.skipif(IN_CHILD, reason="runs once, in the parent process")
def test_importing_the_adapter_imports_no_binding():
    done = _python(
        "import sys, aioguest.hosts, aioguest.hosts.qt\n"
        "print(sorted(m for m in sys.modules if m.startswith(('PySide', 'PyQt'))))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(IN_CHILD, reason="runs once, in the parent process")
def test_a_host_needs_the_application():
    done = _python(
        f"from aioguest.hosts import qt\nqt.QtHost(binding={BINDING!r})",
    )
    assert done.returncode != 0
    assert "RuntimeError: create the QApplication" in done.stderr


@functools.cache
def _installed(binding: str) -> bool:
    done = _python(f"import {binding}.QtWidgets")
    return done.returncode == 0


OTHER_BINDINGS = [b for b in qt_host.BINDINGS if b != BINDING]


@pytest.mark.skipif(IN_CHILD, reason="runs in the parent process only")
@pytest.mark.parametrize("binding", OTHER_BINDINGS)
def test_binding_in_subprocess(binding):
    if not _installed(binding):
        pytest.skip(f"{binding} is not importable")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout=60",
            "-k",
            "not subprocess and not sample",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(**{BINDING_ENV: binding}),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", summary), summary
    assert "failed" not in summary and "error" not in summary, summary


# ---------------------------------------------------------------------------
# The sample app


def installed_bindings() -> list[str]:
    return [b for b in qt_host.BINDINGS if b == BINDING or _installed(b)]


@pytest.fixture(scope="session")
def download_server() -> Iterator[int]:
    """The sample's server, run here so that what it prints about the
    connections the sample drops (cancel) lands in our log, not the app's."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        downloads = importlib.import_module("downloads")
    finally:
        sys.path.remove(str(EXAMPLES))
    server, port = downloads.start_server()
    yield port
    server.shutdown()
    server.server_close()


def run_sample(port: int, *args: str, timeout: float = 60) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, str(SAMPLE), "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_child_env(),
        cwd=EXAMPLES,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    assert "Traceback" not in done.stderr, done.stderr
    assert "abandoned" not in done.stderr, done.stderr
    match = re.fullmatch(r"result: (.*); ticks (\d+)", last)
    assert match, (last, done.stderr)
    return match.group(1), int(match.group(2)), done.stderr + f"\n(exit code {done.returncode})"


@pytest.mark.skipif(IN_CHILD, reason="runs in the parent process only")
@pytest.mark.parametrize("binding", qt_host.BINDINGS)
@pytest.mark.parametrize("mode", ["watch", "worker"])
def test_sample_downloads_while_the_ui_ticks(download_server, binding, mode):
    if binding not in installed_bindings():
        pytest.skip(f"{binding} is not importable")
    extra = ["--worker"] if mode == "worker" else []
    result, ticks, log = run_sample(download_server, "--binding", binding, "--size", "1", *extra)
    assert result == f"downloaded {2**20} bytes", log
    assert ticks >= 2, "the UI timer did not tick while the guest downloaded"
    assert log.endswith("(exit code 0)"), log


@pytest.mark.skipif(IN_CHILD, reason="runs in the parent process only")
@pytest.mark.parametrize("how", ["--cancel-after", "--close-after"])
def test_sample_cancel_and_close(download_server, how):
    result, ticks, log = run_sample(download_server, "--size", "16", how, "0.4")
    assert result == "cancelled", log
    assert ticks >= 2
    assert log.endswith("(exit code 0)"), log


@pytest.mark.skipif(IN_CHILD, reason="runs in the parent process only")
def test_sample_screenshot_mid_download(download_server, tmp_path):
    """The window mid-download, as a PNG; AIOGUEST_UPDATE_SCREENSHOTS=1
    also stores it as docs/img/qt_app.png (the picture in docs/hosts.md)."""
    shot = tmp_path / "qt_app.png"
    result, _, log = run_sample(download_server, "--size", "2", "--screenshot", str(shot))
    assert result == f"downloaded {2 * 2**20} bytes", log
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("AIOGUEST_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "img" / "qt_app.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.mark.skipif(IN_CHILD, reason="runs in the parent process only")
def test_sample_ctrl_c_cancels_the_guest(download_server):
    ctrl_c_sample(SAMPLE, download_server, _child_env())
