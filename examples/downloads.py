"""What the sample apps share: a local HTTP server to download from, and the
asyncio code that downloads from it.  Each sample imports this (it runs as a
script from ``examples/``, so this directory is on ``sys.path``).

The server is a plain thread standing in for "the network"; ``GET /N``
returns N bytes, slowly enough (a 64 KiB block every 20 ms) that progress
is visible.  The guest side uses nothing but asyncio streams.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["CHUNK", "download", "download_all", "start_server"]

CHUNK = 64 * 1024


class _FileHandler(BaseHTTPRequestHandler):
    """Serves /N as N bytes, slowly enough that progress is visible."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        size = int(self.path.strip("/"))
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * CHUNK
        sent = 0
        try:
            while sent < size:
                n = min(CHUNK, size - sent)
                self.wfile.write(block[:n])
                sent += n
                time.sleep(0.02)
        except ConnectionError:
            pass  # the client cancelled its download: nothing to report

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_server() -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FileHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
    return server, server.server_address[1]


async def download(port: int, size: int, report: Callable[[int], None]) -> int:
    """GET one file with asyncio streams; report(bytes_so_far) as it arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /{size} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        got = 0
        while chunk := await reader.read(CHUNK):
            got += len(chunk)
            report(got)
        return got
    finally:
        writer.close()
        await writer.wait_closed()


async def download_all(port: int, sizes: list[int], progress: Callable[[int, int], None]) -> int:
    """The guest's main coroutine: all downloads at once, with a TaskGroup-like gather."""
    results = await asyncio.gather(
        *(download(port, size, lambda got, i=i: progress(i, got)) for i, size in enumerate(sizes))
    )
    return sum(results)
