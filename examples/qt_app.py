"""Qt sample: an asyncio download in a Qt window, with PySide6, PyQt6 or PyQt5.

The window shows a progress bar, a Cancel button and a counter driven by a
QTimer, which keeps counting while the guest downloads: the UI never waits
for asyncio.  Closing the window cancels the download; the window closes
once the guest has finished its teardown.

    python examples/qt_app.py [--binding PyQt6] [--size MIB] [--port PORT]
        [--cancel-after S] [--close-after S] [--screenshot PATH] [--worker]

The last line printed is ``result: downloaded N bytes; ticks T``,
``result: cancelled; ticks T`` or, after Ctrl-C, ``result: interrupted;
ticks T`` (exit code 130); T counts the timer's ticks while the guest ran.
"""

from __future__ import annotations

import argparse
import sys

from downloads import download, start_server

from aioguest import Guest
from aioguest.hosts import qt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binding", choices=qt.BINDINGS, help="default: the first installed")
    parser.add_argument("--size", type=float, default=8.0, help="MiB to download (default 8)")
    parser.add_argument("--port", type=int, help="download from this server, not our own")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="press Cancel after S s")
    parser.add_argument("--close-after", type=float, metavar="S", help="close the window after S s")
    parser.add_argument("--screenshot", metavar="PATH", help="save the window at 50%% done")
    parser.add_argument("--worker", action="store_true", help="wait on the Go worker thread")
    args = parser.parse_args()
    QtCore, QtWidgets = qt.qt_modules(args.binding, "QtCore", "QtWidgets")

    server = None
    if args.port is None:
        server, args.port = start_server()
    size = int(args.size * 1024 * 1024)

    app = QtWidgets.QApplication(sys.argv[:1])
    window = QtWidgets.QWidget()
    window.setWindowTitle("aioguest: asyncio inside Qt")
    layout = QtWidgets.QVBoxLayout(window)
    layout.addWidget(QtWidgets.QLabel(f"Downloading {size / 2**20:g} MiB with asyncio streams"))
    bar = QtWidgets.QProgressBar()
    bar.setRange(0, size)
    layout.addWidget(bar)
    counter = QtWidgets.QLabel("UI ticks: 0")
    layout.addWidget(counter)
    cancel = QtWidgets.QPushButton("Cancel")
    layout.addWidget(cancel)
    window.resize(360, 140)

    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        counter.setText(f"UI ticks: {ticks}")

    timer = QtCore.QTimer()
    timer.timeout.connect(tick)
    timer.start(50)

    shot_taken = False

    def progress(got: int) -> None:
        nonlocal shot_taken
        if bar.value() < 0:  # still reset: the first bytes
            print("receiving", flush=True)  # tests wait for this before Ctrl-C
        bar.setValue(got)  # guest code may touch widgets: same thread
        if args.screenshot and not shot_taken and got * 2 >= size:
            shot_taken = True
            window.grab().save(args.screenshot)

    async def download_file() -> int:
        return await download(args.port, size, progress)

    guest = qt.start(download_file(), window=window, watch_poller=not args.worker)
    cancel.clicked.connect(lambda: guest.cancel())
    result = ""

    def finished(_guest: Guest[int]) -> None:
        nonlocal result
        timer.stop()
        if guest.cancelled():
            result = "cancelled"
        elif isinstance(guest.exception(), KeyboardInterrupt):
            result = "interrupted"  # Ctrl-C cancelled the guest, as under asyncio.run
        elif guest.exception() is not None:
            result = f"failed: {guest.exception()!r}"
        else:
            result = f"downloaded {guest.result()} bytes"
        cancel.setEnabled(False)
        counter.setText(f"{counter.text()} - {result}")
        QtCore.QTimer.singleShot(300, window.close)

    guest.add_done_callback(finished)
    if args.cancel_after is not None:
        QtCore.QTimer.singleShot(int(args.cancel_after * 1000), cancel.click)
    if args.close_after is not None:
        QtCore.QTimer.singleShot(int(args.close_after * 1000), window.close)

    window.show()
    app.exec()
    if server is not None:
        server.shutdown()
    print(f"result: {result}; ticks {ticks}")
    if result == "interrupted":
        return 130
    return 0 if result.startswith(("downloaded", "cancelled")) else 1


if __name__ == "__main__":
    sys.exit(main())
