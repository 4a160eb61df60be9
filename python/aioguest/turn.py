"""Turns: driving an unmodified asyncio loop in short slices of a host's thread.

A :class:`Driver` owns the mechanics that :func:`aioguest.start_guest_run`
builds its ``asyncio.run`` lifecycle on, and that anything else that wants
"this loop's ``run_forever``, but as a guest" can use directly (the
conformance runner does, to run CPython's own asyncio tests in guest mode).

* A *turn* is one call of ``loop.run_forever()`` on the host thread, made
  from a callback the host runs.  While it lasts the loop is the running
  loop; between turns it is not, so host code keeps seeing its own world.
* The loop's selector is a :class:`~aioguest.selector.GoSelector` whose
  guest hook is :meth:`Driver._select`.  When asyncio asks it to wait and
  nothing is ready, the hook calls ``loop.stop()`` instead of blocking, so
  the turn ends after this iteration; asyncio computed the timeout itself.
* The wait then happens in one of two places:

  - on the Go worker thread (the default): the host gets the next turn
    through ``run_sync_soon_threadsafe`` when the wait is over;
  - in the host's own loop, when the host can watch a file descriptor (a
    :class:`PollerWatcher`): it watches the poller's descriptor, which polls
    readable when the guest has I/O, and runs a timer for the timeout.  No
    thread is involved, so a wake-up costs what it costs natively.

* A turn that keeps finding work ends when its time slice is used up, and
  the next one is queued behind whatever the host has pending, including
  the timers that fell due during the slice (see ``_schedule_turn``).
* Host code that schedules guest work while the guest is idle goes through
  the loop's ``call_soon`` or ``call_at``; while (and only while) the guest
  is idle the driver shadows those two on the loop instance to end the wait.
* Whoever else stops the loop (guest code, ``run_until_complete``'s done
  callback, the owner of the driver) gets ``on_stop``: the driver then
  stays idle until :meth:`Driver.resume`.  ``loop.stop`` is shadowed on the
  instance for the driver's life, because the driver's own stop and anyone
  else's set the same flag inside the loop, and a stop made in the very
  iteration in which the driver decided to wait must not be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
import weakref
from asyncio import events
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .selector import GoSelector

__all__ = ["DEFAULT_TIME_SLICE", "HOST_WAIT_LEAD", "Driver", "PollerWatcher"]

logger = logging.getLogger("aioguest")

#: How long one turn may keep running ready callbacks before it yields the
#: host thread back to the host (seconds).
DEFAULT_TIME_SLICE = 0.005

# The last stretch of a wait for a timer is waited on the host thread.
# Whoever ends a handed-off wait adds its own lateness before the next turn
# runs: the worker must wake and then wake the host (two thread switches
# where asyncio.run has one), a host timer fires on its own millisecond
# tick.  So a handed-off wait ends this much early, and the turn it starts
# blocks for the rest in the kernel, with a nanosecond timeout, as
# asyncio.run would have blocked all along: asyncio's timer then fires
# when it is due.  The host is held at most this long per wait, a small
# fraction of a time slice.
HOST_WAIT_LEAD = 0.0003

_Ready = list[tuple[Any, int]]
_HostCallback = Callable[[Callable[[], None]], object]

# ``_suspend`` when the turn is not ending by the driver's hand.
_RUNNING = object()

# Drivers with a wait in flight on the worker thread.  During such a wait
# nothing else need hold the driver (the host holds no callback of ours,
# the user may hold nothing at all), so this set keeps it alive; the worker
# itself holds only a weak reference, or a host that drops its queue would
# leave a cycle the running worker keeps reachable forever, and abandonment
# would go unseen.
_waiting: set[Driver] = set()


def _forget_waits_after_fork() -> None:
    # The child has neither the parent's host loop nor its worker threads.
    _waiting.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_waits_after_fork)


class PollerWatcher(Protocol):
    """What a host offers when its own loop can watch a file descriptor.

    All three are called on the host thread only, and the callbacks must
    run there too.
    """

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """From now on call ``callback()`` whenever *fd* polls readable.

        Level-triggered: again on every host loop iteration while it stays
        readable.  Spurious calls are harmless.  Replaces an earlier watch.
        """

    def unwatch(self) -> None:
        """Stop watching (no-op when not watching)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` once, no earlier than *delay* seconds from
        now; return a function that cancels it (no-op once it ran)."""


class _Resume:
    """The callback a driver hands its host: runs one turn, exactly once.

    It doubles as the abandonment detector: a host that drops a pending
    guest callback without running it (it stopped its loop, say) has
    abandoned the run, and the only trace of that is this object being
    destroyed while still armed.
    """

    __slots__ = ("__weakref__", "_driver", "_hops")

    def __init__(self, driver: Driver, hops: int = 0) -> None:
        self._driver: Driver | None = driver
        # Trips through the host's queue still to make before the turn.
        self._hops = hops

    def __call__(self) -> None:
        if self._hops:
            driver = self._driver
            if driver is None:
                return
            self._hops -= 1
            # Still armed: the host now holds us again, and dropping us
            # from its queue is abandonment as before.
            driver._hop(self)
            return
        driver = self.disarm()
        if driver is not None:
            driver._turn()

    def disarm(self) -> Driver | None:
        driver, self._driver = self._driver, None
        return driver

    def __del__(self) -> None:
        driver = self.disarm()
        if driver is not None:
            driver._abandoned("its host dropped a pending guest callback without running it")


class _Watched:
    """What a driver hands a PollerWatcher: the fd callback or the timer.

    Like :class:`_Resume`, the host's reference is the one that matters:
    while the guest waits in the host's loop, nothing but these objects
    keeps the run alive, so a host that drops them while they are armed
    (its loop was destroyed) has abandoned the run.  The driver disarms
    them before it unwatches or cancels, and a timer disarms as it fires.
    """

    __slots__ = ("_driver", "_once")

    def __init__(self, driver: Driver, once: bool) -> None:
        self._driver: Driver | None = driver
        self._once = once

    def __call__(self) -> None:
        driver = self._driver
        if driver is None:
            return
        if self._once:
            self._driver = None
            driver._on_timer()
        else:
            driver._on_readable()

    def disarm(self) -> None:
        self._driver = None

    def __del__(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver._abandoned("its host dropped the guest's file-descriptor watch or timer")


class Driver:
    """Runs *loop* as a guest of a host, one turn at a time.

    ``on_stop(exc)`` is called on the host thread when a turn ends because
    something other than the driver stopped the loop (``exc`` is None), or
    because ``run_forever`` or the wait raised (``exc``, as if it escaped
    ``run_forever``).  The driver is then idle until :meth:`resume`.
    ``on_abandon(reason)`` is called if the host drops a pending callback,
    or its ``run_sync_soon_threadsafe`` raises on the worker thread.
    ``on_host_error(exc)`` is called, on the host thread and with the driver
    already closed, if ``run_sync_soon_not_threadsafe`` raises there (the
    exception propagates to the host instead when it is None).
    ``run_forever`` replaces ``loop.run_forever`` as what a turn calls (a
    loop subclass whose own ``run_forever`` drives turns passes its base
    class's).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        selector: GoSelector,
        *,
        run_sync_soon_threadsafe: _HostCallback,
        run_sync_soon_not_threadsafe: _HostCallback,
        on_stop: Callable[[BaseException | None], object],
        on_abandon: Callable[[str], object] | None = None,
        on_host_error: Callable[[BaseException], object] | None = None,
        time_slice: float = DEFAULT_TIME_SLICE,
        watcher: PollerWatcher | None = None,
        run_forever: Callable[[], None] | None = None,
    ) -> None:
        if selector.guest_hook is not None:
            raise ValueError("this event loop is already running as a guest")
        self._loop = loop
        self._selector = selector
        self._run_sync_soon_threadsafe = run_sync_soon_threadsafe
        self._run_sync_soon_not_threadsafe = run_sync_soon_not_threadsafe
        self._on_stop = on_stop
        self._on_abandon = on_abandon
        self._on_host_error = on_host_error
        self._time_slice = time_slice
        self._watcher = watcher
        self._run_forever = run_forever if run_forever is not None else loop.run_forever

        self._closed = False
        self._running = False
        # Per turn: why the turn is ending (_RUNNING, or the wait timeout
        # asyncio asked for: None = no limit, 0 = run again at once).
        self._suspend: object = _RUNNING
        self._stopped_by_other = False
        self._turn_deadline = 0.0
        # Events the worker collected, for the first select() of a turn.
        self._pending: _Ready | None = None
        # The _Resume the host holds, if any (weakly: the host's reference
        # is the one whose loss means abandonment).
        self._scheduled: weakref.ref[_Resume] | None = None
        # Idle bookkeeping: see _suspend_for and _poke.
        self._in_wait = False
        self._rerun = False
        self._idle_deadline = math.inf
        self._hooked = False
        self._call_soon = loop.call_soon
        self._call_at = loop.call_at
        self._loop_stop = loop.stop
        self._idle_call_soon_bound = self._idle_call_soon
        self._idle_call_at_bound = self._idle_call_at
        # Watching the poller's fd (watcher mode).
        self._watching = False
        self._watch_callback: _Watched | None = None
        self._timer_callback: _Watched | None = None
        self._cancel_timer: Callable[[], None] | None = None
        self._poller_fd = selector.fileno() if watcher is not None else -1

        self._handoff = selector.open_handoff() if watcher is None else None
        selector.guest_hook = self._select
        loop.__dict__["stop"] = self._other_stop

    # -- owner's side ---------------------------------------------------

    def start(self) -> None:
        """Hand the host the first turn.  The host's error, if it refuses,
        propagates and the driver is closed."""
        try:
            self._schedule_turn()
        except BaseException:
            self.close()
            raise
        if self._handoff is not None:
            self._handoff.start(_worker_notify(weakref.ref(self)))

    def resume(self) -> None:
        """After ``on_stop``: hand the host the next turn."""
        if not self._closed:
            self._reschedule()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_turn(self) -> bool:
        """True while a turn is running on the host thread."""
        return self._running

    def close(self) -> None:
        """Stop driving: no more turns, the worker or the watch is let go.

        The loop and the selector stay open (closing them is the owner's
        business).  Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._in_wait = False
        _waiting.discard(self)
        self._unhook()
        self._loop.__dict__.pop("stop", None)
        resume = self._scheduled() if self._scheduled is not None else None
        if resume is not None:
            resume.disarm()
        self._scheduled = None
        if self._selector.guest_hook == self._select:
            self._selector.guest_hook = None
        self._stop_timer()
        self._unwatch()
        if self._handoff is not None:
            # Drop it too: it holds the stopped worker's Thread object, and
            # a driver may outlive its close for a while (a traceback of an
            # exception that escaped a turn holds the driver's frames).
            self._handoff = None
            self._selector.close_handoff()

    # -- turns ----------------------------------------------------------

    def _turn(self) -> None:
        if self._closed:
            return
        if self._running:
            # A nested host loop (a modal dialog opened by guest code)
            # handed us a turn while ours is still on the stack; asyncio's
            # loop is not reentrant, so run it once this one unwinds.
            self._rerun = True
            return
        if self._in_wait:
            self._in_wait = False
            if self._handoff is not None:
                sel = self._selector
                try:
                    n, view = self._handoff.collect()
                except Exception as exc:
                    # The kernel wait itself failed: like an exception out
                    # of select() under asyncio.run.
                    self._on_stop(exc)
                    return
                self._pending = sel.decode(n, view) if n else None
            else:
                self._stop_timer()
        self._unhook()
        self._suspend = _RUNNING
        self._stopped_by_other = False
        self._rerun = False
        self._turn_deadline = time.perf_counter() + self._time_slice
        sniffio_local = _sniffio_thread_local()
        if sniffio_local is not None:
            # Libraries that ask sniffio which async library runs them
            # must hear "asyncio" inside the guest, even when the host is
            # Trio (which set this thread-local for its own callbacks).
            prev_library, sniffio_local.name = sniffio_local.name, "asyncio"
        # A host that is itself an asyncio loop has it set as the running
        # loop while it runs our callback; run_forever refuses to start
        # under another running loop, and host code must find its own
        # loop again afterwards.
        host_loop = events._get_running_loop()
        if host_loop is not None:
            events._set_running_loop(None)
        error: BaseException | None = None
        self._running = True
        try:
            self._run_forever()
        except BaseException as exc:
            # What escapes run_forever (KeyboardInterrupt or SystemExit from
            # a callback, or a broken loop) escapes run_until_complete too.
            error = exc
        finally:
            self._running = False
            if host_loop is not None:
                events._set_running_loop(host_loop)
            if sniffio_local is not None:
                sniffio_local.name = prev_library
        self._pending = None
        if self.closed:  # the owner may have closed us during the turn
            return
        if error is not None or self._stopped_by_other or self._suspend is _RUNNING:
            self._unhook()
            try:
                self._on_stop(error)
            finally:
                error = None  # no frame <-> traceback cycle
        elif self._rerun:
            self._reschedule()
        elif self._suspend == 0:
            self._reschedule(hops=1)
        else:
            timeout = self._suspend
            assert timeout is None or isinstance(timeout, (int, float))
            self._wait(timeout)

    def _reschedule(self, hops: int = 0) -> None:
        try:
            self._schedule_turn(hops)
        except BaseException as exc:
            self._host_refused(exc)

    def _hop(self, resume: _Resume) -> None:
        try:
            self._run_sync_soon_not_threadsafe(resume)
        except BaseException as exc:
            self._host_refused(exc)

    def _host_refused(self, exc: BaseException) -> None:
        # The host refused a callback, a watch or a timer on its own thread
        # (its loop is shutting down, say).  No turn will come from it
        # again; the owner decides what that means (GuestRun finishes the
        # run on the spot, so the failure becomes the run's outcome).
        on_host_error = self._on_host_error
        try:
            self.close()
        except BaseException:
            pass  # unwatch may fail the same way; the watch is gone anyway
        if on_host_error is None:
            raise exc
        on_host_error(exc)

    def _schedule_turn(self, hops: int = 0) -> None:
        # A turn that used up its slice is handed over through one extra
        # empty trip round the host's queue (hops=1).  Many hosts run, per
        # pass of their loop, every callback queued before the pass began
        # and only then their due timers: Qt's GLib dispatcher sends posted
        # events ahead of timers, a Trio batch may run our entry-queue job
        # before the timer task woken with it.  Queued straight back, a
        # busy guest's next slice would run ahead of a timer that fell due
        # during this one, and the timer would wait two slices; after the
        # empty trip it waits at most the rest of this one.  The trip costs
        # one host callback per slice.
        #
        # The watch is for waits only: while a turn is queued, a readable
        # poller (a busy guest's I/O) would fire on every host iteration and
        # either run turns ahead of the host's own fairness (how it queues
        # our callback behind its timers and redraws) or spin for nothing.
        self._unwatch()
        resume = _Resume(self, hops)
        self._scheduled = weakref.ref(resume)
        self._run_sync_soon_not_threadsafe(resume)

    def _wait(self, timeout: float | None) -> None:
        self._in_wait = True
        if timeout is not None:
            timeout = max(timeout - HOST_WAIT_LEAD, 0.0)
        if self._handoff is not None:
            _waiting.add(self)
            try:
                self._handoff.request(timeout, self._selector.capacity)
            except Exception as exc:
                self._in_wait = False
                _waiting.discard(self)
                self._unhook()
                self._on_stop(exc)
        else:
            assert self._watcher is not None
            try:
                if not self._watching:
                    self._watch()
                if timeout is not None:
                    self._timer_callback = _Watched(self, once=True)
                    self._cancel_timer = self._watcher.call_later(timeout, self._timer_callback)
            except BaseException as exc:
                # The host refused to watch or to time us, on its own
                # thread: the same situation as a refused turn.
                self._in_wait = False
                self._host_refused(exc)

    # -- watcher mode -----------------------------------------------------

    def _watch(self) -> None:
        assert self._watcher is not None
        self._watching = True
        self._watch_callback = _Watched(self, once=False)
        self._watcher.watch(self._poller_fd, self._watch_callback)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            callback, self._watch_callback = self._watch_callback, None
            if callback is not None:
                callback.disarm()
            assert self._watcher is not None
            self._watcher.unwatch()

    def _stop_timer(self) -> None:
        callback, self._timer_callback = self._timer_callback, None
        if callback is not None:
            callback.disarm()
        cancel, self._cancel_timer = self._cancel_timer, None
        if cancel is not None:
            cancel()

    def _on_readable(self) -> None:
        if self._closed:
            return
        if self._in_wait:
            self._turn()
            return
        # Not waiting: a turn is on the stack and guest code spun a nested
        # host loop (a modal dialog), or the host delivered a stale event.
        # Until the next wait there is nothing to watch for, and a level-
        # triggered watch would fire on every host iteration meanwhile.
        self._unwatch()

    def _on_timer(self) -> None:
        self._cancel_timer = None
        self._timer_callback = None
        if self._in_wait and not self._closed:
            self._turn()

    # -- the selector's guest hook ------------------------------------------

    def _select(self, timeout: float | None) -> _Ready:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if pending:
                return pending
        ready = self._selector.poll()
        if not ready and (timeout is None or timeout > 0):
            if (
                timeout is not None
                and timeout <= HOST_WAIT_LEAD
                and time.perf_counter() < self._turn_deadline
            ):
                # The stretch HOST_WAIT_LEAD leaves to the turn.  Nothing
                # else waits on the poller now: the worker, if any, is
                # between requests while a turn runs.
                return self._selector.wait(timeout)
            self._suspend_for(timeout)
        elif time.perf_counter() >= self._turn_deadline:
            self._suspend_for(0)
        return ready

    def _suspend_for(self, timeout: float | None) -> None:
        """End this turn after the current iteration; then wait *timeout*."""
        self._suspend = timeout
        if timeout != 0:
            # From here until the next turn the guest is idle as far as
            # asyncio knows: anything scheduled now must wake it.  That
            # includes the rest of this very iteration (a timer due within
            # the clock resolution may schedule more work after select).
            self._idle_deadline = math.inf if timeout is None else self._loop.time() + timeout
            self._hook()
        self._loop_stop()

    def _other_stop(self) -> None:
        self._stopped_by_other = True
        self._loop_stop()

    # -- waking an idle guest -----------------------------------------------

    def _hook(self) -> None:
        if not self._hooked:
            attrs = self._loop.__dict__
            attrs["call_soon"] = self._idle_call_soon_bound
            attrs["call_at"] = self._idle_call_at_bound
            self._hooked = True

    def _unhook(self) -> None:
        if self._hooked:
            attrs = self._loop.__dict__
            attrs.pop("call_soon", None)
            attrs.pop("call_at", None)
            self._hooked = False

    def _idle_call_soon(self, callback: Callable[..., object], *args: Any, **kw: Any) -> Any:
        handle = self._call_soon(callback, *args, **kw)
        self._poke()
        return handle

    def _idle_call_at(
        self, when: float, callback: Callable[..., object], *args: Any, **kw: Any
    ) -> Any:
        handle = self._call_at(when, callback, *args, **kw)
        # A timer later than the wait's end changes nothing: the wait ends
        # first and asyncio computes the next timeout with it included.
        if when < self._idle_deadline:
            self._poke()
        return handle

    def _poke(self) -> None:
        # One wake-up per idle period is enough: the next turn recomputes
        # everything, so the wrappers go away until the guest idles again.
        self._unhook()
        if not self._in_wait:
            # Still inside the turn that decided to idle (or between its
            # end and the wait): skip the wait altogether.
            self._rerun = True
        elif self._handoff is not None:
            self._handoff.wake()
        else:
            # We are on the host thread (call_soon is not thread-safe), so
            # the cheapest wake-up is simply queueing the turn.
            self._in_wait = False
            self._stop_timer()
            self._reschedule()

    # -- failures -----------------------------------------------------------

    def _abandoned(self, reason: str) -> None:
        if self._closed:
            return
        on_abandon = self._on_abandon
        self.close()
        if on_abandon is not None:
            on_abandon(reason)


@contextlib.contextmanager
def running_loop_set_aside() -> Iterator[asyncio.AbstractEventLoop | None]:
    """Unset the thread's running loop for the block, restore it after.

    For code that must start or run a loop on a thread whose own asyncio
    loop (a host that is itself asyncio) is running and calling us:
    ``run_forever`` refuses to start under another running loop.  (A turn
    does the same inline: it is the hot path.)
    """
    host_loop = events._get_running_loop()
    if host_loop is not None:
        events._set_running_loop(None)
    try:
        yield host_loop
    finally:
        if host_loop is not None:
            events._set_running_loop(host_loop)


def _worker_notify(driver_ref: weakref.ref[Driver]) -> Callable[[], bool]:
    def notify() -> bool:
        """Worker thread: the wait is over; hand the host a turn."""
        driver = driver_ref()
        if driver is None or driver._closed:
            return False
        resume = _Resume(driver)
        driver._scheduled = weakref.ref(resume)
        # Leave _waiting *before* handing the turn over: once the host has
        # it, it may run the turn and start the next wait (adding the
        # driver again) before this thread gets the GIL back, and a discard
        # after that would leave the next wait with nothing holding the
        # driver.  Until the host's queue holds ``resume``, our own locals
        # keep the driver alive.
        _waiting.discard(driver)
        try:
            driver._run_sync_soon_threadsafe(resume)
        except BaseException:
            logger.exception("run_sync_soon_threadsafe raised; the guest run cannot go on")
            if resume.disarm() is not None:
                driver._abandoned("its host's run_sync_soon_threadsafe raised")
            return False
        return True

    return notify


def _sniffio_thread_local() -> Any:
    sniffio = sys.modules.get("sniffio")
    return getattr(sniffio, "thread_local", None) if sniffio is not None else None
