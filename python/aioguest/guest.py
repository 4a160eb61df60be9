"""A handle on a running guest, and the one-call entry point host adapters share.

:func:`aioguest.start_guest_run` has Trio's contract: callbacks in, an
outcome out through ``done_callback``.  Applications want an object to hold
instead: cancel the guest when the window closes, ask whether it finished,
get its result.  :class:`Guest` is that object, and :func:`start_guest`
starts a coroutine on any :class:`Host` and returns one.  Every adapter in
:mod:`aioguest.hosts` is a :class:`Host` plus a ``start()`` that calls this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from outcome import Error, Outcome, Value

from .run import start_guest_run
from .turn import DEFAULT_TIME_SLICE, PollerWatcher

__all__ = ["Guest", "Host", "start_guest"]

T = TypeVar("T")

logger = logging.getLogger("aioguest")


class Host(Protocol):
    """What a host loop provides to run guests (see :mod:`aioguest.hosts`)."""

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Arrange for ``fn()`` to run soon on the host thread; callable
        from any thread."""

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """The same, called only on the host thread (may be cheaper)."""

    @property
    def poller_watcher(self) -> PollerWatcher | None:
        """A :class:`~aioguest.turn.PollerWatcher` if the host loop can
        watch a file descriptor itself, else None."""


class Guest(Generic[T]):
    """A coroutine running as an asyncio guest of a host loop.

    Like an :class:`asyncio.Future` seen from the host: all methods are for
    the host thread.
    """

    def __init__(self) -> None:
        #: The guest's main task (None if ``loop_factory`` failed).
        self.task: asyncio.Task[T] | None = None
        self._outcome: Outcome[T] | None = None
        self._callbacks: list[Callable[[Guest[T]], object]] = []
        self._cancel_requested = False

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the main task; the run then tears down as ``asyncio.run``
        does.  False if the guest has already finished."""
        if self._outcome is not None:
            return False
        self._cancel_requested = True
        task = self.task
        if task is None or task.done():
            # The task is over and teardown is running: nothing to cancel.
            return True
        return task.cancel() if msg is None else task.cancel(msg)

    def cancelled(self) -> bool:
        """True if the guest ended with :class:`asyncio.CancelledError`."""
        return isinstance(self._outcome, Error) and isinstance(
            self._outcome.error, asyncio.CancelledError
        )

    def done(self) -> bool:
        """True once the run is over (teardown included)."""
        return self._outcome is not None

    @property
    def outcome(self) -> Outcome[T] | None:
        """The run's :class:`outcome.Outcome`, or None while it runs."""
        return self._outcome

    def result(self) -> T:
        """The coroutine's return value, or raise its exception."""
        result = self._outcome
        if result is None:
            raise asyncio.InvalidStateError("the guest has not finished")
        if isinstance(result, Error):
            raise result.error
        assert isinstance(result, Value)
        value: T = result.value
        return value

    def exception(self) -> BaseException | None:
        """The coroutine's exception, None if it returned normally."""
        result = self._outcome
        if result is None:
            raise asyncio.InvalidStateError("the guest has not finished")
        return result.error if isinstance(result, Error) else None

    def add_done_callback(self, fn: Callable[[Guest[T]], object]) -> None:
        """Call ``fn(guest)`` on the host thread when the run is over (at
        once if it already is).  An exception from ``fn`` is logged."""
        if self._outcome is not None:
            self._call(fn)
        else:
            self._callbacks.append(fn)

    def remove_done_callback(self, fn: Callable[[Guest[T]], object]) -> int:
        """Remove every registration of ``fn``; return how many there were."""
        before = len(self._callbacks)
        self._callbacks = [cb for cb in self._callbacks if cb != fn]
        return before - len(self._callbacks)

    def _set_outcome(self, result: Outcome[T]) -> None:
        self._outcome = result
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            self._call(fn)

    def _call(self, fn: Callable[[Guest[T]], object]) -> None:
        try:
            fn(self)
        except Exception:
            # One failing callback must neither stop the others nor land
            # in the host's loop, where it would be reported far from here.
            logger.exception("exception in a Guest done callback %r", fn)

    def __repr__(self) -> str:
        if self._outcome is None:
            state = "cancelling" if self._cancel_requested else "running"
        elif self.cancelled():
            state = "cancelled"
        elif isinstance(self._outcome, Error):
            state = f"failed: {self._outcome.error!r}"
        else:
            state = "finished"
        return f"<Guest {state} task={self.task!r}>"


def start_guest(
    coro: Coroutine[Any, Any, T],
    host: Host,
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of *host*; return its :class:`Guest`.

    Call it on the host thread.  Arguments are those of
    :func:`aioguest.start_guest_run`; the host's poller watcher, if it has
    one, is used.
    """
    guest: Guest[T] = Guest()
    guest.task = start_guest_run(
        coro,
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        done_callback=guest._set_outcome,
        debug=debug,
        loop_factory=loop_factory,
        time_slice=time_slice,
        poller_watcher=host.poller_watcher,
    )
    return guest
