"""aioguest demo: concurrent downloads in asyncio, running as a guest of a host loop.

A small HTTP server (a plain thread, standing in for "the network") serves a
few files; the guest downloads them concurrently with asyncio streams and
reports progress to the host.  The host is a Tk window when a display is
available (progress bars, a live counter proving the UI never froze, a Cancel
button), and a terminal loop otherwise (``--terminal`` forces it).

    python examples/demo.py [--terminal] [--size MIB] [--files N]
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from collections.abc import Callable

import outcome
from downloads import download_all, start_server

import aioguest

# -- terminal host ------------------------------------------------------------


def run_terminal(port: int, sizes: list[int]) -> int:
    """A minimal host: a queue of callbacks plus a 100 ms host timer."""
    callbacks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    done: list[outcome.Outcome[int]] = []
    got = [0] * len(sizes)
    ticks = 0

    def progress(i: int, n: int) -> None:
        got[i] = n

    aioguest.start_guest_run(
        download_all(port, sizes, progress),
        run_sync_soon_threadsafe=callbacks.put,
        done_callback=done.append,
    )
    next_tick = time.monotonic()
    while not done:
        now = time.monotonic()
        if now >= next_tick:
            ticks += 1  # the host's own timer: proof it kept running
            next_tick += 0.1
            bars = " ".join(f"{100 * g // s:3d}%" for g, s in zip(got, sizes, strict=True))
            print(f"\rhost ticks {ticks:4d} | {bars}", end="", flush=True)
            continue
        try:
            callback = callbacks.get(timeout=next_tick - now)
        except queue.Empty:
            continue
        callback()
    print()
    total = done[0].unwrap()
    print(f"downloaded {total} bytes in {len(sizes)} files; host ticked {ticks} times meanwhile")
    return 0


# -- Tk host ------------------------------------------------------------------


def run_tk(port: int, sizes: list[int]) -> int:
    import tkinter as tk
    from tkinter import ttk

    root = tk.Tk()
    root.title("aioguest demo: asyncio downloads inside Tk")
    bars = []
    for i, size in enumerate(sizes):
        ttk.Label(root, text=f"file {i + 1} ({size // 1024} KiB)").grid(row=i, column=0, padx=6)
        bar = ttk.Progressbar(root, length=300, maximum=size)
        bar.grid(row=i, column=1, padx=6, pady=3)
        bars.append(bar)
    counter = ttk.Label(root, text="UI ticks: 0")
    counter.grid(row=len(sizes), column=0, pady=6)
    status = ttk.Label(root, text="downloading...")
    status.grid(row=len(sizes), column=1)
    result: list[outcome.Outcome[int]] = []
    ticks = [0]

    def tick() -> None:
        ticks[0] += 1
        counter.config(text=f"UI ticks: {ticks[0]}")
        root.after(50, tick)

    def progress(i: int, n: int) -> None:
        bars[i]["value"] = n

    def done(res: outcome.Outcome[int]) -> None:
        result.append(res)
        if isinstance(res, outcome.Value):
            status.config(text=f"done: {res.value} bytes")
        else:
            status.config(text=f"stopped: {type(res.error).__name__}")
        root.after(1500, root.destroy)

    # Tk's "after idle" runs a Tcl command once the event queue is empty; from
    # another thread tkinter forwards the call to the Tcl thread, so this is
    # safe from the worker too.  (The hosts issue ships a tuned adapter.)
    def soon(fn: Callable[[], None]) -> None:
        root.after_idle(fn)

    task = aioguest.start_guest_run(
        download_all(port, sizes, progress), run_sync_soon_threadsafe=soon, done_callback=done
    )
    assert task is not None
    ttk.Button(root, text="Cancel", command=task.cancel).grid(row=len(sizes) + 1, column=1)
    root.protocol("WM_DELETE_WINDOW", task.cancel)
    root.after(50, tick)
    root.mainloop()
    return 0 if result and isinstance(result[0], outcome.Value) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminal", action="store_true", help="use the terminal host")
    parser.add_argument("--size", type=float, default=2.0, help="MiB per file (default 2)")
    parser.add_argument("--files", type=int, default=4, help="how many files (default 4)")
    args = parser.parse_args()
    server, port = start_server()
    sizes = [int(args.size * 1024 * 1024 * (1 + i / 2)) for i in range(args.files)]
    try:
        if not args.terminal and (os.environ.get("DISPLAY") or sys.platform != "linux"):
            try:
                return run_tk(port, sizes)
            except ImportError as exc:  # pragma: no cover - Python without Tk
                print(f"no Tk ({exc}); using the terminal host")
        return run_terminal(port, sizes)
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
