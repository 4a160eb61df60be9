"""Tornado sample: a Tornado web app with an asyncio download running as its guest.

The download (asyncio streams) runs in a guest loop on the IOLoop's
thread, while the Tornado app keeps serving: ``GET /status`` reports the
progress, the host's tick count and how many tasks the guest has (asked
of the guest loop itself, with ``run_in_guest``), and ``POST /cancel``
cancels the download and answers once the guest's teardown is complete.
A PeriodicCallback prints a counter and the progress every 50 ms.  The
app ends when the download does.

    python examples/tornado_app.py [--size MIB] [--port PORT]
        [--http-port PORT] [--cancel-after S] [--worker]

The first line printed is ``listening on http://127.0.0.1:PORT``; the last
is ``result: downloaded N bytes; ticks T`` or ``result: cancelled; ticks T``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
from downloads import download, start_server

from aioguest import Guest
from aioguest.hosts import tornado as tornado_host


class State:
    def __init__(self, size: int) -> None:
        self.size = size
        self.got = 0
        self.ticks = 0
        self.in_flight = 0  # requests being handled
        self.guest: Guest[int] | None = None


class Handler(tornado.web.RequestHandler):
    def initialize(self, state: State) -> None:
        self.state = state

    def prepare(self) -> None:
        self.state.in_flight += 1

    def on_finish(self) -> None:
        self.state.in_flight -= 1


async def guest_task_count() -> int:
    return len(asyncio.all_tasks())  # runs in the guest: the guest's tasks


class Status(Handler):
    async def get(self) -> None:
        s = self.state
        assert s.guest is not None
        try:
            tasks = await tornado_host.run_in_guest(s.guest, guest_task_count())
        except (RuntimeError, asyncio.CancelledError):
            tasks = 0  # the guest ended first (its teardown cancels all its tasks)
        self.write({"got": s.got, "size": s.size, "ticks": s.ticks, "guest_tasks": tasks})


class Cancel(Handler):
    async def post(self) -> None:
        assert self.state.guest is not None
        await tornado_host.cancel_and_wait(self.state.guest)
        self.write({"cancelled": self.state.guest.cancelled()})


async def main(args: argparse.Namespace) -> str:
    state = State(int(args.size * 1024 * 1024))

    def progress(n: int) -> None:
        state.got = n  # guest code may touch host state: same thread

    state.guest = guest = tornado_host.start(
        download(args.port, state.size, progress), watch_poller=not args.worker
    )
    app = tornado.web.Application(
        [(r"/status", Status, {"state": state}), (r"/cancel", Cancel, {"state": state})]
    )
    sockets = tornado.netutil.bind_sockets(args.http_port, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    print(f"listening on http://127.0.0.1:{sockets[0].getsockname()[1]}", flush=True)

    def tick() -> None:
        state.ticks += 1
        print(f"host ticks {state.ticks:4d} | {100 * state.got // state.size:3d}%", flush=True)

    ticker = tornado.ioloop.PeriodicCallback(tick, 50)
    ticker.start()
    if args.cancel_after is not None:
        tornado.ioloop.IOLoop.current().call_later(args.cancel_after, guest.cancel)
    try:
        result = f"downloaded {await tornado_host.wait(guest)} bytes"
    except (asyncio.CancelledError, KeyboardInterrupt):  # see asyncio_app.py
        result = "cancelled"
    ticker.stop()
    # Let a request that is still being answered (POST /cancel) finish.
    while state.in_flight:
        await asyncio.sleep(0.01)
    server.stop()
    await server.close_all_connections()
    return f"result: {result}; ticks {state.ticks}"


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=8.0, help="MiB to download (default 8)")
    parser.add_argument("--port", type=int, help="download from this server, not our own")
    parser.add_argument("--http-port", type=int, default=0, help="the app's port (default: any)")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="cancel after S s")
    parser.add_argument("--worker", action="store_true", help="wait on the Go worker thread")
    args = parser.parse_args()
    server: Any = None
    if args.port is None:
        server, args.port = start_server()
    try:
        print(asyncio.run(main(args)))
    finally:
        if server is not None:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
