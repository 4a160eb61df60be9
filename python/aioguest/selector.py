"""A :class:`selectors.BaseSelector` whose waiting happens in the Go poller.

Used on its own, :class:`GoSelector` behaves like :class:`selectors.EpollSelector`
and can be handed to ``asyncio.SelectorEventLoop``.  In guest mode the guest
run installs itself as the selector's *guest hook*: ``select()`` then never
blocks the host thread; the run decides whether to poll, to end the turn, or
to hand the wait to the worker thread (see ``run.py``).
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import select
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey
from typing import TYPE_CHECKING, Any

from . import _native
from ._native import EVENT

if TYPE_CHECKING:
    from .handoff import Handoff

__all__ = ["GoSelector"]

_Ready = list[tuple[SelectorKey, int]]

# File descriptors are C ints.  A bigger number must be refused before it
# reaches ctypes, which wraps an int64 argument modulo 2**64 without a word
# (2**64 + 5 would register fd 5).
_MAX_FD = 2**31 - 1

# A timeout this long is "forever" for any practical purpose; the Go side
# resumes its kernel wait in chunks until the deadline, so no overflow.
_MAX_TIMEOUT_NS = 2**62


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def timeout_to_ns(timeout: float | None) -> int:
    """Seconds (``None`` = no limit, <= 0 = poll) to the ABI's nanoseconds."""
    if timeout is None:
        return -1
    if timeout != timeout:
        raise ValueError("timeout must not be NaN")
    if timeout <= 0:
        return 0
    if timeout >= _MAX_TIMEOUT_NS / 1e9:
        return _MAX_TIMEOUT_NS
    # Round up: asyncio computes the timeout from its earliest timer, and a
    # wait that ends a hair early makes it spin through one more empty wait.
    return math.ceil(timeout * 1e9)


class _KeyMap(Mapping[Any, SelectorKey]):
    """The read-only view returned by :meth:`GoSelector.get_map`."""

    def __init__(self, selector: GoSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._fd_to_key)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        fd = self._selector._fileobj_lookup(fileobj)
        try:
            return self._selector._fd_to_key[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Iterator[int]:
        return iter(self._selector._fd_to_key)


# Selectors whose poll() may answer "nothing ready" without calling Go.  A
# forked child must not take that shortcut: the inherited epoll instance
# still works there, but every use of the poller must fail loudly, as the
# calls into Go do (see _native).
_with_ready_check: weakref.WeakSet[GoSelector] = weakref.WeakSet()


def _no_ready_checks_after_fork() -> None:
    for sel in list(_with_ready_check):
        sel._ready_check = None
    _with_ready_check.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_no_ready_checks_after_fork)


