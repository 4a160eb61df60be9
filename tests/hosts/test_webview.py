"""aioguest.hosts.webview: JavaScript awaits async Python on webview-python's loop.

A webview (WebKitGTK under Xvfb) starts WebKit's helper processes, which
live as long as the process that made the webview, so everything that opens
one runs in a child process; this process only checks what came back.
The DispatchHost's bookkeeping is also tested here against a fake library.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "webview_app.py"


def provide_native_library(scratch: Path) -> dict[str, str]:
    """The environment under which ``import webview`` finds its native
    library without the network; skips the test if there is none.

    Checked without importing ``webview`` here: its import loads the library
    and, if it is missing, downloads it from GitHub releases.  webviewpy's
    wheel (PyPI) carries a libwebview.so with the same C API; webview-python
    takes a local "download base" directory and copies the library from it.
    """
    if sys.platform != "linux":
        pytest.skip("only tested on Linux (WebKitGTK)")
    spec = importlib.util.find_spec("webview")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("webview-python is not installed (requirements/hosts.txt)")
    package = Path(next(iter(spec.submodule_search_locations)))
    if not (package / "_webview_ffi.py").exists():
        pytest.skip(f"the 'webview' module at {package} is not webview-python")
    lib = package / "libwebview.x86_64.so"
    # Never let webview-python reach for the network.
    env = {"WEBVIEW_DOWNLOAD_BASE": str(scratch / "no-such-dir")}
    if not lib.exists():
        donor = importlib.util.find_spec("webviewpy")
        if donor is None or donor.origin is None:
            pytest.skip(
                f"webview-python's native library is missing ({lib}) and webviewpy, "
                "whose wheel carries one, is not installed: webview-python would "
                "download it from GitHub releases on first import, which fails offline"
            )
        lib = Path(donor.origin).parent / "platform" / "linux" / "x64" / "libwebview.so"
        version_dir = scratch / "webview-lib" / os.environ.get("WEBVIEW_VERSION", "0.9.0")
        version_dir.mkdir(parents=True, exist_ok=True)
        (version_dir / "libwebview.x86_64.so").symlink_to(lib)
        env["WEBVIEW_DOWNLOAD_BASE"] = str(scratch / "webview-lib")
    proc = subprocess.run(["ldd", str(lib)], capture_output=True, text=True)
    missing = [line.split()[0] for line in proc.stdout.splitlines() if "not found" in line]
    if missing:
        pytest.skip(
            f"{lib} needs {', '.join(missing)} (Debian: the webkit group of tools/system-deps.sh)"
        )
    return env


# Filled in by the webview_ready fixture (session-wide).
CHILD_ENV: dict[str, str] = {}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GTK_A11Y": "none",
            "NO_AT_BRIDGE": "1",
            # Xvfb has no GPU: keep WebKit and GTK on software paths.
            "WEBKIT_DISABLE_COMPOSITING_MODE": "1",
            "LIBGL_ALWAYS_SOFTWARE": "1",
        }
    )
    env.update(CHILD_ENV)
    return env


@pytest.fixture(scope="session")
def webview_ready(x_display: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not CHILD_ENV:
        CHILD_ENV.update(provide_native_library(tmp_path_factory.mktemp("webview")))
    return x_display


def run_child(script: str, *args: str, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------
# in this process: the module and the dispatch host's bookkeeping


def test_importing_the_adapter_does_not_load_webview():
    before = "webview" in sys.modules
    import aioguest.hosts.webview as adapter

    assert callable(adapter.run) and callable(adapter.bind)
    assert ("webview" in sys.modules) is before


class FakeLib:
    """Stands in for the webview C library: dispatch notes pile up here."""

    def __init__(self) -> None:
        self.notes: list[Callable[[], None]] = []
        self.webview_dispatch = FakeFunction(self._dispatch)

    def _dispatch(self, handle: Any, callback: Callable[[Any, Any], None], arg: Any) -> int:
        assert handle == 1234
        self.notes.append(lambda: callback(None, arg))
        return 0


class FakeFunction:
    """A ctypes foreign function's shape: callable, with argtypes/restype."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.argtypes: Any = None
        self.restype: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class FakeWebview:
    _handle = 1234


