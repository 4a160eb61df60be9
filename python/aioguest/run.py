"""A guest run: ``asyncio.run``, with its loop driven in turns by a host.

The turn mechanics (what a turn is, where the wait happens, how an idle
guest is woken) live in :mod:`aioguest.turn`; ``docs/design.md`` has the
reasoning and the numbers.  This module adds what ``asyncio.run`` adds on
top of ``run_until_complete``:

* the lifecycle (run the main task, cancel what is left, shut down async
  generators and the default executor, close the loop) is a generator,
  :meth:`GuestRun._lifecycle`, that yields each future ``asyncio.run`` would
  pass to ``run_until_complete``; the run hands the driver turns until the
  current future is done, then feeds the generator;
* Ctrl-C cancels the main task as under ``asyncio.Runner``, and the host's
  signal wake-up fd survives a guest that uses ``add_signal_handler``;
* a host that drops the run is reported, and the run is torn down without
  the turns it would need.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import threading
import warnings
import weakref
from asyncio import selector_events
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any, TypeVar

import outcome

from .selector import GoSelector
from .turn import DEFAULT_TIME_SLICE, Driver, PollerWatcher, running_loop_set_aside

__all__ = ["DEFAULT_TIME_SLICE", "GuestRun", "start_guest_run"]

T = TypeVar("T")

logger = logging.getLogger("aioguest")

_HostCallback = Callable[[Callable[[], None]], object]

_live_runs: weakref.WeakSet[GuestRun] = weakref.WeakSet()
# Runs abandoned off the main thread whose signal state only the main
# thread can undo (see GuestRun._abandon).
_close_on_main_thread: list[GuestRun] = []
_atexit_registered = False


def _forget_runs_after_fork() -> None:
    # A forked child has the parent's runs but neither its host loop nor
    # the worker threads: they are the parent's business.  Mark them done
    # quietly, so the child neither warns about them nor tries to close
    # them through a Go runtime it does not have.
    for run in list(_live_runs):
        run._abandoned = True
    _live_runs.clear()
    _close_on_main_thread.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runs_after_fork)


class GuestRun:
    """The state of one guest run.  Made by :func:`start_guest_run`."""

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        loop: asyncio.AbstractEventLoop,
        selector: GoSelector,
        run_sync_soon_threadsafe: _HostCallback,
        run_sync_soon_not_threadsafe: _HostCallback,
        done_callback: Callable[[outcome.Outcome[Any]], object],
        time_slice: float,
        poller_watcher: PollerWatcher | None = None,
    ) -> None:
        self._loop = loop
        self._selector = selector
        self._done_callback = done_callback
        self._finished = False
        self._abandoned = False

        # Ctrl-C and the host's signal wake-up fd (see _install_signals).
        self._interrupts = 0
        self._sigint_handler: Callable[[int, FrameType | None], None] | None = None
        self._host_wakeup_fd: int | None = None
        self._add_signal_handler = getattr(loop, "add_signal_handler", None)

        self._driver = Driver(
            loop,
            selector,
            run_sync_soon_threadsafe=run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=run_sync_soon_not_threadsafe,
            on_stop=self._on_stop,
            on_abandon=self._abandon,
            on_host_error=self._host_failed,
            time_slice=time_slice,
            watcher=poller_watcher,
        )
        # Hand the host the first turn before creating anything that would
        # need undoing: a host that refuses (its queue is closed, say) gets
        # its own error back from start_guest_run, with no task left to be
        # "destroyed but pending" and no abandonment reported.  The host
        # runs the turn later, once this constructor has finished.
        self._driver.start()
        try:
            # The main task, created in the caller's context like asyncio.run
            # does (the Task copies the current context).
            self.task: asyncio.Task[Any] = loop.create_task(coro)
        except BaseException:
            self._driver.close()
            raise
        self._lifecycle_gen = self._lifecycle()
        self._future: asyncio.Future[Any] = next(self._lifecycle_gen)
        self._future.add_done_callback(self._on_future_done)

        self._install_signals()
        _live_runs.add(self)
        _register_atexit()

    def _on_stop(self, exc: BaseException | None) -> None:
        """The driver's turn ended with the loop stopped by someone else."""
        if self._finished or self._abandoned:
            return
        if exc is None and not self._future.done():
            # Nobody but the guest itself stops the loop otherwise.
            exc = RuntimeError("Event loop stopped before Future completed.")
        self._advance(exc)

    # -- the asyncio.run lifecycle --------------------------------------------

    def _lifecycle(self) -> Generator[asyncio.Future[Any], None, Any]:
        try:
            result = yield from self._main()
        except GeneratorExit:
            # Closed before the end: the run was abandoned, and teardown
            # would need turns that no host will run.
            raise
        except BaseException:
            yield from self._teardown()
            raise
        yield from self._teardown()
        return result

    def _main(self) -> Generator[asyncio.Future[Any], None, Any]:
        """What asyncio.run does with the main task (as Runner.run, 3.11+)."""
        task = self.task
        try:
            yield task
        except BaseException:
            # As run_until_complete: don't let "exception was never
            # retrieved" follow an exception that is already propagating.
            if task.done() and not task.cancelled():
                task.exception()
            raise
        finally:
            self._restore_sigint()
        if task.cancelled() and self._interrupts:
            uncancel = getattr(task, "uncancel", None)
            if uncancel is None or uncancel() == 0:
                raise KeyboardInterrupt()
        return task.result()

    def _teardown(self) -> Generator[asyncio.Future[Any], None, None]:
        """What asyncio.run does after the main task, in the same order."""
        loop = self._loop
        try:
            yield from self._cancel_all_tasks()
            yield asyncio.ensure_future(loop.shutdown_asyncgens(), loop=loop)
            if sys.version_info >= (3, 12):
                shutdown = loop.shutdown_default_executor(_thread_join_timeout())
            else:
                shutdown = loop.shutdown_default_executor()
            yield asyncio.ensure_future(shutdown, loop=loop)
        finally:
            loop.close()

    def _cancel_all_tasks(self) -> Generator[asyncio.Future[Any], None, None]:
        loop = self._loop
        to_cancel = asyncio.all_tasks(loop)
        if not to_cancel:
            return
        for task in to_cancel:
            task.cancel()
        yield asyncio.gather(*to_cancel, return_exceptions=True)
        for task in to_cancel:
            if task.cancelled():
                continue
            if task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": "unhandled exception during asyncio.run() shutdown",
                        "exception": task.exception(),
                        "task": task,
                    }
                )

    def _advance(self, exc: BaseException | None) -> None:
        """Feed the lifecycle the end of the current future (or *exc*)."""
        try:
            if exc is None:
                future = self._lifecycle_gen.send(None)
            else:
                future = self._lifecycle_gen.throw(exc)
        except StopIteration as stop:
            self._finish(outcome.Value(stop.value))
            return
        except BaseException as error:
            self._finish(outcome.Error(error))
            return
        self._future = future
        future.add_done_callback(self._on_future_done)
        self._driver.resume()

    def _host_failed(self, exc: BaseException) -> None:
        """The host refused to schedule our next turn, on its own thread.

        No more turns will come, but we are on the host thread right now:
        finish the run here, as ``asyncio.run`` would after an exception
        escaped ``run_until_complete`` -- the failure goes into the
        lifecycle, whose teardown runs to completion on the spot (blocking
        the host briefly, with the selector waiting for real), and
        ``done_callback`` gets the outcome.
        """
        if self._finished or self._abandoned:
            return
        loop = self._loop
        gen = self._lifecycle_gen
        error: BaseException | None = exc
        result: outcome.Outcome[Any]
        # A host that is itself asyncio has its loop set while it calls us.
        with running_loop_set_aside():
            while True:
                try:
                    future = gen.send(None) if error is None else gen.throw(error)
                except StopIteration as stop:
                    result = outcome.Value(stop.value)
                    break
                except BaseException as failure:
                    result = outcome.Error(failure)
                    break
                error = None
                future.add_done_callback(lambda _: loop.stop())
                try:
                    # A loop, not one run_forever: a stop meant for an
                    # earlier step (or the main task's done callback) may
                    # still be pending and end the first pass early.
                    while not future.done():
                        loop.run_forever()
                except BaseException as failure:
                    error = failure
        self._finish(result)

    def _on_future_done(self, future: asyncio.Future[Any]) -> None:
        # A future that was already replaced must not stop a later turn:
        # its callback may run after the driver noticed it was done.
        if future is self._future:
            self._loop.stop()

    def _finish(self, result: outcome.Outcome[Any]) -> None:
        self._finished = True
        _live_runs.discard(self)
        self._driver.close()
        self._restore_sigint()
        self._restore_wakeup_fd()
        self._selector.close()
        self._done_callback(result)

    # -- signals ------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        # Like asyncio.Runner: Ctrl-C cancels the main task, rather than
        # raising KeyboardInterrupt wherever the host happens to be.
        current = signal.getsignal(signal.SIGINT)
        if current is signal.default_int_handler or _is_stale_sigint_handler(current):
            # The signal module keeps its handler forever: a weak reference,
            # so an installed handler cannot keep an abandoned run alive.
            self._sigint_handler = functools.partial(_on_sigint, weakref.ref(self))
            signal.signal(signal.SIGINT, self._sigint_handler)
        if self._add_signal_handler is not None:
            # loop.add_signal_handler takes over the process's wake-up fd
            # and loop.close() resets it to -1; remember the host's first.
            self._loop.__dict__["add_signal_handler"] = self._guest_add_signal_handler

    def _guest_add_signal_handler(
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        if self._host_wakeup_fd is None:
            try:
                self._host_wakeup_fd = signal.set_wakeup_fd(-1)
            except ValueError:
                pass  # not the main thread: asyncio raises its own error below
        assert self._add_signal_handler is not None
        self._add_signal_handler(sig, callback, *args)

    def _restore_sigint(self) -> None:
        handler, self._sigint_handler = self._sigint_handler, None
        if handler is not None and signal.getsignal(signal.SIGINT) == handler:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            except ValueError:
                pass  # not on the main thread (abandoned from elsewhere)

    def _restore_wakeup_fd(self) -> None:
        fd, self._host_wakeup_fd = self._host_wakeup_fd, None
        if fd is not None:
            try:
                # The original warn_on_full_buffer cannot be read back; hosts
                # that share the fd (Trio) use it for wake-ups only and want
                # no warnings, so that is the safe choice.
                signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            except ValueError:
                pass

    # -- abandonment ----------------------------------------------------------

    def _abandon(self, reason: str) -> None:
        if self._finished or self._abandoned:
            return
        self._abandoned = True
        _live_runs.discard(self)
        self._driver.close()
        try:
            warnings.warn(
                f"aioguest: a guest run was abandoned ({reason}); its main task "
                f"{self.task!r} will never finish",
                RuntimeWarning,
                stacklevel=2,
            )
            logger.error(
                "guest run abandoned (%s); main task %r will never finish", reason, self.task
            )
        except Exception:  # noqa: S110 - e.g. during interpreter shutdown
            pass
        # Closes the lifecycle without its teardown (it would need turns).
        self._lifecycle_gen.close()
        if (
            self._host_wakeup_fd is not None
            and threading.current_thread() is not threading.main_thread()
        ):
            # The guest installed signal handlers, and only the main thread
            # may remove them and give the host its wake-up fd back
            # (loop.close() would fail half-way here, leaving the process's
            # wake-up fd naming a closed pipe whose number open() reuses).
            # The worker is stopped already (the driver is closed); the
            # loop, whose self-pipe and poller stay open meanwhile, is
            # closed by the next call from the main thread: a new run, or
            # the exit hook.
            _close_on_main_thread.append(self)
            return
        self._restore_sigint()
        self._restore_wakeup_fd()
        # Closing the loop stops the worker thread and releases the fds;
        # the tasks it still holds are reported by asyncio when collected.
        loop = self._loop
        if not loop.is_running() and not loop.is_closed():
            try:
                loop.close()
            except Exception:
                logger.exception("closing an abandoned guest loop failed")
        else:
            self._selector.close()


def _close_deferred_runs() -> None:
    """On the main thread: finish what abandonment off it had to leave."""
    while _close_on_main_thread:
        run = _close_on_main_thread.pop(0)
        loop = run._loop
        try:
            if not loop.is_closed():
                loop.close()  # removes the guest's signal handlers
        except Exception:
            logger.exception("closing an abandoned guest loop failed")
        run._restore_sigint()
        run._restore_wakeup_fd()


def _on_sigint(run_ref: weakref.ref[GuestRun], signum: int, frame: FrameType | None) -> None:
    run = run_ref()
    if run is None or run._finished or run._abandoned:
        # Left behind by a run that could not give SIGINT back (see
        # _is_stale_sigint_handler): behave as the default handler.
        raise KeyboardInterrupt()
    run._interrupts += 1
    if run._interrupts == 1 and not run.task.done():
        run.task.cancel()
        # Wakes the worker even if the signal landed between our own
        # bookkeeping steps rather than in host code.
        run._loop.call_soon_threadsafe(_noop)
        return
    raise KeyboardInterrupt()


def _is_stale_sigint_handler(handler: object) -> bool:
    """A handler of ours left behind by a run that ended off the main thread.

    A run abandoned on its worker thread cannot give SIGINT back there
    (``signal.signal`` works on the main thread only); the handler it
    leaves behaves like the default one, and the next run takes it over.
    """
    if not (isinstance(handler, functools.partial) and handler.func is _on_sigint):
        return False
    run = handler.args[0]()
    return run is None or run._finished or run._abandoned


def _noop() -> None:
    pass


def _thread_join_timeout() -> float:
    from asyncio import constants

    return float(getattr(constants, "THREAD_JOIN_TIMEOUT", 300))


def _register_atexit() -> None:
    global _atexit_registered
    if _atexit_registered:
        return
    _atexit_registered = True
    # threading's own exit hooks run before the interpreter waits for
    # threads and tears modules down, so the worker can still be joined.
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - CPython < 3.9
        import atexit

        register = atexit.register
    register(_abandon_live_runs)


def _abandon_live_runs() -> None:
    for run in list(_live_runs):
        run._abandon("the interpreter is exiting")
    _close_deferred_runs()


def _prepare_loop(loop: object) -> tuple[asyncio.AbstractEventLoop, GoSelector]:
    """Check what loop_factory made and move it onto a GoSelector."""
    if loop is None:
        selector = GoSelector()
        return asyncio.SelectorEventLoop(selector), selector
    if not isinstance(loop, selector_events.BaseSelectorEventLoop):
        close = getattr(loop, "close", None)
        if callable(close) and not getattr(loop, "is_running", lambda: False)():
            close()
        raise TypeError(
            "loop_factory must return an asyncio.SelectorEventLoop (aioguest runs the "
            f"loop's selector on its Go poller); it returned {type(loop).__qualname__}"
        )
    if loop.is_closed():
        raise ValueError("loop_factory returned a closed event loop")
    if loop.is_running():
        raise ValueError("loop_factory returned an event loop that is already running")
    # BaseSelectorEventLoop keeps its selector in ``_selector`` (so since
    # Python 3.4).  A loop built with its own selector moves to ours, with
    # every registration it already made (its self-pipe, at least).
    current = loop._selector  # type: ignore[attr-defined]
    if isinstance(current, GoSelector):
        if current.guest_hook is not None:
            raise ValueError("this event loop is already running as a guest")
        return loop, current
    selector = GoSelector()
    try:
        for key in list(current.get_map().values()):
            selector.register(key.fileobj, key.events, key.data)
    except BaseException:
        selector.close()
        raise
    loop._selector = selector  # type: ignore[attr-defined]
    current.close()
    return loop, selector


def start_guest_run(
    coro: Coroutine[Any, Any, T],
    *,
    run_sync_soon_threadsafe: _HostCallback,
    done_callback: Callable[[outcome.Outcome[T]], object],
    run_sync_soon_not_threadsafe: _HostCallback | None = None,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
    poller_watcher: PollerWatcher | None = None,
) -> asyncio.Task[T] | None:
    """Start running *coro* as an asyncio guest of another event loop.

    Runs *coro* exactly as ``asyncio.run(coro, debug=debug,
    loop_factory=loop_factory)`` would, but on the calling (host) thread in
    short turns the host schedules: ``run_sync_soon_threadsafe(fn)`` and
    ``run_sync_soon_not_threadsafe(fn)`` must arrange for ``fn()`` to be
    called soon on the host thread (the first from any thread, the second
    only from the host thread; it defaults to the first).  The blocking wait
    for I/O and timers happens on a worker thread in aioguest's Go library.

    When the run is over (the main task finished and asyncio.run's teardown
    is done) ``done_callback`` is called on the host thread with an
    :class:`outcome.Outcome` holding the coroutine's result or exception.

    Returns the main :class:`asyncio.Task`, or ``None`` if ``loop_factory``
    raised (``done_callback`` then gets that error).  ``time_slice`` bounds
    (in seconds) how long one turn runs ready guest callbacks before
    handing the thread back to the host.  A turn may also block the host
    thread briefly itself: when asyncio's next timer is due within
    :data:`aioguest.turn.HOST_WAIT_LEAD` (0.3 ms), the turn waits for it in
    the kernel rather than handing the wait off, so that the timer fires
    when due.

    ``poller_watcher`` (an :class:`aioguest.turn.PollerWatcher`) is for hosts
    whose own loop can watch a file descriptor and run a timer: the guest
    then waits in the host's loop, watching the Go poller's descriptor,
    and no worker thread is started.  The host adapters in
    :mod:`aioguest.hosts` pass one where their toolkit allows it.
    """
    try:
        if not callable(run_sync_soon_threadsafe):
            raise TypeError("run_sync_soon_threadsafe must be callable")
        if not callable(done_callback):
            raise TypeError("done_callback must be callable")
        if run_sync_soon_not_threadsafe is None:
            run_sync_soon_not_threadsafe = run_sync_soon_threadsafe
        elif not callable(run_sync_soon_not_threadsafe):
            raise TypeError("run_sync_soon_not_threadsafe must be callable or None")
        if loop_factory is not None and not callable(loop_factory):
            raise TypeError("loop_factory must be callable or None")
        if debug is not None and not isinstance(debug, bool):
            raise TypeError("debug must be True, False or None")
        if not isinstance(time_slice, (int, float)) or not time_slice > 0:
            raise ValueError("time_slice must be a positive number of seconds")
        if poller_watcher is not None and not all(
            callable(getattr(poller_watcher, name, None))
            for name in ("watch", "unwatch", "call_later")
        ):
            raise TypeError("poller_watcher must have watch, unwatch and call_later methods")
        if not asyncio.iscoroutine(coro):
            raise ValueError(f"a coroutine was expected, got {coro!r}")
        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                "start_guest_run() cannot be called from a running asyncio event loop: "
                "the guest would share the thread with it (use a host adapter made for "
                "asyncio hosts instead)"
            )
    except BaseException:
        _close_coroutine(coro)
        raise

    if _close_on_main_thread and threading.current_thread() is threading.main_thread():
        _close_deferred_runs()
    try:
        made = loop_factory() if loop_factory is not None else None
    except Exception as exc:
        # The run failed before its task existed: that is an outcome for
        # done_callback, delivered on the host thread like any other.
        _close_coroutine(coro)
        error: outcome.Outcome[T] = outcome.Error(exc)

        def report() -> None:
            done_callback(error)

        run_sync_soon_not_threadsafe(report)
        return None
    try:
        loop, selector = _prepare_loop(made)
    except BaseException:
        _close_coroutine(coro)
        raise

    try:
        if debug is not None:
            loop.set_debug(debug)
        run = GuestRun(
            coro,
            loop,
            selector,
            run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe,
            done_callback,
            float(time_slice),
            poller_watcher,
        )
    except BaseException:
        _close_coroutine(coro)
        if not loop.is_closed():
            loop.close()
        raise
    return run.task


def _close_coroutine(coro: object) -> None:
    close = getattr(coro, "close", None)
    if asyncio.iscoroutine(coro) and callable(close):
        close()
