"""Trio sample: an asyncio download as a guest of a Trio program, in a terminal.

A Trio task prints a counter and the progress every 50 ms while the
download, written with asyncio streams, runs in an asyncio guest loop on
Trio's thread (``aioguest.hosts.trio.run``).  Ctrl-C, or the deadline that
``--cancel-after`` puts around the download, cancels it in the Trio way;
``run`` returns only once the guest has finished its teardown.

    python examples/trio_app.py [--size MIB] [--port PORT]
        [--cancel-after S] [--worker]

The last line printed is ``result: downloaded N bytes; ticks T`` or
``result: cancelled; ticks T`` (T: Trio ticks while the guest ran).
"""

from __future__ import annotations

import argparse
import math
import sys

import trio
from downloads import download, start_server

from aioguest.hosts import trio as trio_host


def is_ctrl_c(exc: BaseException) -> bool:
    """KeyboardInterrupt, maybe inside the exception groups Trio's
    nurseries wrap what escapes them in."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    inner = getattr(exc, "exceptions", None)
    return bool(inner) and all(is_ctrl_c(e) for e in inner)


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
    size = int(args.size * 1024 * 1024)
    got = 0
    ticks = 0

    def progress(n: int) -> None:
        nonlocal got
        got = n  # guest code may touch Trio-side state: same thread

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.05)
            ticks += 1
            print(f"trio ticks {ticks:4d} | {100 * got // size:3d}%", flush=True)

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            deadline = math.inf if args.cancel_after is None else args.cancel_after
            with trio.move_on_after(deadline):
                total = await trio_host.run(
                    download(args.port, size, progress), watch_poller=not args.worker
                )
                nursery.cancel_scope.cancel()
                return f"downloaded {total} bytes"
            nursery.cancel_scope.cancel()
            return "cancelled"

    try:
        result = trio.run(main)
    except BaseException as exc:
        if not is_ctrl_c(exc):
            raise
        # Trio delivered Ctrl-C to the main task; run() cancelled the guest
        # and waited for its teardown on the way out.
        result = "cancelled"
    finally:
        if server is not None:
            server.shutdown()
    print(f"result: {result}; ticks {ticks}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
