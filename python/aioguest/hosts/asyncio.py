"""Host: another asyncio event loop on the same thread (``asyncio.run``, uvloop).

The guest is a second, separate asyncio loop that runs in turns inside the
host loop's thread.  Host code keeps seeing the host loop
(``asyncio.get_running_loop()``, ``current_task()``), guest code sees the
guest loop; each loop has its own tasks, and neither can block the other
for longer than a guest time slice or a host callback.  Why bother, when
both are asyncio: to give a library its own loop (its own exception
handler, debug mode, executor, signal handlers, a loop it may close or
stop), or to run code written against a different loop policy, without a
second thread to synchronise with.

Sharing a thread with an asyncio loop is usually a mistake, so
:func:`aioguest.start_guest_run` refuses to start under a running loop;
:func:`start` is the explicit opt-in::

    from aioguest.hosts import asyncio as aio_host

    async def main():                      # runs in the host loop
        guest = aio_host.start(library_main())
        ...
        result = await aio_host.wait(guest)

    asyncio.run(main())

Structured forms: ``await run(coro)`` (start, wait, cancel the guest if
the caller is cancelled, and wait for its teardown) and ``async with
open_guest(coro) as guest``.  Across the two loops: ``await
run_in_guest(guest, coro)`` from host code, ``await run_in_host(coro)``
from guest code.

By default the guest waits in the host loop itself: the host's selector
watches the guest poller's epoll fd (``loop.add_reader``), and the guest's
timeout is a host ``call_later``, so no worker thread is involved
(``watch_poller=False`` selects the Go worker instead).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import weakref
from asyncio import events
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from ..guest import Guest, start_guest
from ..turn import DEFAULT_TIME_SLICE, running_loop_set_aside

__all__ = [
    "AsyncioHost",
    "AsyncioPollerWatcher",
    "cancel_and_wait",
    "open_guest",
    "run",
    "run_in_guest",
    "run_in_host",
    "start",
    "wait",
]

T = TypeVar("T")

# Guest loop -> the host loop it runs in, for run_in_host() (called from
# guest code, which knows only its own loop).  Entries go when the guest
# finishes; weak keys cover a run that never does.
_host_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop] = (
    weakref.WeakKeyDictionary()
)


class AsyncioPollerWatcher:
    """Lets the host loop's own selector watch the guest poller's fd."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fd = -1
        # Loops other than the stdlib's may run a timer early: libuv
        # (uvloop) rounds the delay to the nearest millisecond and counts it
        # from a "now" cached at the start of the loop iteration.  A guest
        # woken early only waits again, but that is a wasted turn.
        self._pad_ms = not isinstance(loop, asyncio.BaseEventLoop)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        if self._fd >= 0 and self._fd != fd:
            self._loop.remove_reader(self._fd)
        # add_reader replaces the callback of an fd already watched.
        self._loop.add_reader(fd, callback)
        self._fd = fd

    def unwatch(self) -> None:
        fd, self._fd = self._fd, -1
        # A closed loop has already dropped its readers (and uvloop raises).
        if fd >= 0 and not self._loop.is_closed():
            self._loop.remove_reader(fd)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        if self._pad_ms:
            delay = math.ceil(delay * 1000) / 1000 + 0.001
        return self._loop.call_later(delay, callback).cancel


