"""The pygame host, headless (SDL_VIDEODRIVER=dummy).

pygame has no loop of its own, so every test pumps the way a pygame
program does: ``pygame.event.wait``/``get`` and ``host.process(event)``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .samples import ctrl_c_sample

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

pygame = pytest.importorskip(
    "pygame", reason="pygame is not installed (pip install -r requirements/hosts.txt)"
)

from aioguest.hosts import pygame as pg_host  # noqa: E402 - needs pygame

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SAMPLE = EXAMPLES / "pygame_app.py"


@pytest.fixture(scope="session")
def display() -> Iterator[Any]:
    """pygame's display, for the whole session (before any leak baseline)."""
    pygame.display.init()
    screen = pygame.display.set_mode((64, 64))
    pygame.event.get()
    yield screen
    pygame.display.quit()


@pytest.fixture
def host(display: Any) -> Iterator[pg_host.PygameHost]:
    pygame.event.get()  # nothing left over from an earlier test
    h = pg_host.PygameHost()
    yield h
    assert not h.guests, "a test left a guest running"


def pump(
    host: pg_host.PygameHost,
    until: Callable[[], bool],
    timeout: float = 10,
    *,
    fail: bool = True,
    others: list[Any] | None = None,
) -> None:
    """A pygame program's loop: sleep in wait(), hand every event to the host."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            if fail:
                pytest.fail(f"not done within {timeout} s")
            return
        for event in [pygame.event.wait(5), *pygame.event.get()]:
            if not host.process(event) and others is not None and event.type != pygame.NOEVENT:
                others.append(event)


def run_guest(host: pg_host.PygameHost, coro: Any, timeout: float = 10) -> Any:
    guest = host.start(coro)
    pump(host, guest.done, timeout)
    return guest


# ---------------------------------------------------------------------------
# Adapter


def test_result_on_the_host_thread(host):
    async def main():
        await asyncio.sleep(0.01)
        return threading.get_ident()

    assert run_guest(host, main()).result() == threading.get_ident()


def test_exception_reaches_the_guest(host):
    async def main():
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert isinstance(run_guest(host, main()).exception(), ValueError)


def test_cancel_from_host_code(host):
    async def main():
        await asyncio.Event().wait()

    guest = host.start(main())
    pump(host, lambda: False, 0.02, fail=False)
    guest.cancel()
    pump(host, guest.done)
    assert guest.cancelled()


def test_timers_do_not_fire_early(host):
    async def main():
        loop = asyncio.get_running_loop()
        short = []
        for delay in (0.001, 0.0105, 0.03):
            start = loop.time()
            await asyncio.sleep(delay)
            elapsed = loop.time() - start
            if elapsed < delay - loop._clock_resolution:
                short.append((delay, elapsed))
        return short

    assert run_guest(host, main()).result() == []


async def _round_trips(n: int) -> str:
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(n):
        msg = f"{i}\n".encode()
        writer.write(msg)
        assert await reader.readline() == msg
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return "ok"


def test_stream_round_trips_with_a_waiting_loop(host):
    assert run_guest(host, _round_trips(200)).result() == "ok"


def test_stream_round_trips_with_a_frame_paced_loop(host):
    """The classic loop shape: clock.tick() and get(); one step per frame."""
    guest = host.start(_round_trips(10))
    clock = pygame.time.Clock()
    deadline = time.monotonic() + 10
    while not guest.done() and time.monotonic() < deadline:
        for event in pygame.event.get():
            host.process(event)
        clock.tick(200)
    assert guest.result() == "ok"


def test_host_code_wakes_an_idle_guest(host):
    box: list[asyncio.Event] = []

    async def main():
        box.append(asyncio.Event())
        await box[0].wait()
        return "woken"

    guest = host.start(main())
    pump(host, lambda: bool(box))
    pump(host, lambda: False, 0.02, fail=False)
    box[0].set()  # host code, between turns
    pump(host, guest.done)
    assert guest.result() == "woken"


def test_busy_guest_does_not_starve_the_programs_events(host):
    tick = pygame.event.custom_type()
    spins = 0

    async def main():
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    others: list[Any] = []
    guest = host.start(main())
    pygame.time.set_timer(tick, 5)  # the program's own timer (an SDL thread posts it)
    try:
        pump(host, lambda: sum(e.type == tick for e in others) >= 20, others=others)
    finally:
        pygame.time.set_timer(tick, 0)
        guest.cancel()
    pump(host, guest.done)
    assert guest.cancelled()
    assert spins > 20


def test_queued_callbacks_share_one_wake_up_event(host):
    ran: list[int] = []
    for i in range(1000):
        host.run_sync_soon_threadsafe(lambda i=i: ran.append(i))
    ours = pygame.event.get(eventtype=host.event_type)
    assert len(ours) == 1
    assert host.process(ours[0]) is True
    assert ran == list(range(1000))


def test_callbacks_queued_by_a_batch_wait_for_the_next_event(host):
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        host.run_sync_soon_threadsafe(lambda: ran.append("requeued"))

    host.run_sync_soon_threadsafe(first)
    (wake,) = pygame.event.get(eventtype=host.event_type)
    host.process(wake)
    assert ran == ["first"]
    (wake,) = pygame.event.get(eventtype=host.event_type)
    host.process(wake)
    assert ran == ["first", "requeued"]


def test_callbacks_from_other_threads_run_in_order_on_the_host_thread(host):
    ran: list[tuple[int, int, int]] = []
    n_threads, per_thread = 4, 300

    def post(t: int) -> None:
        for i in range(per_thread):
            host.run_sync_soon_threadsafe(lambda i=i: ran.append((t, i, threading.get_ident())))

    threads = [threading.Thread(target=post, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    try:
        pump(host, lambda: len(ran) == n_threads * per_thread)
    finally:
        for t in threads:
            t.join(10)
    assert {ident for _, _, ident in ran} == {threading.get_ident()}
    for t in range(n_threads):
        assert [i for tt, i, _ in ran if tt == t] == list(range(per_thread))


def test_a_full_sdl_queue_delays_the_wake_up_but_loses_nothing(host):
    filler = pygame.event.custom_type()
    try:
        while pygame.event.post(pygame.event.Event(filler)):
            pass
        pytest.fail("post() of an allowed event returned False")
    except pygame.error as exc:
        assert "full" in str(exc)
    ran: list[str] = []
    errors: list[BaseException] = []

    def from_worker() -> None:
        try:
            host.run_sync_soon_threadsafe(lambda: ran.append("ran"))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=from_worker)
    t.start()
    t.join(10)
    assert errors == []
    # The program catches up with its queue; the host posts again.
    pump(host, lambda: ran == ["ran"])


def test_a_wake_up_the_program_drops_is_posted_again(host):
    ran: list[str] = []
    host.run_sync_soon_threadsafe(lambda: ran.append("ran"))
    pygame.event.clear()  # a scene change that flushes the queue, say
    assert not pygame.event.peek(host.event_type)
    # The next event the program passes on (here the NOEVENT of a timed
    # wait) tells the host its wake-up is gone.
    pump(host, lambda: ran == ["ran"])


def test_a_blocked_event_type_is_refused(host):
    blocked = pygame.event.custom_type()
    pygame.event.set_blocked(blocked)
    try:
        with pytest.raises(ValueError, match="blocked"):
            pg_host.PygameHost(event_type=blocked)
    finally:
        pygame.event.set_allowed(blocked)
    pygame.event.set_blocked(host.event_type)
    try:
        with pytest.raises(RuntimeError, match="blocked"):
            host.run_sync_soon_threadsafe(lambda: None)
    finally:
        pygame.event.set_allowed(host.event_type)
    assert not host._callbacks  # taken back: nobody would run it


def test_shutdown_runs_the_teardown_and_leaves_other_events_queued(host):
    teardown: list[str] = []
    app_event = pygame.event.custom_type()

    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)  # teardown that needs more turns
            teardown.append("done")

    guest = host.start(main())
    pump(host, lambda: False, 0.02, fail=False)
    pygame.event.post(pygame.event.Event(app_event))
    assert host.shutdown() is True
    assert teardown == ["done"]
    assert guest.cancelled()
    assert len(pygame.event.get(eventtype=app_event)) == 1


def test_shutdown_gives_up_after_its_timeout(host):
    async def main():
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.5)

    guest = host.start(main())
    pump(host, lambda: False, 0.02, fail=False)
    assert host.shutdown(timeout=0.05) is False
    assert not guest.done()
    pump(host, guest.done)
    assert guest.cancelled()


def test_shutdown_from_guest_code_is_an_error(host):
    async def main():
        host.shutdown()

    guest = run_guest(host, main())
    assert isinstance(guest.exception(), RuntimeError)
    assert "from guest code" in str(guest.exception())


def test_module_functions_use_the_default_host(display):
    async def main():
        await asyncio.sleep(0.01)
        return 3

    guest = pg_host.start(main())
    host = pg_host.default_host()
    deadline = time.monotonic() + 10
    while not guest.done() and time.monotonic() < deadline:
        for event in [pygame.event.wait(5), *pygame.event.get()]:
            pg_host.process(event)
    assert guest.result() == 3
    assert pg_host.default_host() is host
    assert pg_host.shutdown() is True


# ---------------------------------------------------------------------------
# In a child process: pygame's display not (or no longer) there


def _child_env() -> dict[str, str]:
    import aioguest

    env = dict(os.environ)
    package_root = str(Path(aioguest.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["SDL_VIDEODRIVER"] = "dummy"
    env["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    return env


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
    )


def test_a_host_needs_the_display():
    done = _python("from aioguest.hosts import pygame as h\nh.PygameHost()")
    assert done.returncode != 0
    assert "RuntimeError: initialise pygame.display" in done.stderr


def test_quitting_the_display_under_a_running_guest_is_reported():
    done = _python(
        "import asyncio, time, pygame\n"
        "from aioguest.hosts import pygame as h\n"
        "pygame.display.init(); pygame.display.set_mode((8, 8))\n"
        "g = h.start(asyncio.sleep(0.05))\n"
        "for e in [pygame.event.wait(5), *pygame.event.get()]: h.process(e)\n"
        "pygame.display.quit()\n"
        "time.sleep(0.3)\n"
        "print('done:', g.done())\n"
    )
    assert done.returncode == 0, done.stderr
    assert "done: False" in done.stdout
    assert "pygame.display was shut down while a guest runs" in done.stderr


# ---------------------------------------------------------------------------
# The sample app


@pytest.fixture(scope="session")
def download_server() -> Iterator[int]:
    """The sample's server, run here so that what it prints about the
    connections the sample drops (cancel) lands in our log, not the app's."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import downloads
    finally:
        sys.path.remove(str(EXAMPLES))
    server, port = downloads.start_server()
    yield port
    server.shutdown()
    server.server_close()


def run_sample(port: int, *args: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, str(SAMPLE), "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
        cwd=EXAMPLES,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    assert "Traceback" not in done.stderr, done.stderr
    assert "abandoned" not in done.stderr, done.stderr
    match = re.fullmatch(r"result: (.*); ticks (\d+)", last)
    assert match, (last, done.stderr)
    assert done.returncode == 0, done.stderr
    return match.group(1), int(match.group(2)), done.stderr


def test_sample_downloads_while_frames_keep_coming(download_server, tmp_path):
    shot = tmp_path / "pygame_app.png"
    result, ticks, log = run_sample(download_server, "--size", "1", "--screenshot", str(shot))
    assert result == f"downloaded {2**20} bytes", log
    assert ticks >= 2, "no frames were drawn while the guest downloaded"
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("how", ["--cancel-after", "--close-after"])
def test_sample_cancel_and_close(download_server, how):
    result, ticks, log = run_sample(download_server, "--size", "16", how, "0.4")
    assert result == "cancelled", log
    assert ticks >= 2


def test_sample_ctrl_c_cancels_the_guest(download_server):
    ctrl_c_sample(SAMPLE, download_server, _child_env())
