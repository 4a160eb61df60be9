"""aioguest.hosts.tornado: an asyncio guest inside Tornado's IOLoop.

The in-process tests run a real Tornado application (HTTPServer on a
loopback port, requests made with Tornado's own AsyncHTTPClient from the
host loop), with a deadline, in both waiting modes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="tornado is not installed")

import tornado.gen  # noqa: E402
import tornado.httpclient  # noqa: E402
import tornado.httpserver  # noqa: E402
import tornado.ioloop  # noqa: E402
import tornado.netutil  # noqa: E402
import tornado.web  # noqa: E402

import aioguest  # noqa: E402
from aioguest.hosts import tornado as tornado_host  # noqa: E402

TIMEOUT = 20


@pytest.fixture(params=["watch", "worker"])
def watch_poller(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "watch")


def run_host(main: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), TIMEOUT)

    return asyncio.run(bounded())


class Server:
    """A Tornado app on a loopback port, and a client for it."""

    def __init__(self, handlers: list[Any]) -> None:
        self.app = tornado.web.Application(handlers)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = tornado.httpserver.HTTPServer(self.app)
        self.server.add_sockets(sockets)
        self.client = tornado.httpclient.AsyncHTTPClient()

    async def fetch(self, path: str, **kw: Any) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        return await self.client.fetch(url, request_timeout=TIMEOUT, **kw)

    async def close(self) -> None:
        self.client.close()
        self.server.stop()
        await self.server.close_all_connections()


async def get_via_asyncio_streams(port: int, path: str) -> bytes:
    """Guest code: a plain-asyncio HTTP GET (to the host's Tornado server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return response.split(b"\r\n\r\n", 1)[1]


def test_handler_awaits_work_done_in_the_guest(watch_poller):
    """A request to /relay makes its handler run a coroutine in the guest
    loop, which in turn fetches /plain from the same Tornado server with
    asyncio streams: both loops do I/O on one thread at once."""
    seen: dict[str, Any] = {}

    class Plain(tornado.web.RequestHandler):
        def get(self) -> None:
            seen["plain handler loop"] = asyncio.get_running_loop()
            self.write("hello from tornado")

    class Relay(tornado.web.RequestHandler):
        async def get(self) -> None:
            seen["relay handler loop"] = asyncio.get_running_loop()
            seen["relay io_loop"] = tornado.ioloop.IOLoop.current()
            body = await tornado_host.run_in_guest(guest, in_guest())
            self.write(b"relayed: " + body)

    async def in_guest() -> bytes:
        seen["guest loop"] = asyncio.get_running_loop()
        return await get_via_asyncio_streams(server.port, "/plain")

    async def main() -> Any:
        nonlocal guest, server
        server = Server([("/plain", Plain), ("/relay", Relay)])
        guest = tornado_host.start(asyncio.Event().wait(), watch_poller=watch_poller)
        try:
            responses = [await server.fetch("/relay") for _ in range(3)]
        finally:
            await tornado_host.cancel_and_wait(guest)
            await server.close()
        seen["host loop"] = asyncio.get_running_loop()
        seen["host io_loop"] = tornado.ioloop.IOLoop.current()
        return [r.body for r in responses]

    guest: aioguest.Guest[Any] = None  # type: ignore[assignment]
    server: Server = None  # type: ignore[assignment]
    assert run_host(main) == [b"relayed: hello from tornado"] * 3
    assert seen["relay handler loop"] is seen["host loop"]
    assert seen["plain handler loop"] is seen["host loop"]
    assert seen["relay io_loop"] is seen["host io_loop"]
    assert seen["guest loop"] is not seen["host loop"]
    assert seen["guest loop"] is guest.task.get_loop()
    assert guest.cancelled()


def test_tornado_code_in_the_guest_stays_in_the_guest(watch_poller):
    """Inside the guest, IOLoop.current() wraps the guest loop, so Tornado
    helpers used by guest code schedule on the guest, not the host."""

    async def guest() -> tuple[Any, Any, bool]:
        io_loop = tornado.ioloop.IOLoop.current()
        await tornado.gen.sleep(0.01)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        io_loop.add_callback(lambda: fut.set_result(asyncio.get_running_loop() is guest_loop()))
        return io_loop, io_loop.asyncio_loop, await fut

    def guest_loop() -> Any:
        return handle.task.get_loop()

    async def main() -> Any:
        nonlocal handle
        handle = tornado_host.start(guest(), watch_poller=watch_poller)
        io_loop, asyncio_loop, callback_in_guest = await tornado_host.wait(handle)
        assert io_loop is not tornado.ioloop.IOLoop.current()
        assert asyncio_loop is guest_loop()
        assert callback_in_guest

    handle: aioguest.Guest[Any] = None  # type: ignore[assignment]
    run_host(main)


def test_explicit_io_loop_and_host_class(watch_poller):
    async def main() -> None:
        io_loop = tornado.ioloop.IOLoop.current()
        host = tornado_host.TornadoHost(io_loop, watch_poller=watch_poller)
        assert host.loop is io_loop.asyncio_loop is asyncio.get_running_loop()
        assert (host.poller_watcher is not None) is watch_poller
        g = tornado_host.start(asyncio.sleep(0.01, "ok"), io_loop=io_loop)
        assert await tornado_host.wait(g) == "ok"
        assert (
            await tornado_host.run(asyncio.sleep(0.01, "run"), watch_poller=watch_poller) == "run"
        )

    run_host(main)


def test_cancel_from_a_handler_answers_after_the_teardown(watch_poller):
    log: list[str] = []

    async def guest() -> None:
        log.append("started")
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.02)
            log.append("teardown done")

    class Cancel(tornado.web.RequestHandler):
        async def post(self) -> None:
            await tornado_host.cancel_and_wait(handle)
            log.append("handler answers")
            self.write({"cancelled": handle.cancelled()})

    async def main() -> Any:
        nonlocal handle
        server = Server([("/cancel", Cancel)])
        handle = tornado_host.start(guest(), watch_poller=watch_poller)
        try:
            while "started" not in log:
                await asyncio.sleep(0.001)
            response = await server.fetch("/cancel", method="POST", body=b"")
        finally:
            await server.close()
        return json.loads(response.body)

    handle: aioguest.Guest[Any] = None  # type: ignore[assignment]
    assert run_host(main) == {"cancelled": True}
    assert log == ["started", "teardown done", "handler answers"]


