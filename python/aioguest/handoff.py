"""The host side of the Go handoff, and the worker thread that waits.

The worker is a Python thread that lends itself to Go: it spends its life
blocked in ``ag_handoff_next`` (ctypes releases the GIL for the call), where
Go performs the kernel wait the host asked for.  When the wait ends the call
returns, and the same thread, which already owns a Python thread state,
hands the host one callback.  ``docs/design.md`` has the measurements that
chose this over a Go-created thread calling into Python.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from . import _native
from ._native import EVENT
from .selector import timeout_to_ns

__all__ = ["Handoff"]

# How long closing waits for the worker to leave before letting it clean up
# by itself.  The worker only lingers if the host's run_sync_soon_threadsafe
# is blocking it, which a correct host never does for long.
_JOIN_TIMEOUT = 5.0


class Handoff:
    """One Go handoff plus its worker thread."""

    def __init__(self, native: _native.Native, poller: int) -> None:
        self._native = native
        self._quick = native.quick
        self._err = _native.errbuf()
        handle = ctypes.c_void_p()
        rc = self._quick.handoff_open(poller, ctypes.byref(handle), self._err, len(self._err))
        if rc < 0:
            _native.raise_error(rc, self._err, "cannot open the Go handoff")
        self._handle: int = handle.value or 0
        self._lock = threading.Lock()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._worker_done = False
        self._after_release: Callable[[], None] | None = None
        self._release_pending = False
        # The host's buffer for the records the worker delivers (see
        # request), and how many it delivered for the wait just notified:
        # None when they must be taken instead (a failed wait).
        self._cap = 0
        self._buf: Any = None
        self._view: memoryview | None = None
        self._delivered: int | None = None

    def start(self, notify: Callable[[], bool], name: str = "aioguest-worker") -> None:
        """Start the worker: after each completed wait it calls ``notify()``;
        it exits when ``notify`` returns False or the handoff is closed."""
        if self._worker is not None:
            raise RuntimeError("the worker is already running")
        self._worker = threading.Thread(target=self._work, args=(notify,), name=name, daemon=True)
        self._worker.start()

    # -- host side ------------------------------------------------------

    def request(self, timeout: float | None, max_events: int) -> None:
        """Start a wait for up to *max_events* records; collect them with
        :meth:`collect` once the worker has notified."""
        if max_events > self._cap or self._buf is None:
            # Only between waits: the worker writes into the buffer while
            # a wait is in flight.  Sized by the selector's capacity, so
            # this happens as registrations grow, not per wait.
            cap = max(max_events, 1)
            self._buf = ctypes.create_string_buffer(cap * EVENT.size)
            self._view = memoryview(self._buf).cast("B")
            self._cap = cap
        self._delivered = None
        # The worker delivers the records into our buffer itself, on the
        # way out of its wait: taking them with a call into Go here would
        # put that call on every wake-up's path (docs/performance.md).
        rc = self._quick.handoff_request_into(
            self._handle, timeout_to_ns(timeout), self._buf, max_events, self._err, len(self._err)
        )
        if rc < 0:
            _native.raise_error(rc, self._err, "cannot start a wait")

    def collect(self) -> tuple[int, memoryview]:
        """After the worker notified: how many records the wait produced,
        and a byte view of the buffer that holds them."""
        n = self._delivered
        self._delivered = None
        if n is None:
            # Not delivered: the wait failed, and take raises its error.
            n = self.take(self._buf, self._cap)
        assert self._view is not None
        return n, self._view

    def take(self, buf: Any, cap: int) -> int:
        rc: int = self._quick.handoff_take(self._handle, buf, cap, self._err, len(self._err))
        if rc < 0:
            _native.raise_error(rc, self._err, "cannot collect the wait's events")
        return rc

    def wake(self) -> None:
        rc = self._quick.handoff_wake(self._handle, self._err, len(self._err))
        if rc < 0:
            _native.raise_error(rc, self._err, "cannot wake the worker")

    # -- worker ---------------------------------------------------------

    def _work(self, notify: Callable[[], bool]) -> None:
        next_wait = self._native.blocking.handoff_next
        err = _native.errbuf()
        try:
            # The handle stays valid until this thread is done: close()
            # only shuts the handoff down (next returns 0) until it has
            # joined us, so there is no window where we could call into a
            # released handle whose address malloc already gave to another.
            while True:
                rc = next_wait(self._handle, err, len(err))
                if rc < 1:
                    break
                # Read by the host only once notify() has reached it.
                self._delivered = rc - 2 if rc >= 2 else None
                if not notify():
                    break
        finally:
            with self._lock:
                self._worker_done = True
                release = self._release_pending
            if release:
                self._release()

    # -- closing --------------------------------------------------------

    def close(self, after: Callable[[], None] | None = None) -> None:
        """Stop the worker and release the handoff, then call ``after``.

        Safe from any thread, the worker's own included: when the worker
        cannot be joined here (we are the worker, or it is held up), the
        release happens as the worker exits.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._after_release = after
        self._quick.handoff_shutdown(self._handle, None, 0)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(_JOIN_TIMEOUT)
        with self._lock:
            release_now = worker is None or self._worker_done
            self._release_pending = not release_now
        if release_now:
            self._release()

    def _release(self) -> None:
        err = _native.errbuf()
        rc = self._native.quick.handoff_close(self._handle, err, len(err))
        after, self._after_release = self._after_release, None
        if after is not None:
            after()
        if rc < 0:
            _native.raise_error(rc, err, "cannot close the Go handoff")
