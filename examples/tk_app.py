"""Tkinter sample: an asyncio download running inside Tk's own event loop.

A window with a progress bar, a Cancel button and a counter driven by a Tk
timer.  The download is plain asyncio (streams, from a local HTTP server
this script starts); ``aioguest.hosts.tk.start`` runs it as a guest of
``root.mainloop()``, in short turns on Tk's thread, so the guest updates
widgets directly and the counter never stops.  Closing the window cancels
the download and waits for it to clean up before the window goes.

    python examples/tk_app.py [--size MIB] [--port PORT] [--worker]
                              [--cancel-after S] [--close-after S]
                              [--screenshot PNG] [--linger S]

The last line printed is ``result: downloaded N bytes; ticks T``,
``result: cancelled; ticks T`` or ``result: failed: ...; ticks T``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tkinter as tk
from tkinter import ttk

from downloads import download, start_server

from aioguest.hosts import tk as tk_host


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=4.0, help="MiB to download (default 4)")
    parser.add_argument("--port", type=int, help="use this server instead of starting one")
    parser.add_argument("--worker", action="store_true", help="wait on aioguest's worker thread")
    parser.add_argument("--cancel-after", type=float, help="press Cancel after S seconds")
    parser.add_argument("--close-after", type=float, help="close the window after S seconds")
    parser.add_argument("--screenshot", help="save a PNG of the window mid-download (Pillow)")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to show the result")
    args = parser.parse_args()
    size = int(args.size * 2**20)
    server = None
    port = args.port
    if port is None:
        server, port = start_server()

    root = tk.Tk()
    root.title("aioguest: asyncio inside Tk")
    bar = ttk.Progressbar(root, length=320, maximum=size)
    bar.grid(row=0, column=0, columnspan=2, padx=10, pady=(10, 4))
    status = ttk.Label(root, text="connecting...")
    status.grid(row=1, column=0, columnspan=2)
    counter = ttk.Label(root, text="UI ticks: 0")
    counter.grid(row=2, column=0, padx=10, pady=10, sticky="w")
    cancel = ttk.Button(root, text="Cancel")
    cancel.grid(row=2, column=1, padx=10, pady=10, sticky="e")

    ticks = 0

    def tick() -> None:
        # Tk's own timer: it keeps firing while asyncio downloads.
        nonlocal ticks
        ticks += 1
        counter["text"] = f"UI ticks: {ticks}"
        root.after(50, tick)

    shot_pending = args.screenshot is not None

    def progress(got: int) -> None:
        # Called from the guest, on Tk's thread: widgets are fair game.
        nonlocal shot_pending
        bar["value"] = got
        status["text"] = f"{100 * got // size}%  ({got // 1024} of {size // 1024} KiB)"
        if shot_pending and got >= size * 0.4:
            shot_pending = False
            root.after(100, screenshot)  # once Tk has drawn this progress

    def screenshot() -> None:
        from PIL import ImageGrab

        x, y = root.winfo_rootx(), root.winfo_rooty()
        box = (x, y, x + root.winfo_width(), y + root.winfo_height())
        ImageGrab.grab(box, xdisplay=os.environ.get("DISPLAY")).save(args.screenshot)
        print(f"screenshot: {args.screenshot}", flush=True)

    guest = tk_host.start(download(port, size, progress), root=root, watch_poller=not args.worker)
    cancel["command"] = guest.cancel

    def done(_: object) -> None:
        cancel.state(["disabled"])
        if guest.cancelled():
            status["text"] = "cancelled"
        elif guest.exception() is not None:
            status["text"] = f"failed: {guest.exception()!r}"
        else:
            status["text"] = f"done: {guest.result()} bytes"
        # A close request lets the guest finish first and then destroys the
        # window itself; otherwise show the result for a while.
        root.after(int(args.linger * 1000), root.destroy)

    guest.add_done_callback(done)
    root.after(50, tick)
    if args.cancel_after is not None:
        root.after(int(args.cancel_after * 1000), cancel.invoke)
    if args.close_after is not None:
        # What the window manager's close button does: run the window's
        # WM_DELETE_WINDOW handler.
        root.after(
            int(args.close_after * 1000), lambda: root.tk.eval(root.protocol("WM_DELETE_WINDOW"))
        )
    print(f"window: {root.wm_frame()}", flush=True)
    root.mainloop()
    if server is not None:
        server.shutdown()

    if not guest.done():
        print(f"result: unfinished; ticks {ticks}")
        return 1
    if guest.cancelled():
        print(f"result: cancelled; ticks {ticks}")
        return 0
    error = guest.exception()
    if error is not None:
        print(f"result: failed: {error!r}; ticks {ticks}")
        return 1
    print(f"result: downloaded {guest.result()} bytes; ticks {ticks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