class GoSelector(selectors.BaseSelector):
    """A selector on aioguest's Go poller (epoll on Linux)."""

    def __init__(self) -> None:
        native = _native.load()
        self._native = native
        self._quick = native.quick
        # Calls through ``quick`` hold the GIL for their whole duration, so
        # no other Python thread can run one at the same time: one message
        # buffer serves them all.  The blocking wait gets its own.
        self._err = _native.errbuf()
        self._wait_err = _native.errbuf()
        handle = ctypes.c_void_p()
        rc = self._quick.poller_open(ctypes.byref(handle), self._err, len(self._err))
        if rc < 0:
            _native.raise_error(rc, self._err, "cannot open the Go poller")
        self._handle: int | None = handle.value
        self._fd_to_key: dict[int, SelectorKey] = {}
        # Every (re)registration of an fd gets a fresh tag, echoed back in
        # its readiness records; a record whose tag is not the fd's current
        # one belongs to an earlier registration (the fd was closed and its
        # number reused while a worker's wait was in flight) and is dropped.
        self._fd_to_tag: dict[int, int] = {}
        self._next_tag = 0
        self._map: _KeyMap | None = _KeyMap(self)
        self._cap = 0
        self._buf: Any = None
        self._view: memoryview | None = None
        self._grow(64)
        self._handoff: Handoff | None = None
        # Handoffs closed but not yet released (their worker could not be
        # joined at once), and the poller handle waiting for them.
        self._release_lock = threading.Lock()
        self._unreleased = 0
        self._orphan: int | None = None
        # poll(0) on the poller's descriptor: see poll().  Bound method of
        # a select.poll object, which holds the fd number only (no
        # ownership); it is dropped when the poller closes, before the
        # number can be reused.
        self._ready_check: Callable[[int], list[tuple[int, int]]] | None = None
        if hasattr(select, "poll"):
            checker = select.poll()
            checker.register(self.fileno(), select.POLLIN)
            self._ready_check = checker.poll
            _with_ready_check.add(self)
        #: Set by a guest run: replaces the blocking wait of ``select()``.
        self.guest_hook: Callable[[float | None], _Ready] | None = None

    # -- registration ---------------------------------------------------

    def _fileobj_lookup(self, fileobj: Any) -> int:
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            # A closed socket's fileno() is -1; find it by identity so it
            # can still be unregistered, as the stdlib selectors allow.
            for key in self._fd_to_key.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        if not events or events & ~(EVENT_READ | EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        key = SelectorKey(fileobj, self._fileobj_lookup(fileobj), events, data)
        if key.fd in self._fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {key.fd}) is already registered")
        if key.fd > _MAX_FD:
            raise OverflowError("Python int too large to convert to C int")  # as EpollSelector
        handle = self._live_handle()
        self._next_tag = tag = (self._next_tag + 1) & 0xFFFFFFFF
        rc = self._quick.poller_add(handle, key.fd, events, tag, self._err, len(self._err))
        if rc < 0:
            _native.raise_error(rc, self._err, f"cannot register fd {key.fd}")
        self._fd_to_key[key.fd] = key
        self._fd_to_tag[key.fd] = tag
        if len(self._fd_to_key) > self._cap:
            self._grow(self._cap * 2)
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        try:
            key = self._fd_to_key.pop(self._fileobj_lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        del self._fd_to_tag[key.fd]
        handle = self._handle
        if handle is not None:
            # The kernel forgets an fd by itself when its last reference is
            # closed, so EBADF/ENOENT here only mean "already gone"; the
            # stdlib's EpollSelector ignores them the same way.
            self._quick.poller_remove(handle, key.fd, self._err, len(self._err))
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            if not events or events & ~(EVENT_READ | EVENT_WRITE):
                raise ValueError(f"Invalid events: {events!r}")
            handle = self._live_handle()
            tag = self._fd_to_tag[key.fd]
            rc = self._quick.poller_modify(handle, key.fd, events, tag, self._err, len(self._err))
            if rc < 0:
                # Same as the stdlib: a registration the kernel refused to
                # change is dropped rather than left half-updated.  Build
                # the error first: unregister's own call reuses the buffer.
                try:
                    _native.raise_error(rc, self._err, f"cannot modify fd {key.fd}")
                except BaseException:
                    self.unregister(fileobj)
                    raise
        elif data is key.data:
            return key
        key = key._replace(events=events, data=data)
        self._fd_to_key[key.fd] = key
        return key

    def get_map(self) -> Mapping[Any, SelectorKey]:
        return self._map  # type: ignore[return-value]  # None once closed, like the stdlib

    def get_key(self, fileobj: Any) -> SelectorKey:
        mapping = self._map
        if mapping is None:
            raise RuntimeError("Selector is closed")
        return mapping[fileobj]

    # -- waiting --------------------------------------------------------

    def select(self, timeout: float | None = None) -> _Ready:
        hook = self.guest_hook
        if hook is not None:
            return hook(timeout)
        return self.wait(timeout)

    def wait(self, timeout: float | None) -> _Ready:
        """Block the calling thread in the kernel (GIL released)."""
        ns = timeout_to_ns(timeout)
        if ns == 0:
            return self.poll()
        handle = self._live_handle()
        err = self._wait_err
        deadline = time.monotonic_ns() + ns if ns > 0 else 0
        while True:
            n = self._native.blocking.poller_wait(handle, self._buf, self._cap, ns, err, len(err))
            if n != -errno.EINTR:
                break
            # A signal: Go hands it back instead of retrying, so that
            # Python runs its handlers now (at the next bytecode boundary,
            # in this loop), and a raising one (KeyboardInterrupt) ends
            # the wait as it ends EpollSelector.select (PEP 475).  Then
            # wait for the time left.
            if ns > 0:
                ns = max(deadline - time.monotonic_ns(), 0)
            handle = self._live_handle()
        if n < 0:
            _native.raise_error(n, err, "poll failed")
        return self.decode(n) if n else []

    def poll(self) -> _Ready:
        """Collect what is ready now, without blocking (GIL kept)."""
        handle = self._live_handle()
        check = self._ready_check
        if check is not None and not check(0):
            # The poller's own descriptor polls readable exactly when a
            # wait would return something (see fileno).  Asking the kernel
            # that directly costs one poll(2) from C, about what a native
            # loop's epoll_wait(0) costs per iteration; the call into Go
            # (ctypes conversions, cgo entry, the poller's bookkeeping) is
            # then only paid when there is something to collect, which a
            # busy guest's iterations mostly do not have.
            return []
        err = self._err
        n = self._quick.poller_wait(handle, self._buf, self._cap, 0, err, len(err))
        if n < 0:
            _native.raise_error(n, err, "poll failed")
        return self.decode(n) if n else []

    def decode(self, n: int, view: memoryview | None = None) -> _Ready:
        """Turn the first *n* records of the event buffer (or of *view*, a
        byte view of another one) into select() output."""
        fd_to_key = self._fd_to_key
        fd_to_tag = self._fd_to_tag
        ready = []
        if view is None:
            view = self._view
        assert view is not None
        for fd, events, tag in EVENT.iter_unpack(view[: n * EVENT.size]):
            key = fd_to_key.get(fd)
            if key is not None and fd_to_tag[fd] == tag:
                events &= key.events
                if events:
                    ready.append((key, events))
        return ready

    def fileno(self) -> int:
        """The poller's own descriptor, as ``EpollSelector.fileno()``.

        It polls readable whenever :meth:`poll` would return something (or
        a :meth:`wake` is pending), so a host loop can watch it in place of
        a thread blocked in :meth:`wait`.  Don't close it: it belongs to the
        selector.
        """
        err = self._err
        fd = self._quick.poller_fd(self._live_handle(), err, len(err))
        if fd < 0:
            _native.raise_error(fd, err, "the poller has no pollable descriptor")
        return int(fd)

    def wake(self) -> None:
        """Make a thread blocked in :meth:`wait` return; safe from any thread."""
        handle = self._handle
        if handle is not None:
            self._quick.poller_wake(handle, None, 0)

    # -- guest-mode plumbing -------------------------------------------

    @property
    def capacity(self) -> int:
        """How many records the event buffer holds (>= registered fds)."""
        return self._cap

    @property
    def buffer(self) -> Any:
        return self._buf

    def open_handoff(self) -> Handoff:
        """Create the host/worker handoff on this poller (one per selector)."""
        from .handoff import Handoff

        if self._handoff is not None:
            raise RuntimeError("this selector already has a handoff")
        self._handoff = Handoff(self._native, self._live_handle())
        return self._handoff

    def _grow(self, cap: int) -> None:
        cap = max(cap, 1)
        self._buf = ctypes.create_string_buffer(cap * EVENT.size)
        self._view = memoryview(self._buf).cast("B")
        self._cap = cap

    def _live_handle(self) -> int:
        handle = self._handle
        if handle is None:
            raise ValueError("I/O operation on closed selector")
        return handle

    # -- closing --------------------------------------------------------

    def close_handoff(self) -> None:
        """Stop the handoff's worker and release the handoff (if any); the
        selector stays usable and may open a new one."""
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            with self._release_lock:
                self._unreleased += 1
            handoff.close(after=self._handoff_released)

    def _handoff_released(self) -> None:
        # Runs where the handoff was released: here, or on its worker
        # thread if that could not be joined in time.
        with self._release_lock:
            self._unreleased -= 1
            handle = self._orphan if self._unreleased == 0 else None
            if handle is not None:
                self._orphan = None
        if handle is not None:
            self._close_poller(handle)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        self._ready_check = None
        self._fd_to_key.clear()
        self._fd_to_tag.clear()
        self._map = None
        self.guest_hook = None
        if handle is None:
            return
        self.close_handoff()
        with self._release_lock:
            if self._unreleased:
                # The poller must outlive every handoff that waits on it
                # (Go refuses to close it before); a worker that could not
                # be joined yet closes it on its way out.
                self._orphan = handle
                return
        self._close_poller(handle)

    def _close_poller(self, handle: int) -> None:
        err = _native.errbuf()
        rc = self._native.blocking.poller_close(handle, err, len(err))
        if rc < 0:
            _native.raise_error(rc, err, "cannot close the Go poller")

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"{len(self._fd_to_key)} fds"
        return f"<{type(self).__name__} {state}>"
