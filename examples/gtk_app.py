"""asyncio downloads inside a GTK window (GTK 3 or 4), with aioguest.hosts.gtk.

The window shows a progress bar per file, a counter driven by a GLib timer
(it keeps ticking: the UI never freezes) and a Cancel button.  Closing the
window cancels the downloads; the window goes away once asyncio has finished
tearing down.

    python examples/gtk_app.py [--gtk 3|4] [--size MIB] [--files N] [--port P]

Test hooks: --cancel-after / --close-after SECONDS press Cancel or close the
window that long after the first bytes arrived, --screenshot PATH saves the
window once the downloads are under way, --linger SECONDS is how long the
final state stays on screen.  The last line printed is ``result: downloaded
N bytes; ticks T`` or ``result: cancelled; ticks T`` (exit code 0),
``result: interrupted; ticks T`` after Ctrl-C (exit code 130), or
``result: failed: ...`` (exit code 1).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import gi
from downloads import download_all, start_server


def build_window(Gtk: Any, app: Any, sizes: list[int]) -> tuple[Any, list[Any], Any, Any, Any]:
    window = Gtk.ApplicationWindow(application=app, title="aioguest: asyncio inside GTK")
    window.set_default_size(420, -1)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
    for side in ("top", "bottom", "start", "end"):
        getattr(box, f"set_margin_{side}")(12)
    # GTK 4 replaced Gtk.Container.add with per-widget methods.
    add = box.append if hasattr(box, "append") else box.add
    bars = []
    for i, size in enumerate(sizes):
        bar = Gtk.ProgressBar(show_text=True, text=f"file {i + 1}: {size // 1024} KiB")
        add(bar)
        bars.append(bar)
    counter = Gtk.Label(label="UI ticks: 0")
    status = Gtk.Label(label="downloading...")
    cancel = Gtk.Button(label="Cancel")
    for widget in (counter, status, cancel):
        add(widget)
    if hasattr(window, "set_child"):
        window.set_child(box)
        window.present()
    else:
        window.add(box)
        window.show_all()
    return window, bars, counter, status, cancel


def screenshot(window: Any, path: str) -> bool:
    """Save the window as a PNG; False if it has not been drawn yet."""
    if not window.get_mapped():
        return False
    if hasattr(window, "get_renderer"):  # GTK 4: render the widget tree ourselves
        from gi.repository import Graphene, Gtk

        width, height = window.get_width(), window.get_height()
        snapshot = Gtk.Snapshot()
        Gtk.WidgetPaintable(widget=window).snapshot(snapshot, width, height)
        node = snapshot.to_node()
        if node is None:
            return False
        viewport = Graphene.Rect().init(0, 0, width, height)
        window.get_renderer().render_texture(node, viewport).save_to_png(path)
    else:  # GTK 3: read back what the X server shows
        from gi.repository import Gdk

        gdk_window = window.get_window()
        w, h = gdk_window.get_width(), gdk_window.get_height()
        Gdk.pixbuf_get_from_window(gdk_window, 0, 0, w, h).savev(path, "png", [], [])
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gtk", choices=("3", "4"), default="3", help="GTK version (default 3)")
    parser.add_argument("--size", type=float, default=2.0, help="MiB per file (default 2)")
    parser.add_argument("--files", type=int, default=3, help="how many files (default 3)")
    parser.add_argument("--port", type=int, help="download from this server (default: our own)")
    parser.add_argument("--worker", action="store_true", help="wait on aioguest's worker thread")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="press Cancel after S s")
    parser.add_argument("--close-after", type=float, metavar="S", help="close the window after S s")
    parser.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window")
    parser.add_argument("--linger", type=float, default=1.0, help="seconds to show the result")
    args = parser.parse_args()

    gi.require_version("Gtk", f"{args.gtk}.0")
    from gi.repository import Gio, GLib, Gtk

    from aioguest.hosts import gtk as gtk_host

    server = None
    port = args.port
    if port is None:
        server, port = start_server()
    sizes = [int(args.size * 1024 * 1024 * (1 + i / 2)) for i in range(args.files)]
    result: list[str] = []
    ticks = 0

    windows: list[Any] = []

    def activate(app: Any) -> None:
        window, bars, counter, status, cancel = build_window(Gtk, app, sizes)
        windows.append(window)

        started = False

        def progress(i: int, got: int) -> None:
            # Guest code, on GTK's thread: it may touch widgets directly.
            nonlocal started
            bars[i].set_fraction(got / sizes[i])
            if not started:
                started = True
                print("downloading", flush=True)  # tests wait for this line
                arm_test_hooks()

        guest = gtk_host.start(
            download_all(port, sizes, progress), window=window, watch_poller=not args.worker
        )
        cancel.connect("clicked", lambda _button: guest.cancel())

        def tick() -> bool:
            nonlocal ticks
            if guest.done():
                return GLib.SOURCE_REMOVE
            ticks += 1
            counter.set_label(f"UI ticks: {ticks}")
            return GLib.SOURCE_CONTINUE

        def finished(guest: Any) -> None:
            if guest.cancelled():
                what = "interrupted" if interrupted else "cancelled"
                result.append(f"{what}; ticks {ticks}")
            elif guest.exception() is not None:
                result.append(f"failed: {guest.exception()!r}; ticks {ticks}")
            else:
                result.append(f"downloaded {guest.result()} bytes; ticks {ticks}")
            status.set_label(result[-1])
            cancel.set_sensitive(False)
            # Closed by the user: the adapter destroys the window now.
            GLib.timeout_add(int(args.linger * 1000), lambda: window.destroy())

        def arm_test_hooks() -> None:
            # Counted from the first bytes, not from start-up (GTK 4's first
            # frame alone can take that long on a loaded machine).
            if args.cancel_after is not None:
                GLib.timeout_add(int(args.cancel_after * 1000), lambda: cancel.emit("clicked"))
            if args.close_after is not None:
                GLib.timeout_add(int(args.close_after * 1000), lambda: window.close())

        guest.add_done_callback(finished)
        GLib.timeout_add(50, tick)
        if args.screenshot:

            def shoot() -> bool:
                if max(bar.get_fraction() for bar in bars) < 0.2 and not guest.done():
                    return GLib.SOURCE_CONTINUE
                return not screenshot(window, args.screenshot)

            GLib.timeout_add(20, shoot)

    # NON_UNIQUE: a second copy must not hand its work to a first one over
    # D-Bus (GApplication's default), it is a separate demo.
    app = Gtk.Application(
        application_id="org.aioguest.GtkDemo", flags=Gio.ApplicationFlags.NON_UNIQUE
    )
    app.connect("activate", activate)

    interrupted = False

    def on_sigint(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        # Ctrl-C closes the window as its close button does, so the guest
        # is cancelled and finishes first.  (Without a handler of ours,
        # PyGObject's fallback would quit the loop under the running guest.)
        GLib.idle_add(lambda: windows[0].close() if windows else app.quit())

    signal.signal(signal.SIGINT, on_sigint)
    try:
        app.run([sys.argv[0]])
    finally:
        if server is not None:
            server.shutdown()
    print(f"result: {result[0] if result else 'none'}")
    if interrupted:
        return 130  # the shell's convention for "ended by SIGINT"
    return 0 if result and not result[0].startswith("failed") else 1


if __name__ == "__main__":
    sys.exit(main())