def test_plain_start_guest_run_under_tornado_still_raises():
    async def main() -> None:
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="cannot be called from a running asyncio event"):
            aioguest.start_guest_run(
                coro, run_sync_soon_threadsafe=lambda fn: None, done_callback=lambda o: None
            )

    run_host(main)


# ---------------------------------------------------------------------------
# The sample app

APP = Path(__file__).resolve().parents[2] / "examples" / "tornado_app.py"


def start_app(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(aioguest.__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, str(APP), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def app_tracebacks(stderr: str) -> int:
    """Tracebacks in stderr other than the download server's: http.server
    prints one for each connection a cancelled client dropped (after an
    "Exception occurred during processing of request" line)."""
    server = stderr.count("Exception occurred during processing of request")
    return stderr.count("Traceback (most recent call last)") - server


def finish_app(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the app did not finish; stdout: {out!r} stderr: {err!r}")
    assert "abandoned" not in err and app_tracebacks(err) == 0, err
    return proc.returncode, out.strip().splitlines()[-1]


def app_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on http://127.0.0.1:"), first
    return first.split()[-1]


def ticks_of(last: str) -> int:
    return int(last.rsplit("ticks", 1)[1])


@pytest.mark.parametrize("mode", ["watch", "worker"])
def test_app_downloads_while_serving(mode):
    proc = start_app("--size", "1", *(["--worker"] if mode == "worker" else []))
    code, last = finish_app(proc)
    assert code == 0
    assert last.startswith(f"result: downloaded {2**20} bytes;"), last
    assert ticks_of(last) >= 3, "the host's PeriodicCallback stalled"


def test_app_cancel_request():
    proc = start_app("--size", "64")
    try:
        url = app_url(proc)
        deadline = time.monotonic() + TIMEOUT
        status: dict[str, Any] = {"got": 0}
        while status["got"] == 0 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/status", timeout=TIMEOUT) as r:
                status = json.load(r)
        # Two tasks in the guest: its main task and the one counting them.
        assert status["got"] > 0 and status["guest_tasks"] == 2
        request = urllib.request.Request(f"{url}/cancel", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            assert json.load(r) == {"cancelled": True}
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    code, last = finish_app(proc)
    assert code == 0
    assert last.startswith("result: cancelled;"), last


def test_app_ctrl_c_cancels():
    proc = start_app("--size", "64")
    try:
        app_url(proc)
        assert proc.stdout is not None
        assert "%" in proc.stdout.readline()  # a tick: the download runs
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    proc.send_signal(signal.SIGINT)
    code, last = finish_app(proc)
    assert code == 0
    assert last.startswith("result: cancelled;"), last
