"""The turn engine: the Driver on its own, and the host-watches-the-poller mode."""

from __future__ import annotations

import asyncio
import queue
import select
import socket
import threading
import time
import warnings
from typing import Any

import outcome
import pytest

import aioguest
from aioguest.turn import Driver
from conftest import QueueHost

# ---------------------------------------------------------------------------
# Driver on its own: a loop whose run_forever runs as a guest of a queue host


class GuestModeLoop(asyncio.SelectorEventLoop):
    """run_forever/run_until_complete run as guests of a trivial host loop."""

    def __init__(self) -> None:
        self.selector = aioguest.GoSelector()
        super().__init__(self.selector)
        self.turns = 0

    def run_forever(self) -> None:
        host = QueueHost()
        host.thread_id = threading.get_ident()
        stopped: list[BaseException | None] = []

        def counted_run_forever() -> None:
            self.turns += 1
            super(GuestModeLoop, self).run_forever()

        driver = Driver(
            self,
            self.selector,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            on_stop=stopped.append,
            run_forever=counted_run_forever,
        )
        driver.start()
        try:
            while not stopped:
                host.queue.get(timeout=10)()
        finally:
            driver.close()
        assert not host.violations, host.violations
        if stopped[0] is not None:
            raise stopped[0]


@pytest.fixture
def guest_loop():
    loop = GuestModeLoop()
    yield loop
    loop.close()


def test_driver_runs_run_until_complete_in_several_turns(guest_loop):
    async def main() -> int:
        for _ in range(3):
            await asyncio.sleep(0.005)
        return 42

    assert guest_loop.run_until_complete(main()) == 42
    # Each sleep ends a turn; the loop ran in more than one.
    assert guest_loop.turns >= 4
    # The driver is gone once run_forever returns: nothing of it is left on
    # the loop or the selector, and a second run_forever works.
    assert "stop" not in guest_loop.__dict__
    assert guest_loop.selector.guest_hook is None
    assert guest_loop.run_until_complete(main()) == 42


def test_driver_reports_a_stop_made_by_guest_code(guest_loop):
    guest_loop.call_later(0.01, guest_loop.stop)
    guest_loop.run_forever()
    assert not guest_loop.is_running()


def test_driver_passes_on_what_escapes_run_forever(guest_loop):
    def boom() -> None:
        raise KeyboardInterrupt

    guest_loop.call_later(0.01, boom)
    with pytest.raises(KeyboardInterrupt):
        guest_loop.run_forever()
    # And the loop is usable afterwards, as natively.
    assert guest_loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_driver_refuses_a_loop_that_already_runs_as_a_guest(guest_loop):
    kwargs: dict[str, Any] = dict(
        run_sync_soon_threadsafe=print, run_sync_soon_not_threadsafe=print, on_stop=print
    )
    first = Driver(guest_loop, guest_loop.selector, **kwargs)
    try:
        with pytest.raises(ValueError, match="already running as a guest"):
            Driver(guest_loop, guest_loop.selector, **kwargs)
    finally:
        first.close()


# ---------------------------------------------------------------------------
# The host watches the poller's fd


@pytest.fixture
def watch_host():
    h = QueueHost(watch=True)
    yield h
    h.close()


def test_watching_host_runs_io_and_cross_thread_wakeups_without_any_thread(watch_host, spawn):
    host = watch_host
    threads_during: list[set[str]] = []

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            threads_during.append({t.name for t in threading.enumerate()})
            spawn(b.send, b"ping", delay=0.02)
            data = await loop.sock_recv(a, 4)
            fut = loop.create_future()
            spawn(loop.call_soon_threadsafe, fut.set_result, b"!", delay=0.02)
            data += await asyncio.wait_for(fut, 5)
            await asyncio.sleep(0.01)
            return data

    assert host.run(main()) == outcome.Value(b"ping!")
    assert not any(name.startswith("aioguest") for name in threads_during[0])
    # Every wake-up came through the watched fd or the host's own timers.
    assert host.threadsafe_calls == 0
    assert host.poller_watcher is not None and host.poller_watcher.fired >= 2


def test_watch_is_dropped_while_a_nested_host_loop_runs_inside_a_turn(watch_host):
    """Guest code that spins the host loop (a modal dialog) while the guest
    has unread I/O: a level-triggered watch would fire on every nested
    iteration for nothing; the driver stops watching until the turn ends."""
    host = watch_host
    watcher = host.poller_watcher
    assert watcher is not None

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            recv = asyncio.ensure_future(loop.sock_recv(a, 1))
            await asyncio.sleep(0)  # the reader is registered now
            b.send(b"x")
            fired_before = watcher.fired
            for _ in range(50):
                host._pump_watching(0)  # the nested host loop, inside a turn
            nested_fires = watcher.fired - fired_before
            assert nested_fires <= 1, f"the watch fired {nested_fires} times in a nested loop"
            return await asyncio.wait_for(recv, 5)

    assert host.run(main()) == outcome.Value(b"x")


