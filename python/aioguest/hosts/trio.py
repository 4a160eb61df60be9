"""Host: Trio.

An asyncio guest inside ``trio.run``, on Trio's thread::

    from aioguest.hosts import trio as trio_host

    async def main():                          # Trio code
        result = await trio_host.run(asyncio_main())

    trio.run(main)

:func:`run` is the structured entry point: it starts the guest, waits for
its outcome, and if the calling Trio task is cancelled it cancels the
guest and waits (shielded) for its teardown before the cancellation goes
on.  :func:`start` returns a :class:`aioguest.Guest` for code that wants a
handle instead; :func:`wait` and :func:`cancel_and_wait` await it from
Trio.  A guest still running when ``trio.run``'s main task returns is
cancelled, and the run waits for its teardown, as ``asyncio.run`` does
with tasks left over.  Across the two: ``await run_in_guest(guest,
coro)`` from Trio, ``await run_in_host(async_fn, *args)`` from guest code.

Scheduling goes through ``TrioToken.run_sync_soon``, which is thread-safe
(Trio has no cheaper same-thread variant).  By default the guest waits in
Trio itself: one Trio system task waits for the guest poller's fd with
``trio.lowlevel.wait_readable`` under a cancel scope whose deadline is the
guest's timeout, so no worker thread is involved (``watch_poller=False``
uses aioguest's worker thread instead).  Guest turns run synchronously
inside Trio system tasks, which Trio protects from KeyboardInterrupt:
Ctrl-C reaches Trio's main task, whose cancellation cancels the guest.
Inside the guest, ``sniffio`` says "asyncio" (the driver sees to it).

Unlike trio-asyncio, which runs an asyncio loop *on top of* Trio's
scheduler (asyncio callbacks become Trio tasks), the guest here is a
stock asyncio loop driven in turns, exactly as under a GUI toolkit: guest
and Trio code share only the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import outcome
import trio  # type: ignore[import-not-found, import-untyped, unused-ignore]

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE
from .asyncio import start_task_in

__all__ = [
    "TrioHost",
    "TrioPollerWatcher",
    "cancel_and_wait",
    "run",
    "run_in_guest",
    "run_in_host",
    "start",
    "wait",
]

T = TypeVar("T")

logger = logging.getLogger("aioguest")

# Guest loop -> its Trio host, for run_in_host() (called from guest code,
# which knows only its own loop).  Entries go when the guest finishes.
_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TrioHost] = weakref.WeakKeyDictionary()


class TrioPollerWatcher:
    """Watches the guest poller's fd, and runs its timers, from one Trio
    system task that exists while there is something to watch."""

    def __init__(self) -> None:
        self._fd = -1
        self._on_readable: Callable[[], None] | None = None
        # Timers: a heap of (deadline, seq, entry); entry[0] is the callback,
        # None once it ran or was cancelled.
        self._timers: list[tuple[float, int, list[Callable[[], None] | None]]] = []
        self._seq = itertools.count()
        self._scope: Any = None  # the serving task's current wait, if any
        self._serving = False

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        if fd != self._fd:
            self._fd = fd
            self._interrupt()
        self._on_readable = callback
        self._serve_soon()

    def unwatch(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            self._on_readable = None
            self._interrupt()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        # Trio wakes a deadline no earlier than due (its epoll timeout is
        # rounded up, and deadlines are checked against its clock).
        entry: list[Callable[[], None] | None] = [callback]
        deadline = trio.current_time() + max(delay, 0.0)
        heapq.heappush(self._timers, (deadline, next(self._seq), entry))
        self._retime()
        self._serve_soon()

        def cancel() -> None:
            if entry[0] is not None:
                entry[0] = None
                self._retime()

        return cancel

    # -- the serving task -------------------------------------------------

    def _next_deadline(self) -> float:
        timers = self._timers
        while timers and timers[0][2][0] is None:
            heapq.heappop(timers)
        return timers[0][0] if timers else math.inf

    def _retime(self) -> None:
        if self._scope is not None:
            # A live cancel scope's deadline may be moved either way.
            self._scope.deadline = self._next_deadline()

    def _interrupt(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _serve_soon(self) -> None:
        if not self._serving:
            self._serving = True
            trio.lowlevel.spawn_system_task(self._serve, name="aioguest poller watcher")

    async def _serve(self) -> None:
        # Shielded: when trio.run's main task returns, system tasks are
        # cancelled, but the guest's teardown still needs this task; it
        # ends by itself once the driver lets go of the fd and timers.
        with trio.CancelScope(shield=True):
            try:
                while self._fd >= 0 or self._next_deadline() < math.inf:
                    fd = self._fd
                    readable = False
                    with trio.CancelScope(deadline=self._next_deadline()) as scope:
                        self._scope = scope
                        try:
                            if fd >= 0:
                                await trio.lowlevel.wait_readable(fd)
                                readable = True
                            else:
                                await trio.sleep_forever()
                        except (OSError, trio.BusyResourceError, trio.ClosedResourceError):
                            # Something closed the fd behind our back; the
                            # driver's next turn finds out and ends the run.
                            logger.exception("waiting for the guest poller's fd failed")
                            readable = True
                    # The callbacks run outside the scope: they may watch,
                    # unwatch or set timers, which only leaves notes for
                    # the next round.
                    self._scope = None
                    if readable and fd == self._fd:
                        self._call(self._on_readable)
                    self._run_due_timers()
            finally:
                self._scope = None
                self._serving = False

    def _run_due_timers(self) -> None:
        now = trio.current_time()
        while self._next_deadline() <= now:
            _, _, entry = heapq.heappop(self._timers)
            callback, entry[0] = entry[0], None
            self._call(callback)

    @staticmethod
    def _call(callback: Callable[[], None] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            # An exception escaping a system task would crash trio.run
            # (TrioInternalError); the driver's callbacks do not raise.
            logger.exception("exception in a guest callback run by the Trio watcher")


class TrioHost:
    """The running Trio loop as the host of guests.  Create it inside
    ``trio.run`` (on Trio's thread)."""

    def __init__(self, *, watch_poller: bool = True) -> None:
        try:
            self.token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError("aioguest's Trio host must be created inside trio.run") from None
        self._watcher = TrioPollerWatcher() if watch_poller else None

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        self.token.run_sync_soon(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        self.token.run_sync_soon(fn)

    @property
    def poller_watcher(self) -> TrioPollerWatcher | None:
        return self._watcher


def start(
    coro: Coroutine[Any, Any, T],
    *,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the running Trio loop.

    Call it from Trio code (sync or async).  The guest's main task copies
    the caller's context.  Other arguments are
    :func:`aioguest.start_guest_run`'s; ``watch_poller=False`` makes the
    guest wait on aioguest's worker thread instead of in Trio.
    """
    try:
        host = TrioHost(watch_poller=watch_poller)
    except BaseException:
        coro.close()
        raise
    guest = start_guest(coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice)
    if guest.task is not None:
        guest_loop = guest.task.get_loop()
        _hosts[guest_loop] = host
        guest.add_done_callback(lambda _: _hosts.pop(guest_loop, None))
    over = _done_event(guest)

    async def keeper() -> None:
        # A system task: cancelled only when trio.run's main task has
        # returned, at which point the guest is cancelled and the run waits
        # for its teardown (as asyncio.run does with leftover tasks).
        try:
            await over.wait()
        except trio.Cancelled:
            guest.cancel()
            with trio.CancelScope(shield=True):
                await over.wait()

    name = guest.task.get_name() if guest.task is not None else "a failed guest"
    trio.lowlevel.spawn_system_task(keeper, name=f"aioguest keeper of {name}")
    return guest


async def wait(guest: Guest[T]) -> T:
    """Wait until *guest* is over; return its result or raise its exception.

    If the calling task is cancelled (or gets KeyboardInterrupt) first,
    the guest is cancelled and ``wait`` waits, shielded, for its teardown
    before letting the cancellation through: no guest outlives its waiter.
    """
    over = _done_event(guest)
    try:
        await over.wait()
    except BaseException:
        guest.cancel()
        with trio.CancelScope(shield=True):
            await over.wait()
        raise
    return guest.result()


async def run(
    coro: Coroutine[Any, Any, T],
    *,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> T:
    """Run *coro* in a fresh asyncio loop, as a guest of Trio, and return
    its result (or raise its exception).  Cancelling the caller cancels the
    guest and waits for its teardown."""
    guest = start(
        coro,
        watch_poller=watch_poller,
        debug=debug,
        loop_factory=loop_factory,
        time_slice=time_slice,
    )
    return await wait(guest)


async def cancel_and_wait(guest: Guest[Any], msg: Any = None) -> None:
    """Cancel *guest* and wait (shielded) until its teardown is complete.
    The outcome stays in ``guest.outcome``."""
    over = _done_event(guest)
    guest.cancel(msg)
    with trio.CancelScope(shield=True):
        await over.wait()


async def run_in_guest(guest: Guest[Any], coro: Coroutine[Any, Any, T]) -> T:
    """From Trio code: run *coro* as a task of *guest*'s loop; return its
    result or raise its exception.

    If the calling Trio task is cancelled, the asyncio task is cancelled
    and waited for (shielded) before the cancellation goes on.  The task
    copies the caller's context.  Raises :class:`RuntimeError` if the guest
    run ends before the task could start.
    """
    if guest.task is None or guest.done():
        coro.close()
        raise RuntimeError("the guest run is over")
    guest_loop = guest.task.get_loop()
    settled = trio.Event()
    remote: list[asyncio.Task[T]] = []
    cancelled = False

    def settle(_: object = None) -> None:
        settled.set()

    start_task_in(guest_loop, coro, remote, settle, lambda: cancelled)
    # A guest that ends before running create() drops it with its loop.
    guest.add_done_callback(settle)
    try:
        try:
            await settled.wait()
        except BaseException:
            cancelled = True
            if remote:
                remote[0].cancel()
            with trio.CancelScope(shield=True):
                await settled.wait()
            raise
    finally:
        guest.remove_done_callback(settle)
    if not remote:
        coro.close()
        raise RuntimeError("the guest run ended before the coroutine could start")
    return remote[0].result()


async def run_in_host(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """From guest code: run ``await async_fn(*args)`` as Trio code (in a
    new Trio system task) and return its result in the guest.

    Cancelling the awaiting asyncio task cancels the Trio task and waits
    for it; if Trio cancels it (trio.run is ending), the guest gets
    :class:`asyncio.CancelledError`.  The Trio task copies the caller's
    context.  The guest must have been started by :func:`start`.
    """
    loop = asyncio.get_running_loop()
    if loop not in _hosts:
        raise RuntimeError(
            "run_in_host() must be called from a guest started by aioguest.hosts.trio.start()"
        )
    over: asyncio.Future[outcome.Outcome[T]] = loop.create_future()
    scope = trio.CancelScope()

    async def in_trio() -> None:
        result: outcome.Outcome[T] = outcome.Error(
            asyncio.CancelledError("the Trio task was cancelled")
        )
        try:
            with scope:
                try:
                    result = outcome.Value(await async_fn(*args))
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    result = outcome.Error(exc)
        finally:
            # On Trio's thread, so the guest loop's own call_soon (which
            # set_result uses) is safe, and wakes the guest if idle.
            if not over.done() and not loop.is_closed():
                over.set_result(result)

    # A system task: user code run in it must not crash trio.run, which is
    # why everything it raises is captured and handed to the guest.
    trio.lowlevel.spawn_system_task(
        in_trio, name=f"aioguest run_in_host({async_fn!r})", context=contextvars.copy_context()
    )
    cancelled = False
    while not over.done():
        try:
            await asyncio.shield(over)
        except asyncio.CancelledError:
            if not cancelled and not over.done():
                cancelled = True
                scope.cancel()
    if cancelled:
        raise asyncio.CancelledError()
    return over.result().unwrap()


def _done_event(guest: Guest[Any]) -> Any:
    """A trio.Event set when *guest* is over."""
    over = trio.Event()
    guest.add_done_callback(lambda _: over.set())
    return over
