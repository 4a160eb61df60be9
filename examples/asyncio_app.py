"""asyncio sample: an asyncio guest loop inside an asyncio program, in a terminal.

The host is an ordinary ``asyncio.run`` program whose own task prints a
counter and the progress every 50 ms; the download runs in a separate
guest loop on the same thread (its own loop, tasks and executor), started
with ``aioguest.hosts.asyncio.start``.  Ctrl-C (or ``--cancel-after``)
cancels the download, and the program waits for the guest's teardown.

    python examples/asyncio_app.py [--size MIB] [--port PORT]
        [--cancel-after S] [--worker]

The last line printed is ``result: downloaded N bytes; ticks T`` or
``result: cancelled; ticks T`` (T: host ticks while the guest ran).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from downloads import download, start_server

from aioguest.hosts import asyncio as aio_host


async def main(args: argparse.Namespace) -> str:
    size = int(args.size * 1024 * 1024)
    got = 0
    ticks = 0

    def progress(n: int) -> None:
        nonlocal got
        got = n  # guest code may touch host state: same thread

    guest = aio_host.start(download(args.port, size, progress), watch_poller=not args.worker)
    if args.cancel_after is not None:
        # A host timer standing in for a Cancel button.
        asyncio.get_running_loop().call_later(args.cancel_after, guest.cancel)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1
            print(f"host ticks {ticks:4d} | {100 * got // size:3d}%", flush=True)

    tick_task = asyncio.create_task(ticker())
    try:
        result = f"downloaded {await aio_host.wait(guest)} bytes"
    except (asyncio.CancelledError, KeyboardInterrupt):
        # --cancel-after: the guest's own outcome.  Ctrl-C: asyncio.run
        # (3.11+) cancels this task, and wait() cancels the guest and
        # returns only after its teardown; on 3.10 the guest catches
        # Ctrl-C itself, as asyncio.run would, and ends with
        # KeyboardInterrupt.
        result = "cancelled"
    finally:
        tick_task.cancel()
    return f"result: {result}; ticks {ticks}"


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=8.0, help="MiB to download (default 8)")
    parser.add_argument("--port", type=int, help="download from this server, not our own")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="cancel after S s")
    parser.add_argument("--worker", action="store_true", help="wait on the Go worker thread")
    args = parser.parse_args()
    server = None
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
