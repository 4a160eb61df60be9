"""The ctypes binding of libaioguest (see ``capi/aioguest.h``).

Loading a Go ``c-shared`` library starts the Go runtime and its threads at
once, and the Go runtime does not survive ``fork()``.  So nothing here runs at
import time: :func:`load` opens the library on first use, and remembers the
process id it was opened in so a forked child gets a clear error instead of a
hang inside a Go call that waits for goroutines the child does not have.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
from ctypes import c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32, c_void_p
from typing import Any, NoReturn

__all__ = [
    "ABI_VERSION",
    "EVENT",
    "READ",
    "WRITE",
    "AioguestError",
    "Native",
    "load",
]

ABI_VERSION = 2

READ = 1
WRITE = 2

# One ag_event record: int64 fd, uint32 events, uint32 tag, little-endian.
EVENT = struct.Struct("<qII")

ERR_BASE = -10000
EINVAL = -10001
EBADHANDLE = -10002
EEXIST = -10003
ENOENT = -10004
EBUSY = -10005
ECLOSED = -10006
EUNSUPPORTED = -10007
EINTERNAL = -10008

_ERRLEN = 512

_LIBRARY_NAMES = {
    "darwin": "libaioguest.dylib",
    "win32": "aioguest.dll",
}


class AioguestError(RuntimeError):
    """A failure inside libaioguest that has no closer Python equivalent.

    ``code`` is the negative ``AG_E*`` code from ``aioguest.h``.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def raise_error(rc: int, err: Any, what: str) -> NoReturn:
    """Turn a negative return code and its message into the Python exception
    the ``selectors`` module would raise for the same condition."""
    detail = err.value.decode("utf-8", "replace") if err is not None else ""
    message = f"{what}: {detail}" if detail else what
    if ERR_BASE < rc < 0:
        code = -rc
        raise OSError(code, f"{os.strerror(code)} ({message})")
    if rc in (EEXIST, ENOENT):
        raise KeyError(message)
    if rc == EINVAL:
        raise ValueError(message)
    raise AioguestError(rc, message)


class _Functions:
    """The library's entry points with their C signatures, from one handle."""

    def __init__(self, dll: ctypes.CDLL) -> None:
        p, e = c_void_p, (c_char_p, c_size_t)
        self.abi_version = self._fn(dll, "ag_abi_version", c_int)
        self.poller_open = self._fn(dll, "ag_poller_open", c_int, ctypes.POINTER(p), *e)
        self.poller_close = self._fn(dll, "ag_poller_close", c_int, p, *e)
        self.poller_add = self._fn(dll, "ag_poller_add", c_int, p, c_int64, c_uint32, c_uint32, *e)
        self.poller_modify = self._fn(
            dll, "ag_poller_modify", c_int, p, c_int64, c_uint32, c_uint32, *e
        )
        self.poller_remove = self._fn(dll, "ag_poller_remove", c_int, p, c_int64, *e)
        self.poller_wait = self._fn(dll, "ag_poller_wait", c_int, p, p, c_int32, c_int64, *e)
        self.poller_wake = self._fn(dll, "ag_poller_wake", c_int, p, *e)
        self.poller_fd = self._fn(dll, "ag_poller_fd", c_int, p, *e)
        self.handoff_open = self._fn(dll, "ag_handoff_open", c_int, p, ctypes.POINTER(p), *e)
        self.handoff_shutdown = self._fn(dll, "ag_handoff_shutdown", c_int, p, *e)
        self.handoff_close = self._fn(dll, "ag_handoff_close", c_int, p, *e)
        self.handoff_request = self._fn(dll, "ag_handoff_request", c_int, p, c_int64, c_int32, *e)
        self.handoff_request_into = self._fn(
            dll, "ag_handoff_request_into", c_int, p, c_int64, p, c_int32, *e
        )
        self.handoff_next = self._fn(dll, "ag_handoff_next", c_int, p, *e)
        self.handoff_take = self._fn(dll, "ag_handoff_take", c_int, p, p, c_int32, *e)
        self.handoff_wake = self._fn(dll, "ag_handoff_wake", c_int, p, *e)

    @staticmethod
    def _fn(dll: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
        fn = getattr(dll, name)
        fn.restype = restype
        fn.argtypes = argtypes
        return fn


class Native:
    """The loaded library, reached through two ctypes handles.

    ``blocking`` (a ``CDLL``) releases the GIL around each call: it is for
    calls that may sleep in the kernel, so other Python threads (above all
    the host's) keep running.  ``quick`` (a ``PyDLL`` on the same library)
    keeps the GIL: for calls that never block, dropping and re-taking the
    GIL costs more than the call itself, and re-taking it can stall behind
    another thread for a whole switch interval.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.dll = ctypes.CDLL(path)
        self.blocking = _Functions(self.dll)
        self.quick = _Functions(ctypes.PyDLL(path))
        version = self.quick.abi_version()
        if version != ABI_VERSION:
            raise ImportError(f"{path} speaks ABI {version}, this aioguest needs {ABI_VERSION}")

    def disable_after_fork(self) -> None:
        """In a forked child: make every entry point fail fast instead of hang.

        Go's runtime threads do not exist in the child, so most Go calls
        would block forever.  Objects inherited from the parent (an unclosed
        event loop's selector, say) can still be reached, and garbage
        collection closes them; so the stubs are installed on the shared
        function tables that every object holds: calls raise a clear error,
        and tearing down (remove, shutdown, close) succeeds without touching
        the kernel objects.  Those are shared with the parent, not copied: an
        EPOLL_CTL_DEL here would silently drop the parent's registration.
        """
        for functions in (self.quick, self.blocking):
            for name in list(vars(functions)):
                if name.endswith(("_remove", "_close", "_shutdown")):
                    setattr(functions, name, _forgotten)
                else:
                    setattr(functions, name, _forked)

    def check_pid(self) -> None:
        # Go's runtime threads do not exist in a forked child; any Go call
        # that needs another goroutine (most of them) would hang forever.
        if os.getpid() != self.pid:
            _forked()


def _forked(*args: object) -> NoReturn:
    raise RuntimeError(
        "aioguest cannot be used in a process forked from one that had "
        "already loaded its Go library; start the child with the "
        "'spawn' or 'forkserver' method, or use aioguest only in the child"
    )


def _forgotten(*args: object) -> int:
    return 0


_lock = threading.Lock()
_native: Native | None = None


def _after_fork_in_child() -> None:
    native = _native
    if native is not None:
        native.disable_after_fork()


def library_path() -> str:
    override = os.environ.get("AIOGUEST_LIBRARY")
    if override:
        return override
    name = _LIBRARY_NAMES.get(sys.platform, "libaioguest.so")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


def load() -> Native:
    """Return the library, loading it on first use (thread-safe)."""
    global _native
    native = _native
    if native is None:
        with _lock:
            native = _native
            if native is None:
                path = library_path()
                if not os.path.exists(path):
                    raise ImportError(
                        f"aioguest's Go library is missing at {path}; "
                        "reinstall aioguest (pip install .) or run 'make lib'"
                    )
                native = _native = Native(path)
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_after_fork_in_child)
    native.check_pid()
    return native


def errbuf() -> Any:
    return ctypes.create_string_buffer(_ERRLEN)
