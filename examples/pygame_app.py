"""pygame sample: an asyncio download inside a pygame program's own loop.

The window draws a progress bar, a Cancel button (click it, or press Esc)
and a frame counter that keeps counting while the guest downloads.  Closing
the window cancels the download; the loop goes on until the guest has
finished its teardown, then the program ends.

    python examples/pygame_app.py [--size MIB] [--port PORT]
        [--cancel-after S] [--close-after S] [--screenshot PATH]

The last line printed is ``result: downloaded N bytes; ticks T``,
``result: cancelled; ticks T`` or, after Ctrl-C, ``result: interrupted;
ticks T`` (exit code 130); T counts the frames drawn while the guest ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402 - after the variable that silences its banner
from downloads import download, start_server  # noqa: E402

from aioguest.hosts import pygame as guest_host  # noqa: E402

FPS = 30


def now_ms() -> int:
    # Not pygame.time.get_ticks(): that counts from pygame.init(), and this
    # program initialises only the modules it uses (no audio).
    return int(time.monotonic() * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=8.0, help="MiB to download (default 8)")
    parser.add_argument("--port", type=int, help="download from this server, not our own")
    parser.add_argument("--cancel-after", type=float, metavar="S", help="press Cancel after S s")
    parser.add_argument("--close-after", type=float, metavar="S", help="close the window after S s")
    parser.add_argument("--screenshot", metavar="PATH", help="save the window at 50%% done")
    args = parser.parse_args()
    server = None
    if args.port is None:
        server, args.port = start_server()
    size = int(args.size * 1024 * 1024)

    pygame.display.init()
    pygame.font.init()
    screen = pygame.display.set_mode((400, 150))
    pygame.display.set_caption("aioguest: asyncio inside pygame")
    font = pygame.font.Font(None, 24)
    bar = pygame.Rect(20, 50, 360, 24)
    button = pygame.Rect(150, 105, 100, 30)
    got = 0

    def progress(n: int) -> None:
        nonlocal got
        if not got:
            print("receiving", flush=True)  # tests wait for this before Ctrl-C
        got = n  # guest code runs on this thread: plain variables will do

    guest = guest_host.start(download(args.port, size, progress))
    frames = 0
    status = "downloading"
    start = now_ms()
    next_frame = start
    shot_taken = False
    end_at: int | None = None  # when to leave the loop, once the guest is done

    while end_at is None or now_ms() < end_at:
        # Sleep until the next frame is due or an event comes: a guest
        # wake-up is handled at once, not at the next frame.
        timeout = max(next_frame - now_ms(), 1)  # wait(0) waits forever
        for event in [pygame.event.wait(timeout), *pygame.event.get()]:
            if guest_host.process(event):
                continue  # a guest turn ran
            if event.type == pygame.QUIT:
                # Keep looping until the guest's teardown is done.
                guest.cancel()
                end_at = now_ms() if guest.done() else end_at
            elif (event.type == pygame.MOUSEBUTTONDOWN and button.collidepoint(event.pos)) or (
                event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
            ):
                guest.cancel()
        elapsed = now_ms() - start
        if args.cancel_after is not None and elapsed >= args.cancel_after * 1000:
            args.cancel_after = None
            guest.cancel()
        if args.close_after is not None and elapsed >= args.close_after * 1000:
            args.close_after = None
            pygame.event.post(pygame.event.Event(pygame.QUIT))
        if guest.done() and status == "downloading":
            if guest.cancelled():
                status = "cancelled"
            elif isinstance(guest.exception(), KeyboardInterrupt):
                status = "interrupted"  # Ctrl-C cancelled the guest, as under asyncio.run
            elif guest.exception() is not None:
                status = f"failed: {guest.exception()!r}"
            else:
                status = f"downloaded {guest.result()} bytes"
            end_at = now_ms() + 300  # show the result for a moment
        if now_ms() >= next_frame:
            next_frame += 1000 // FPS
            if not guest.done():
                frames += 1
            screen.fill((240, 240, 240))
            label = f"Downloading {size / 2**20:g} MiB with asyncio streams"
            screen.blit(font.render(label, True, (0, 0, 0)), (20, 20))
            pygame.draw.rect(screen, (200, 200, 200), bar)
            pygame.draw.rect(screen, (40, 120, 220), (*bar.topleft, bar.width * got // size, 24))
            screen.blit(font.render(f"frames: {frames} - {status}", True, (0, 0, 0)), (20, 80))
            pygame.draw.rect(screen, (210, 210, 210), button)
            screen.blit(font.render("Cancel", True, (0, 0, 0)), button.move(22, 6))
            pygame.display.flip()
            if args.screenshot and not shot_taken and got * 2 >= size:
                shot_taken = True
                pygame.image.save(screen, args.screenshot)

    pygame.quit()
    if server is not None:
        server.shutdown()
    print(f"result: {status}; ticks {frames}")
    if status == "interrupted":
        return 130
    return 0 if status.startswith(("downloaded", "cancelled")) else 1


if __name__ == "__main__":
    sys.exit(main())