class AsyncioHost:
    """An asyncio event loop as the host of guests, on the loop's thread.

    ``loop`` defaults to the running loop.  Both scheduling calls go
    through the loop's own queue: ``call_soon_threadsafe`` (which writes
    the loop's self-pipe) from the worker thread, plain ``call_soon`` from
    the host thread, where no wake-up is needed because the host loop is
    the one running the caller.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, watch_poller: bool = True
    ) -> None:
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self._watcher = AsyncioPollerWatcher(self.loop) if watch_poller else None

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon(fn)

    @property
    def poller_watcher(self) -> AsyncioPollerWatcher | None:
        return self._watcher


def start(
    coro: Coroutine[Any, Any, T],
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of the host loop *loop*.

    Call it on the host loop's thread: from code running in that loop
    (*loop* defaults to it), or before the loop starts.  The guest's main
    task copies the caller's context, as ``asyncio.run`` does.  Other
    arguments are :func:`aioguest.start_guest_run`'s; ``watch_poller=False``
    makes the guest wait on aioguest's worker thread instead of in the
    host's selector.
    """
    try:
        running = events._get_running_loop()
        if loop is None:
            if running is None:
                raise RuntimeError(
                    "aioguest.hosts.asyncio.start() needs a host loop: call it from code "
                    "running in one, or pass loop="
                )
            loop = running
        elif running is not loop and (running is not None or loop.is_running()):
            raise RuntimeError(
                "aioguest.hosts.asyncio.start() must be called on the host loop's thread "
                "(from another thread: loop.call_soon_threadsafe(start, ...))"
            )
        if loop.is_closed():
            raise RuntimeError("the host event loop is closed")
        host = AsyncioHost(loop, watch_poller=watch_poller)
    except BaseException:
        coro.close()
        raise
    # start_guest_run refuses to start under a running loop because two
    # loops sharing a thread is almost always an accident; here it is what
    # the caller asked for.  Nothing in start_guest_run looks at the
    # running loop otherwise (the guest's own turns unset it themselves).
    with running_loop_set_aside():
        guest = start_guest(
            coro, host, debug=debug, loop_factory=loop_factory, time_slice=time_slice
        )
    if guest.task is not None:
        guest_loop = guest.task.get_loop()
        _host_loops[guest_loop] = loop
        guest.add_done_callback(lambda _: _host_loops.pop(guest_loop, None))
        # A host task standing for the guest: asyncio.run (and any shutdown
        # code that cancels all tasks) cancels it before closing the loop,
        # and it then cancels the guest and keeps the loop running until
        # the guest's teardown is done, instead of the loop being closed
        # under a running guest.
        loop.create_task(_keeper(guest), name=f"aioguest keeper of {guest.task.get_name()}")
    return guest


async def _keeper(guest: Guest[Any]) -> None:
    await _await_settled(_done_future(guest), guest.cancel)


async def wait(guest: Guest[T]) -> T:
    """Wait (in the host loop) until *guest* is over; return its result or
    raise its exception, like awaiting a task.

    If the waiting task is cancelled, the guest is cancelled too, and
    ``wait`` returns (raising :class:`asyncio.CancelledError`) only once the
    guest's teardown is complete: no guest outlives a cancelled waiter.
    """
    over = _done_future(guest)
    if await _await_settled(over, guest.cancel):
        raise asyncio.CancelledError()
    return guest.result()