def test_dispatch_host_runs_callbacks_in_order_and_detach_takes_back_the_rest(monkeypatch):
    from aioguest.hosts import webview as adapter

    lib = FakeLib()
    monkeypatch.setattr(adapter, "_native", lambda: lib)
    host = adapter.DispatchHost(FakeWebview())
    assert host.poller_watcher is None
    ran: list[int] = []
    for i in range(4):
        host.run_sync_soon_threadsafe(lambda i=i: ran.append(i))
    assert len(lib.notes) == 4
    lib.notes.pop(0)()
    lib.notes.pop(0)()
    assert ran == [0, 1]
    # The webview's loop returned with two notes never served.
    pending = host.detach()
    host.run_sync_soon_threadsafe(lambda: ran.append(4))
    assert len(lib.notes) == 2, "after detach nothing goes to the webview"
    while not pending.empty():
        pending.get()()
    assert ran == [0, 1, 2, 3, 4]
    # Stale notes served later (if the loop ever ran again) find nothing,
    # even once the host itself is gone.
    lib.notes[0]()
    del host
    gc.collect()
    lib.notes[1]()
    assert ran == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------
# a real webview, in a child process

BIND_CHILD = textwrap.dedent(
    """
    import asyncio, json, socket, sys
    import webview
    from aioguest.hosts import webview as webview_host

    host, watch = sys.argv[1], sys.argv[2] == "watch"
    wv = webview.Webview()
    out = {"reports": {}, "ticks_during_slow": 0}
    ticks = [0]
    reports = {}

    async def add(a, b):
        # Needs the guest's timers and socket I/O: the loop must be served.
        await asyncio.sleep(0.02)
        x, y = socket.socketpair()
        with x, y:
            reader, writer = await asyncio.open_connection(sock=x)
            y.send(b"%d\\n" % (a + b))
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
        return {"sum": int(line), "args": [a, b]}

    async def fail(message):
        await asyncio.sleep(0)
        raise ValueError(message)

    async def slow():
        # While this runs, JavaScript keeps calling tick(): the webview's
        # loop is not blocked by the guest.
        start = ticks[0]
        while ticks[0] < start + 5:
            await asyncio.sleep(0.01)
        return ticks[0] - start

    async def unserialisable():
        return object()

    async def forever():
        await asyncio.Event().wait()

    def tick():
        ticks[0] += 1
        return ticks[0]

    async def main():
        loop = asyncio.get_running_loop()
        got = asyncio.Event()

        def report(name, value):
            # A plain binding: host code on the webview's thread, between turns.
            reports[name] = value
            got.set()

        for name, fn in [("add", add), ("fail", fail), ("slow", slow),
                         ("unserialisable", unserialisable), ("forever", forever)]:
            webview_host.bind(wv, name, fn)
        wv.bind("report", report)
        wv.bind("tick", tick)
        wv.init("window.addEventListener('load', () => report('loaded', true))")
        wv.navigate("data:text/html,<html><body>test</body></html>")

        async def wait_for(name):
            while name not in reports:
                got.clear()
                await asyncio.wait_for(got.wait(), 20)
            return reports[name]

        await wait_for("loaded")
        def call(js_call, name):
            wv.eval(
                f"{js_call}.then(r => report('{name}', {{ok: r}}),"
                f" e => report('{name}', {{error: e}}))"
            )
        call("add(2, 3)", "add")
        call("fail('nope')", "fail")
        call("unserialisable()", "unserialisable")
        wv.eval("setInterval(() => tick(), 10)")
        call("slow()", "slow")
        call("forever()", "forever")
        for name in ("add", "fail", "unserialisable", "slow"):
            out["reports"][name] = await wait_for(name)
        return "main done"

    async def wrapped():
        try:
            return await main()
        finally:
            # Reached for the result below; the forever() call is still
            # pending and gets cancelled by the guest's teardown.
            webview_host.terminate(wv)

    out["result"] = webview_host.run(wv, wrapped(), host=host, watch_poller=watch)
    out["forever_settled"] = "forever" in reports
    print(json.dumps(out))
    """
)

