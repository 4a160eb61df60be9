"""asyncio downloads behind a web page, with webview-python and aioguest.hosts.webview.

The page's JavaScript calls ``download()``, an ``async def`` that runs in the
asyncio guest, and awaits its result; progress comes back as script the guest
evaluates in the page.  A JavaScript timer calls ``tick()`` every 50 ms, a
plain Python function served by the webview's loop: its counter keeps going
while asyncio downloads.  Cancel cancels the download; closing the window
cancels everything and waits for asyncio's teardown.

    python examples/webview_app.py [--size MIB] [--files N] [--port P]

Test hooks: --cancel-after / --close-after SECONDS click Cancel or close the
window that long after the page started the download, --linger SECONDS is
how long the final state stays on screen.  The last line printed is
``result: downloaded N bytes; ticks T`` or ``result: cancelled; ticks T``
(exit code 0), else ``result: ...`` with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import sys
import urllib.parse
from typing import Any

from downloads import download_all, start_server

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>aioguest</title>
<style>
 body { font: 14px sans-serif; margin: 16px; }
 progress { width: 100%; }
</style></head>
<body>
<div id="bars"></div>
<p>UI ticks: <span id="ticks">0</span></p>
<p id="status">starting...</p>
<button id="cancel">Cancel</button>
<script>
const sizes = SIZES;
const bars = sizes.map((size, i) => {
  const bar = document.createElement("progress");
  bar.max = size;
  bar.value = 0;
  document.getElementById("bars").append(`file ${i + 1}: ${size >> 10} KiB`, bar);
  return bar;
});
function progress(i, got) { bars[i].value = got; }
setInterval(async () => {
  document.getElementById("ticks").textContent = await tick();
}, 50);
document.getElementById("cancel").onclick = () => cancel();
window.addEventListener("load", async () => {
  const status = document.getElementById("status");
  status.textContent = "downloading...";
  let text;
  try {
    text = `downloaded ${await download(sizes)} bytes`;
  } catch (error) {
    text = error.name === "CancelledError" ? "cancelled" : `failed: ${error.message}`;
  }
  status.textContent = text;
  document.getElementById("cancel").disabled = true;
  finished(text);
});
</script></body></html>
"""


def close_window(wv: Any) -> None:
    """Close the native window the way its close button does (GTK only)."""
    from webview._webview_ffi import _webview_lib

    lib = _webview_lib.lib
    lib.webview_get_window.argtypes = [ctypes.c_void_p]
    lib.webview_get_window.restype = ctypes.c_void_p
    window = lib.webview_get_window(wv._handle)
    # The library links one GTK; its own gtk_window_close is the one to call.
    gtk_window_close = lib.gtk_window_close
    gtk_window_close.argtypes = [ctypes.c_void_p]
    gtk_window_close(window)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=2.0, help="MiB per file (default 2)")
    parser.add_argument("--files", type=int, default=3, help="how many files (default 3)")
    parser.add_argument("--port", type=int, help="download from this server (default: our own)")
    parser.add_argument("--host", choices=("auto", "glib", "dispatch"), default="auto")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="click Cancel after S s")
    parser.add_argument("--close-after", type=float, metavar="S", help="close the window after S s")
    parser.add_argument("--linger", type=float, default=1.0, help="seconds to show the result")
    args = parser.parse_args()

    import webview

    from aioguest.hosts import webview as webview_host

    server = None
    port = args.port
    if port is None:
        server, port = start_server()
    sizes = [int(args.size * 1024 * 1024 * (1 + i / 2)) for i in range(args.files)]
    wv = webview.Webview(size=webview.Size(480, 260, webview.SizeHint.NONE))
    wv.title = "aioguest: asyncio behind a web page"
    ticks = 0
    downloading: set[asyncio.Task[Any]] = set()
    result: list[str] = []

    async def download(sizes: list[int]) -> int:
        def progress(i: int, got: int) -> None:
            wv.eval(f"progress({i}, {got})")

        task = asyncio.current_task()
        assert task is not None
        downloading.add(task)
        try:
            return await download_all(port, sizes, progress)
        finally:
            downloading.discard(task)

    def tick() -> int:
        nonlocal ticks
        if downloading:
            ticks += 1
        return ticks

    def cancel() -> None:
        for task in downloading:
            task.cancel()

    def finished(text: str) -> None:
        # What the page saw: the awaited result, or the rejection.
        result.append(f"{text}; ticks {ticks}")

    async def app() -> None:
        webview_host.bind(wv, "download", download)
        wv.bind("tick", tick)
        wv.bind("cancel", cancel)
        wv.bind("finished", finished)
        page = PAGE.replace("SIZES", json.dumps(sizes))
        wv.navigate("data:text/html," + urllib.parse.quote(page))
        if args.cancel_after is not None or args.close_after is not None:
            while not downloading and not result:  # the page has not called us yet
                await asyncio.sleep(0.01)
        if args.cancel_after is not None:
            await asyncio.sleep(args.cancel_after)
            wv.eval("document.getElementById('cancel').click()")
        if args.close_after is not None:
            await asyncio.sleep(args.close_after)
            close_window(wv)
        while not result:
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.linger)
        webview_host.terminate(wv)

    try:
        webview_host.run(wv, app(), host=args.host)
    except asyncio.CancelledError:
        pass  # the window was closed before the app was done
    finally:
        if server is not None:
            server.shutdown()
    print(f"result: {result[0] if result else f'cancelled; ticks {ticks}'}")
    ok = not result or result[0].startswith(("downloaded", "cancelled"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