async def run(
    coro: Coroutine[Any, Any, T],
    *,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> T:
    """Run *coro* in a fresh guest loop on this thread and return its
    result: ``asyncio.run`` for code that is already inside a loop.
    Cancelling the caller cancels the guest and waits for its teardown."""
    guest = start(
        coro,
        watch_poller=watch_poller,
        debug=debug,
        loop_factory=loop_factory,
        time_slice=time_slice,
    )
    return await wait(guest)


async def cancel_and_wait(guest: Guest[Any], msg: Any = None) -> None:
    """Cancel *guest* and wait until its teardown is complete.

    The outcome is left in ``guest.outcome`` (not raised).  Await it before
    the host loop closes: a loop closed under a running guest drops it
    without its teardown.  If the caller is cancelled meanwhile, the wait
    still completes first.
    """
    over = _done_future(guest)
    guest.cancel(msg)
    if await _await_settled(over, lambda: None):
        raise asyncio.CancelledError()


@asynccontextmanager
async def open_guest(
    coro: Coroutine[Any, Any, T],
    *,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> AsyncIterator[Guest[T]]:
    """``async with open_guest(coro) as guest:`` — the guest lives no longer
    than the block.

    On leaving the block a guest still running is cancelled, and the exit
    waits for its teardown.  If the block itself ended normally, an
    exception the guest failed with (other than being cancelled) is raised
    there.
    """
    guest = start(
        coro,
        watch_poller=watch_poller,
        debug=debug,
        loop_factory=loop_factory,
        time_slice=time_slice,
    )
    try:
        yield guest
    finally:
        await cancel_and_wait(guest)
    error = guest.exception()
    if error is not None and not guest.cancelled():
        raise error


async def run_in_guest(guest: Guest[Any], coro: Coroutine[Any, Any, T]) -> T:
    """From host code: run *coro* as a task of *guest*'s loop and await its
    result in the host loop.

    Behaves like awaiting that task: its exception is raised here, and
    cancelling the caller cancels the task and waits for it to finish.
    The task copies the caller's context.  Raises :class:`RuntimeError` if
    the guest run ends before the task could start.
    """
    if guest.task is None or guest.done():
        coro.close()
        raise RuntimeError("the guest run is over")
    return await _call_across(guest.task.get_loop(), coro, guest)


async def run_in_host(coro: Coroutine[Any, Any, T]) -> T:
    """From guest code: run *coro* as a task of the host loop and await its
    result in the guest.

    The guest must have been started by :func:`start`.  Behaves like
    awaiting that task (see :func:`run_in_guest`).
    """
    host_loop = _host_loops.get(asyncio.get_running_loop())
    if host_loop is None:
        coro.close()
        raise RuntimeError(
            "run_in_host() must be called from a guest started by aioguest.hosts.asyncio.start()"
        )
    return await _call_across(host_loop, coro, None)


# -- helpers ----------------------------------------------------------------


def _done_future(guest: Guest[Any]) -> asyncio.Future[None]:
    """A future of the running loop, done when *guest* is over."""
    over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(_: Guest[Any]) -> None:
        if not over.done():
            over.set_result(None)

    guest.add_done_callback(settle)
    return over


async def _await_settled(over: asyncio.Future[None], on_cancel: Callable[[], object]) -> bool:
    """Await *over*; if the caller is cancelled meanwhile, call
    ``on_cancel()`` once and keep waiting.  True if the caller was
    cancelled (the caller then raises CancelledError itself)."""
    cancelled = False
    while not over.done():
        try:
            # shield: cancelling the caller must not cancel *over*, which
            # stands for something (a guest, a task of the other loop)
            # that has to be told and then waited for.
            await asyncio.shield(over)
        except asyncio.CancelledError:
            if over.done():
                # Cancelled in the same iteration as *over* finished.
                return True
            if not cancelled:
                cancelled = True
                on_cancel()
    return cancelled


def start_task_in(
    target: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    remote: list[asyncio.Task[T]],
    settle: Callable[..., object],
    given_up: Callable[[], bool],
) -> None:
    """Soon, from a callback of *target* (a loop on this thread), make
    *coro* a task of it: append the task to *remote* and call ``settle``
    when it is done.  If ``given_up()`` by then, close *coro* and settle at
    once.  The task copies the caller's context."""

    def create() -> None:
        # Runs in the target loop, so the task starts under its own
        # running loop (an eager task factory would otherwise run the
        # first step in the caller's loop).
        if given_up():
            coro.close()
            settle()
            return
        task = target.create_task(coro)
        remote.append(task)
        task.add_done_callback(settle)

    # Both loops run on this thread, so plain call_soon is enough: an idle
    # guest is woken by the driver's call_soon hook, and a host loop is
    # running the guest turn that is calling us.
    try:
        target.call_soon(create, context=contextvars.copy_context())
    except BaseException:
        coro.close()
        raise


async def _call_across(
    target: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    guest: Guest[Any] | None,
) -> T:
    """Run *coro* as a task of *target* (another loop on this thread) and
    await it from the running loop."""
    here = asyncio.get_running_loop()
    over: asyncio.Future[None] = here.create_future()
    remote: list[asyncio.Task[T]] = []
    cancelled = False

    def settle(_: object = None) -> None:
        if not over.done() and not here.is_closed():
            over.set_result(None)

    start_task_in(target, coro, remote, settle, lambda: cancelled or over.done())
    if guest is not None:
        # A guest that ends before running create() drops it with its loop.
        guest.add_done_callback(settle)

    def cancel_remote() -> None:
        nonlocal cancelled
        cancelled = True
        if remote:
            remote[0].cancel()

    try:
        was_cancelled = await _await_settled(over, cancel_remote)
    finally:
        if guest is not None:
            guest.remove_done_callback(settle)
    if was_cancelled and not (cancelled and remote and not remote[0].cancelled()):
        raise asyncio.CancelledError()
    if not remote:
        coro.close()
        raise RuntimeError("the guest run ended before the coroutine could start")
    # As when awaiting a task: the caller gets what the task ended with
    # (its result even if it swallowed our cancellation).
    return remote[0].result()