def test_fd_events_first_host_does_not_starve_queued_turns(watch_host):
    """Tk serves readable fds before idle callbacks.  With a guest that keeps
    an fd readable and is busy, a queued turn must still run."""
    host = watch_host
    watcher = host.poller_watcher
    assert watcher is not None

    def fd_first(wait: float) -> None:
        # One event per iteration, readable fds before queued callbacks.
        if watcher.fd is not None:
            p = select.poll()
            p.register(watcher.fd, select.POLLIN)
            if p.poll(0):
                watcher.fire()
                return
        watcher.run_due_timers()
        try:
            fn = host.queue.get(timeout=max(0.0, min(wait, 0.01)))
        except queue.Empty:
            return
        host._run_one(fn)

    host._pump_watching = fd_first  # type: ignore[method-assign]

    async def main() -> int:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            b.send(b"never read")
            seen = []
            loop.add_reader(a, seen.append, 1)  # a reader that never drains
            try:
                # Longer than a time slice: the run needs queued turns.
                end = loop.time() + 0.05
                while loop.time() < end:
                    await asyncio.sleep(0)
            finally:
                loop.remove_reader(a)
            return len(seen)

    result = host.run(main())
    assert result.unwrap() > 0


# ---------------------------------------------------------------------------
# A host that refuses a later turn on its own thread


class RefusingHost(QueueHost):
    def __init__(self, watch: bool, refuse_after: int) -> None:
        super().__init__(watch=watch)
        self.refuse_after = refuse_after

    def run_sync_soon_not_threadsafe(self, fn: Any) -> None:
        if self.not_threadsafe_calls >= self.refuse_after:
            raise RuntimeError("host is shutting down")
        super().run_sync_soon_not_threadsafe(fn)


@pytest.mark.parametrize("watch", [False, True], ids=["worker", "watch"])
def test_host_refusing_a_later_turn_ends_the_run_with_its_error_after_teardown(watch):
    host = RefusingHost(watch, refuse_after=3)
    cleaned_up = []

    async def main() -> None:
        try:
            while True:
                await asyncio.sleep(0)
        finally:
            cleaned_up.append(True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "abandoned" RuntimeWarning
            out = host.run(main())
    finally:
        host.close()
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, RuntimeError)
    assert str(out.error) == "host is shutting down"
    assert cleaned_up == [True]
    assert host.loop.is_closed()


# ---------------------------------------------------------------------------
# A busy guest and the host's timers


class PassHost:
    """A host whose loop works in passes, as Qt's GLib dispatcher does: each
    pass first sees which of its timers are due, then runs every callback
    that was queued before the pass began, then fires those timers.

    Its one "timer" is a flag guest code raises (so it always falls due in
    the middle of a guest turn, deterministically); for each firing the host
    records how many guest turns started after the flag went up.
    """

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.progress = 0  # guest iterations so far
        self.due_at_callback: int | None = None  # callback running at due time
        self.callbacks = 0
        self.turns_after_due: list[int] = []
        self._turn_starts: list[int] = []
        self.done: list[outcome.Outcome] = []

    def fall_due(self) -> None:
        if self.due_at_callback is None:
            self.due_at_callback = self.callbacks

    def pump(self, timeout: float) -> outcome.Outcome:
        while not self.done:
            due = self.due_at_callback
            pending = self.queue.qsize()
            if not pending:
                self.queue.get(timeout=timeout)()
                continue
            for _ in range(pending):
                fn = self.queue.get_nowait()
                self.callbacks += 1
                seq, before = self.callbacks, self.progress
                fn()
                if self.progress != before:
                    self._turn_starts.append(seq)
            if due is not None:
                self.turns_after_due.append(sum(1 for s in self._turn_starts if s > due))
                self.due_at_callback = None
                self._turn_starts.clear()
        return self.done[0]


def test_a_host_timer_due_during_a_busy_slice_fires_before_the_next_slice():
    """A turn that used up its slice hands over through one empty trip round
    the host's queue, so a host that runs queued callbacks before its due
    timers still fires a timer that fell due during the slice before the
    guest's next slice, not after it."""
    host = PassHost()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.3
        while loop.time() < end:
            host.progress += 1
            if host.progress % 100 == 50:
                host.fall_due()
            await asyncio.sleep(0)
        return host.progress

    aioguest.start_guest_run(
        main(),
        run_sync_soon_threadsafe=host.queue.put,
        run_sync_soon_not_threadsafe=host.queue.put,
        done_callback=host.done.append,
        time_slice=0.002,
    )
    assert host.pump(timeout=10).unwrap() > 0
    # Several slices' worth of firings, each of them ahead of the next turn.
    assert len(host.turns_after_due) >= 10
    assert host.turns_after_due == [0] * len(host.turns_after_due)


# ---------------------------------------------------------------------------
# The last stretch of a timed wait runs on the host thread


def test_timed_wait_ends_early_and_the_turn_waits_out_the_rest(host, monkeypatch):
    """The handed-off wait (worker or host timer) ends HOST_WAIT_LEAD before
    asyncio's timer is due, and the turn it starts blocks for the rest, so
    the timer runs when due rather than a thread switch or a host timer
    tick later.  A timer must still never run early."""
    from aioguest import turn

    lead = 0.05  # large, so a slow thread switch cannot hide the effect
    monkeypatch.setattr(turn, "HOST_WAIT_LEAD", lead)
    turn_starts: list[float] = []
    real_turn = turn.Driver._turn

    def recording_turn(self: Driver) -> None:
        turn_starts.append(time.monotonic())
        real_turn(self)

    monkeypatch.setattr(turn.Driver, "_turn", recording_turn)

    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        timers = []
        for _ in range(3):
            fired: asyncio.Future[float] = loop.create_future()
            when = loop.time() + 0.2
            loop.call_at(when, lambda f=fired: f.set_result(loop.time()))
            timers.append((when, await fired))
        return timers

    timers = host.run(main()).unwrap()
    for when, at in timers:
        assert at >= when, "a timer ran early"
        # The turn that ran it began before it was due.
        ran_in = max(t for t in turn_starts if t <= at)
        assert ran_in < when, (when, ran_in)
