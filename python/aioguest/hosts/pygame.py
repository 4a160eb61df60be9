"""Run an asyncio guest inside a pygame program's own event loop.

pygame has no event loop to hand callbacks to: the program runs its own
``while`` loop around ``pygame.event.get()``.  So the host is that loop, and
the program passes each event to :meth:`PygameHost.process` (or the
module's :func:`process`), which runs the guest's turns when the event is
the host's wake-up event::

    pygame.init()
    screen = pygame.display.set_mode((640, 480))
    guest = aioguest.hosts.pygame.start(main())
    while not guest.done():
        for event in pygame.event.get():
            if aioguest.hosts.pygame.process(event):
                continue                # a guest turn ran
            if event.type == pygame.QUIT:
                guest.cancel()          # the loop ends once teardown is done
        ...                             # draw
        clock.tick(60)

* Callbacks go into a deque; one custom event (``pygame.event.custom_type()``)
  wakes the loop.  At most one is in SDL's queue at a time, however many
  callbacks are queued, so a busy guest cannot fill SDL's queue (65535
  events, after which ``pygame.event.post`` raises ``pygame.error: Event
  queue is full``).  One wake-up runs only the callbacks queued when it
  arrived: the turns a busy guest queues meanwhile go behind the input
  events SDL has pending.
* ``pygame.event.post`` is safe from any thread (SDL's queue has its own
  lock; pygame 2.2 deprecated ``pygame.fastevent``, which existed for that),
  so the Go worker posts the wake-up itself.  pygame cannot watch a file
  descriptor, so the worker thread always does the waiting.
* If SDL's queue is full when a wake-up is posted, the host keeps the
  callbacks and posts again from :meth:`PygameHost.process` once the
  program drains the queue; nothing is lost and the guest waits meanwhile.
  The same happens if the program drops the wake-up
  (``pygame.event.clear()``): the next event it passes to ``process()``
  (``NOEVENT`` from ``pygame.event.wait(timeout)`` will do) posts it again.

The latency of a guest's wake-up is the time the program's loop takes to
look at its queue again.  With ``clock.tick(60)`` and ``pygame.event.get()``
that is up to a frame (16.7 ms) per wake-up, so a guest doing I/O advances
one step per frame.  A loop that sleeps in ``pygame.event.wait(ms)`` until
its next frame is due serves it within about a millisecond (pygame's
``wait`` polls SDL's queue every millisecond, whatever the video driver)::

    next_frame = pygame.time.get_ticks()   # needs pygame.init()
    while running:
        # wait(0) would wait forever: at least 1 ms.
        timeout = max(next_frame - pygame.time.get_ticks(), 1)
        for event in [pygame.event.wait(timeout), *pygame.event.get()]:
            ...                         # process(event) first, as above
        if pygame.time.get_ticks() >= next_frame:
            ...                         # draw, flip
            next_frame += 1000 // 60

(``examples/pygame_app.py`` is a complete program of that shape.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pygame  # type: ignore[import-not-found, unused-ignore]

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE, PollerWatcher

__all__ = ["PygameHost", "default_host", "process", "shutdown", "start"]

T = TypeVar("T")

logger = logging.getLogger("aioguest")


class PygameHost:
    """A :class:`aioguest.Host` on a pygame program's event loop.

    Create it on the thread that initialised ``pygame.display`` (the only
    thread that may read pygame's events), after ``pygame.display.init()``.
    The program must pass every event it reads to :meth:`process`.
    """

    def __init__(self, event_type: int | None = None) -> None:
        if not pygame.display.get_init():
            raise RuntimeError("initialise pygame.display before the guest's host")
        #: The event type of the host's wake-up events.
        self.event_type: int = event_type if event_type is not None else pygame.event.custom_type()
        if pygame.event.get_blocked(self.event_type):
            raise ValueError(
                f"event type {self.event_type} is blocked "
                "(pygame.event.set_blocked or set_allowed): the host's wake-ups could not "
                "be posted"
            )
        self.thread_id = threading.get_ident()
        self._callbacks: collections.deque[Callable[[], object]] = collections.deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._posted = False
        self._stalled = False
        self._guests: set[Guest[Any]] = set()
        self._running_batch = False

    # -- Host ---------------------------------------------------------------

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        # Append before looking at _posted: process() clears _posted before
        # it counts the deque, so either it sees fn, or we post again.
        self._callbacks.append(fn)
        with self._lock:
            self._cond.notify_all()
            if self._posted:
                return
            self._posted = True
        try:
            self._post()
        except BaseException:
            # Nobody will run fn: take it back, so that whoever scheduled it
            # learns that from the exception alone.
            try:
                self._callbacks.remove(fn)
            except ValueError:
                pass
            with self._lock:
                self._posted = False
            raise

    run_sync_soon_not_threadsafe = run_sync_soon_threadsafe

    @property
    def poller_watcher(self) -> PollerWatcher | None:
        # pygame cannot watch a descriptor: the Go worker waits.
        return None

    def _post(self) -> None:
        try:
            posted = pygame.event.post(pygame.event.Event(self.event_type))
        except pygame.error:
            if not pygame.display.get_init():
                raise RuntimeError(
                    "pygame.display was shut down while a guest runs: its loop can no longer "
                    "be woken (cancel the guests and let them finish first: see shutdown())"
                ) from None
            # SDL's queue is full.  The program is behind on its events; it
            # will call process() for them, and the first call posts again.
            self._stalled = True
            return
        if not posted:
            raise RuntimeError(
                f"the host's event type {self.event_type} was blocked "
                "(pygame.event.set_blocked or set_allowed): the guest cannot be woken"
            )

    # -- the program's side -----------------------------------------------------

    def process(self, event: Any) -> bool:
        """Pass every event the program reads here; True if it was the
        host's (then the program should ignore it), False otherwise."""
        if event.type == self.event_type:
            self._run_batch()
            return True
        if self._callbacks and (
            self._stalled or not pygame.event.peek(self.event_type, pump=False)
        ):
            # Callbacks wait but no wake-up of ours is in SDL's queue: the
            # post failed (the queue was full), or the program dropped it
            # (pygame.event.clear(), or events it read and did not pass on).
            # At worst this duplicates a wake-up that is in the program's
            # hands right now, which costs one empty batch.
            self._stalled = False
            with self._lock:
                self._posted = True
            self._post()
        return False

    def _run_batch(self) -> None:
        with self._lock:
            self._posted = False
        callbacks = self._callbacks
        self._running_batch = True
        try:
            # Only what was queued before this wake-up: what these callbacks
            # queue goes behind the events SDL has pending.
            for _ in range(len(callbacks)):
                fn = callbacks.popleft()
                try:
                    fn()
                except Exception:
                    logger.exception("exception in a callback run by the pygame host: %r", fn)
        finally:
            self._running_batch = False
            if callbacks:
                with self._lock:
                    post = not self._posted
                    self._posted = True
                if post:
                    self._post()

    # -- guests -------------------------------------------------------------

    def start(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        debug: bool | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        time_slice: float = DEFAULT_TIME_SLICE,
    ) -> Guest[T]:
        """Start *coro* as a guest of this host; see :func:`start`."""
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("start the guest in the thread that created its PygameHost")
        guest = start_guest(
            coro, self, debug=debug, loop_factory=loop_factory, time_slice=time_slice
        )
        self._guests.add(guest)
        guest.add_done_callback(self._guests.discard)
        return guest

    @property
    def guests(self) -> list[Guest[Any]]:
        """The guests started with :meth:`start` that have not finished."""
        return list(self._guests)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Cancel every guest started here and run their teardown now.

        For the program's ``pygame.QUIT`` handler, before it leaves its loop
        and calls ``pygame.quit()``: blocks until the guests are done
        (True), or *timeout* seconds passed (False).  The guests' callbacks
        run here directly; pygame's events are pumped but left in the queue.
        """
        if self._running_batch:
            raise RuntimeError(
                "shutdown() was called from guest code or a guest callback: the guests "
                "cannot finish while it waits for them (cancel them instead)"
            )
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("call shutdown() in the thread that created the PygameHost")
        for guest in list(self._guests):
            guest.cancel()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._guests:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with self._lock:
                if not self._callbacks:
                    # Wake at least every 50 ms to pump SDL, so the window
                    # system does not take the program for hung.
                    self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
            if pygame.display.get_init():
                pygame.event.pump()
            self._run_batch()
        return True


_default: PygameHost | None = None


def default_host() -> PygameHost:
    """The host :func:`start`, :func:`process` and :func:`shutdown` use
    (created on first use, on the calling thread)."""
    global _default
    if _default is None or not pygame.display.get_init():
        _default = PygameHost()
    return _default


def start(
    coro: Coroutine[Any, Any, T],
    *,
    host: PygameHost | None = None,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the pygame program's loop.

    Call it after ``pygame.display.init()``, on that thread.  The program's
    loop must pass every event to :func:`process` (or ``host.process``).
    """
    if host is None:
        host = default_host()
    return host.start(coro, debug=debug, loop_factory=loop_factory, time_slice=time_slice)


def process(event: Any) -> bool:
    """:meth:`PygameHost.process` of the default host: True if *event* was
    the host's wake-up (the program should skip it)."""
    host = _default
    return host.process(event) if host is not None else False


def shutdown(timeout: float | None = 5.0) -> bool:
    """:meth:`PygameHost.shutdown` of the default host."""
    host = _default
    return host.shutdown(timeout) if host is not None else True