HOSTS = pytest.mark.parametrize(
    "host,mode",
    [("glib", "watch"), ("glib", "worker"), ("dispatch", "worker")],
    ids=["glib-watch", "glib-worker", "dispatch"],
)


@HOSTS
def test_javascript_awaits_async_python(webview_ready, host, mode):
    proc = run_child(BIND_CHILD, host, mode)
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc)
    reports = out["reports"]
    assert reports["add"] == {"ok": {"sum": 5, "args": [2, 3]}}
    assert reports["fail"] == {"error": {"name": "ValueError", "message": "nope"}}
    assert reports["unserialisable"]["error"]["name"] == "TypeError"
    assert reports["slow"]["ok"] >= 5
    assert out["result"] == "main done"
    # The page was going away: no promise is settled into it then.
    assert out["forever_settled"] is False
    assert "abandoned" not in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


CLOSE_CHILD = textwrap.dedent(
    """
    import asyncio, ctypes, json, sys
    import webview
    from webview._webview_ffi import _webview_lib
    from aioguest.hosts import webview as webview_host

    wv = webview.Webview()
    log = []

    def close_window():
        lib = _webview_lib.lib
        lib.webview_get_window.argtypes = [ctypes.c_void_p]
        lib.webview_get_window.restype = ctypes.c_void_p
        lib.gtk_window_close.argtypes = [ctypes.c_void_p]
        lib.gtk_window_close(lib.webview_get_window(wv._handle))

    async def main():
        wv.navigate("data:text/html,<html><body>closing</body></html>")
        asyncio.get_running_loop().call_later(0.3, close_window)
        try:
            await asyncio.Event().wait()
        finally:
            log.append("cancelled")
            await asyncio.sleep(0.05)  # teardown that needs the loop
            log.append("cleaned up, handle alive: %s" % (wv._handle is not None))

    try:
        webview_host.run(wv, main(), host=sys.argv[1])
        log.append("returned")
    except asyncio.CancelledError:
        log.append("run raised CancelledError")
    log.append("destroyed: %s" % (wv._handle is None))
    print(json.dumps(log))
    """
)


@pytest.mark.parametrize("host", ["glib", "dispatch"])
def test_closing_the_window_cancels_and_waits_for_teardown(webview_ready, host):
    proc = run_child(CLOSE_CHILD, host)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc) == [
        "cancelled",
        "cleaned up, handle alive: True",
        "run raised CancelledError",
        "destroyed: True",
    ]
    assert "abandoned" not in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# the sample app


def app_tracebacks(stderr: str) -> int:
    """Tracebacks that are not the demo server's (it prints one per
    connection the cancelled client dropped, interleaved across threads)."""
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
    assert "abandoned" not in proc.stderr
    assert app_tracebacks(proc.stderr) == 0, proc.stderr
    return proc, last, int(match.group(1)) if match else -1


@pytest.mark.parametrize("host", ["auto", "dispatch"])
def test_app_downloads_while_javascript_ticks(webview_ready, host):
    proc, last, ticks = run_app("--host", host)
    assert proc.returncode == 0, proc.stderr
    # 1 MiB and 1.5 MiB, the total as JavaScript received it.
    assert last.startswith(f"result: downloaded {int(2.5 * 2**20)} bytes"), last
    # The largest file takes >= 0.45 s; tick() is called every 50 ms.
    assert ticks >= 3, last


@pytest.mark.parametrize("how", ["--cancel-after", "--close-after"])
def test_app_cancel_and_close(webview_ready, how):
    proc, last, ticks = run_app(how, "0.25", "--size", "4")
    assert proc.returncode == 0, proc.stderr
    assert last.startswith("result: cancelled"), last
    assert ticks >= 1, last
