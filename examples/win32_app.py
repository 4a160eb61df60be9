"""Win32 sample: an asyncio download driven by a thread's Win32 message loop.

Windows only, and untested (aioguest is developed and tested on Linux; its
Go poller has no Windows backend yet, so today this stops with aioguest's
"unsupported" error).  A console program: ``aioguest.hosts.win32`` gives
the guest a message-only window that other threads post to; a Win32 timer
(``SetTimer``) counts ticks on the same loop to show it stays responsive,
and the progress is printed.

    python examples/win32_app.py [--size MIB] [--port PORT] [--cancel-after S]

The last line printed is ``result: downloaded N bytes; ticks T`` or
``result: cancelled; ticks T``.
"""

from __future__ import annotations

import argparse
import ctypes
import sys

from downloads import download, start_server

from aioguest.hosts import win32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=4.0, help="MiB to download (default 4)")
    parser.add_argument("--port", type=int, help="use this server instead of starting one")
    parser.add_argument("--cancel-after", type=float, help="cancel after S seconds")
    args = parser.parse_args()
    if sys.platform != "win32":
        print("win32_app.py needs Windows: it runs a Win32 message loop", file=sys.stderr)
        return 2
    size = int(args.size * 2**20)
    server = None
    port = args.port
    if port is None:
        server, port = start_server()

    user32 = ctypes.WinDLL("user32")
    # A thread timer (no window): DispatchMessage calls its TIMERPROC.
    timerproc = ctypes.WINFUNCTYPE(
        None, ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t, ctypes.c_ulong
    )
    user32.SetTimer.restype = ctypes.c_size_t
    user32.SetTimer.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, timerproc]
    user32.KillTimer.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    ticks = 0
    got = 0

    @timerproc
    def on_tick(hwnd: object, msg: int, timer_id: int, when: int) -> None:
        nonlocal ticks
        ticks += 1
        print(f"\rticks {ticks:4d}   {100 * got // size:3d}%", end="", flush=True)

    def progress(n: int) -> None:
        nonlocal got
        got = n

    guest = win32.start(download(port, size, progress), quit_when_done=True)
    tick_timer = user32.SetTimer(None, 0, 100, on_tick)

    @timerproc
    def on_cancel(hwnd: object, msg: int, timer_id: int, when: int) -> None:
        user32.KillTimer(None, timer_id)
        guest.cancel()

    if args.cancel_after is not None:
        user32.SetTimer(None, 0, int(args.cancel_after * 1000), on_cancel)
    try:
        win32.run_message_loop()
    finally:
        user32.KillTimer(None, tick_timer)
        if server is not None:
            server.shutdown()
    print()
    if guest.cancelled():
        print(f"result: cancelled; ticks {ticks}")
        return 0
    print(f"result: downloaded {guest.result()} bytes; ticks {ticks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
