"""Bad input to GoSelector raises what selectors.EpollSelector raises.

Every scenario below runs on both selectors, and the outcome (exception
type and errno, or the normalised return value) must be the same.  The
stdlib is the reference: where it and GoSelector differ on purpose, the
scenario is listed in DIFFERENCES with the reason and GoSelector's own
expected outcome, so a change on either side shows up here.

The C ABI underneath is checked by calling it through ctypes with handles
that are NULL, made up, closed or of the wrong kind, and with message
buffers that are too small: each call must return its error code and a
message, and never crash.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import selectors
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from selectors import EVENT_READ, EVENT_WRITE
from typing import Any

import pytest

import aioguest
from aioguest import _native

Outcome = tuple[Any, ...]


def outcome_of(fn: Callable[[], Any]) -> Outcome:
    try:
        result = fn()
    except Exception as exc:
        return (type(exc), getattr(exc, "errno", None))
    return ("returned", result)


class Env:
    """What one scenario needs: a selector and a socketpair, closed after."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        self.a, self.b = socket.socketpair()
        self._cleanup: list[Callable[[], object]] = []

    def closed_fd(self) -> int:
        # Nothing opens an fd between this close and the scenario's use.
        fd = os.dup(self.a.fileno())
        os.close(fd)
        return fd

    def later(self, fn: Callable[[], object]) -> None:
        self._cleanup.append(fn)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            try:
                fn()
            except OSError:
                pass
        self.sel.close()
        self.a.close()
        self.b.close()


def regular_file(env: Env) -> Any:
    f = tempfile.TemporaryFile()
    env.later(f.close)
    return f


def directory_fd(env: Env) -> int:
    fd = os.open(tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY)
    env.later(lambda: os.close(fd))
    return fd


def dev_null(env: Env) -> int:
    fd = os.open(os.devnull, os.O_RDONLY)
    env.later(lambda: os.close(fd))
    return fd


def closed_socket(env: Env) -> socket.socket:
    s = socket.socket()
    s.close()  # fileno() is now -1
    return s


class FilenoRaises:
    def fileno(self) -> int:
        raise OSError(errno.EBADF, "no fd here")


class FilenoNotInt:
    def fileno(self) -> str:
        return "3"


class FilenoNegative:
    def fileno(self) -> int:
        return -7


def registered_then_closed(env: Env) -> int:
    fd = os.dup(env.a.fileno())
    env.sel.register(fd, EVENT_READ)
    os.close(fd)
    return fd


def modify_after_close(env: Env) -> Outcome:
    fd = registered_then_closed(env)
    result = outcome_of(lambda: env.sel.modify(fd, EVENT_WRITE))
    # The stdlib drops a registration the kernel refused to modify.
    return result + (fd in env.sel.get_map(),)


def unregister_after_close(env: Env) -> Outcome:
    fd = registered_then_closed(env)
    key = env.sel.unregister(fd)
    return (key.fd == fd, fd in env.sel.get_map())


def register_reused_number(env: Env) -> Outcome:
    # Closed without unregistering, the number reused by a new fd: the old
    # key still holds the number, so registering the new fd is a KeyError
    # (the caller must unregister first), as with the stdlib.
    fd = registered_then_closed(env)
    fd2 = os.dup(env.a.fileno())
    env.later(lambda: os.close(fd2))
    assert fd2 == fd
    return outcome_of(lambda: env.sel.register(fd2, EVENT_READ))


def closed_socket_stays_known(env: Env) -> Outcome:
    c, d = socket.socketpair()
    env.later(d.close)
    env.sel.register(c, EVENT_READ, "c")
    c.close()
    # Found by identity although its fileno() is now -1.
    return (env.sel.get_key(c).data, env.sel.unregister(c).data, len(env.sel.get_map()))


def closed_registered_fd_not_reported(env: Env) -> Outcome:
    c, d = socket.socketpair()
    env.sel.register(c, EVENT_READ)
    d.send(b"x")
    c.close()
    d.close()
    return (env.sel.select(0),)


def modify_invalid_events_keeps_key(env: Env) -> Outcome:
    env.sel.register(env.a, EVENT_READ)
    got = outcome_of(lambda: env.sel.modify(env.a, 0))
    return got[:1] + (env.sel.get_key(env.a).events,)


def ready_fd_with(timeout: Any) -> Callable[[Env], Any]:
    def scenario(env: Env) -> Any:
        env.sel.register(env.a, EVENT_READ)
        env.b.send(b"x")
        return [(key.fileobj is env.a, events) for key, events in env.sel.select(timeout)]

    return scenario


def with_sel(op: Callable[[selectors.BaseSelector], Any]) -> Callable[[Env], Any]:
    return lambda env: op(env.sel)


SCENARIOS: dict[str, Callable[[Env], Any]] = {
    # -- fds that are not valid, not open, or not pollable
    "register negative int": with_sel(lambda s: s.register(-5, EVENT_READ)),
    "register closed int fd": lambda e: e.sel.register(e.closed_fd(), EVENT_READ),
    "register closed socket": lambda e: e.sel.register(closed_socket(e), EVENT_READ),
    "register regular file": lambda e: e.sel.register(regular_file(e), EVENT_READ),
    "register directory": lambda e: e.sel.register(directory_fd(e), EVENT_READ),
    "register /dev/null": lambda e: e.sel.register(dev_null(e), EVENT_WRITE),
    "register fd above INT_MAX": with_sel(lambda s: s.register(2**31, EVENT_READ)),
    "register fd of 2**40": with_sel(lambda s: s.register(2**40, EVENT_READ)),
    "register 2**64 + an open fd": lambda e: e.sel.register(2**64 + e.a.fileno(), EVENT_READ),
    "register the selector in itself": lambda e: e.sel.register(e.sel, EVENT_READ),
    # -- file objects whose fileno() misbehaves
    "register None": with_sel(lambda s: s.register(None, EVENT_READ)),
    "register str": with_sel(lambda s: s.register("3", EVENT_READ)),
    "register float": with_sel(lambda s: s.register(3.0, EVENT_READ)),
    "fileno() raises OSError": with_sel(lambda s: s.register(FilenoRaises(), EVENT_READ)),
    "fileno() returns negative": with_sel(lambda s: s.register(FilenoNegative(), EVENT_READ)),
    "fileno() returns str": lambda e: type(e.sel.register(FilenoNotInt(), EVENT_READ).fd),
    # -- events
    "register events 0": lambda e: e.sel.register(e.a, 0),
    "register events None": lambda e: e.sel.register(e.a, None),
    "register events 4": lambda e: e.sel.register(e.a, 4),
    "register events -1": lambda e: e.sel.register(e.a, -1),
    "register events 2**40": lambda e: e.sel.register(e.a, 2**40),
    "register events float": lambda e: e.sel.register(e.a, 1.0),
    "register events str": lambda e: e.sel.register(e.a, "1"),
    "modify events str": lambda e: (e.sel.register(e.a, EVENT_READ), e.sel.modify(e.a, "x")),
    "modify invalid events": modify_invalid_events_keeps_key,
    # -- unknown keys
    "unregister unknown": lambda e: e.sel.unregister(e.a),
    "unregister negative": with_sel(lambda s: s.unregister(-1)),
    "unregister str": with_sel(lambda s: s.unregister("x")),
    "unregister 2**70": with_sel(lambda s: s.unregister(2**70)),
    "modify unknown": lambda e: e.sel.modify(e.a, EVENT_READ),
    "modify negative": with_sel(lambda s: s.modify(-1, EVENT_READ)),
    "get_key unknown": lambda e: e.sel.get_key(e.a),
    "get_key negative": with_sel(lambda s: s.get_key(-1)),
    "get_key 2**70": with_sel(lambda s: s.get_key(2**70)),
    "get_map()[str]": with_sel(lambda s: s.get_map()["x"]),
    "register twice": lambda e: (e.sel.register(e.a, 1), e.sel.register(e.a.fileno(), 2)),
    # -- fds closed while registered
    "modify after the fd was closed": modify_after_close,
    "unregister after the fd was closed": unregister_after_close,
    "register a reused number": register_reused_number,
    "closed socket found by identity": closed_socket_stays_known,
    "closed fd is not reported": closed_registered_fd_not_reported,
    # -- timeouts
    "select timeout str": with_sel(lambda s: s.select("1")),
    "select timeout list": with_sel(lambda s: s.select([])),
    "select timeout nan": with_sel(lambda s: s.select(float("nan"))),
    "select timeout -inf": ready_fd_with(float("-inf")),
    "select timeout -1e300": ready_fd_with(-1e300),
    "select timeout inf": ready_fd_with(float("inf")),
    "select timeout 1e300": ready_fd_with(1e300),
    "select timeout 2**70": ready_fd_with(2**70),
}

# Where GoSelector deliberately differs: scenario -> (GoSelector's outcome, why).
DIFFERENCES: dict[str, tuple[Outcome, str]] = {
    # EpollSelector converts the timeout to int milliseconds for the kernel
    # and refuses what does not fit; the Go poller resumes its wait until
    # the deadline, so aioguest.h allows any timeout (inf is "no limit").
    "select timeout inf": (
        ("returned", [(True, EVENT_READ)]),
        "enormous timeouts are allowed (aioguest.h); EpollSelector overflows",
    ),
    "select timeout 1e300": (
        ("returned", [(True, EVENT_READ)]),
        "enormous timeouts are allowed (aioguest.h); EpollSelector overflows",
    ),
    "select timeout 2**70": (
        ("returned", [(True, EVENT_READ)]),
        "enormous timeouts are allowed (aioguest.h); EpollSelector overflows",
    ),
    # EpollSelector.modify checks nothing: modify(f, 0) leaves a key with
    # no events (and modify(f, 4) one with a meaningless bit).  GoSelector
    # follows BaseSelector's contract (modify = unregister + register,
    # register raises ValueError) and keeps the old key.
    "modify invalid events": (
        ("returned", (ValueError, EVENT_READ)),
        "BaseSelector's contract; EpollSelector does not validate modify()",
    ),
}


def run_scenario(make: Callable[[], selectors.BaseSelector], name: str) -> Outcome:
    env = Env(make())
    try:
        return outcome_of(lambda: SCENARIOS[name](env))
    finally:
        env.close()


def normalise(result: Outcome) -> Outcome:
    # A returned SelectorKey names fds and objects of its own run.
    if result[0] == "returned" and isinstance(result[1], selectors.SelectorKey):
        return ("returned", "SelectorKey")
    return result


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_bad_input_matches_epoll_selector(name):
    expected = normalise(run_scenario(selectors.EpollSelector, name))
    got = normalise(run_scenario(aioguest.GoSelector, name))
    if name in DIFFERENCES:
        go_outcome, why = DIFFERENCES[name]
        assert got == go_outcome, why
        assert expected != got, f"EpollSelector now agrees; drop {name!r} from DIFFERENCES"
    else:
        assert got == expected


def test_huge_fd_never_aliases_a_real_fd():
    """ctypes wraps an int64 argument modulo 2**64: 2**64 + fd would reach
    the kernel as fd itself and register it under a number that is not its
    own.  It must be refused before that, as EpollSelector refuses it."""
    sel = aioguest.GoSelector()
    a, b = socket.socketpair()
    try:
        with pytest.raises(OverflowError):
            sel.register(2**64 + a.fileno(), EVENT_READ)
        # nothing reached the kernel: the real fd registers normally
        sel.register(a, EVENT_READ)
        b.send(b"x")
        assert [key.fileobj for key, _ in sel.select(0)] == [a]
    finally:
        sel.close()
        a.close()
        b.close()


def test_error_messages_name_the_fd_and_the_call():
    with aioguest.GoSelector() as sel, tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as excinfo:
            sel.register(f, EVENT_READ)
        fd = f.fileno()
    message = str(excinfo.value)
    assert f"fd {fd}" in message and "ag_poller_add" in message


# ---------------------------------------------------------------------------
# the C ABI through ctypes


@pytest.fixture
def native() -> _native.Native:
    return _native.load()


def call(fn: Any, *args: Any, errlen: int = 256) -> tuple[int, str]:
    err = ctypes.create_string_buffer(max(errlen, 1))
    rc = fn(*args, err, errlen)
    return rc, err.value.decode("utf-8")


def open_poller(native: _native.Native) -> int:
    handle = ctypes.c_void_p()
    rc, msg = call(native.quick.poller_open, ctypes.byref(handle))
    assert rc == 0, msg
    assert handle.value
    return handle.value


def open_handoff(native: _native.Native, poller: int) -> int:
    handle = ctypes.c_void_p()
    rc, msg = call(native.quick.handoff_open, poller, ctypes.byref(handle))
    assert rc == 0, msg
    assert handle.value
    return handle.value


def poller_ops(native: _native.Native, h: int) -> dict[str, Callable[[], tuple[int, str]]]:
    q = native.quick
    buf = ctypes.create_string_buffer(16 * 4)
    out = ctypes.c_void_p()
    return {
        "poller_add": lambda: call(q.poller_add, h, 0, 1, 0),
        "poller_modify": lambda: call(q.poller_modify, h, 0, 1, 0),
        "poller_remove": lambda: call(q.poller_remove, h, 0),
        "poller_wait": lambda: call(q.poller_wait, h, buf, 4, 0),
        "poller_wake": lambda: call(q.poller_wake, h),
        "poller_fd": lambda: call(q.poller_fd, h),
        "handoff_open": lambda: call(q.handoff_open, h, ctypes.byref(out)),
        "poller_close": lambda: call(q.poller_close, h),
    }


def handoff_ops(native: _native.Native, h: int) -> dict[str, Callable[[], tuple[int, str]]]:
    q = native.quick
    buf = ctypes.create_string_buffer(16 * 4)
    return {
        "handoff_request": lambda: call(q.handoff_request, h, 0, 4),
        "handoff_request_into": lambda: call(q.handoff_request_into, h, 0, buf, 4),
        "handoff_take": lambda: call(q.handoff_take, h, buf, 4),
        "handoff_wake": lambda: call(q.handoff_wake, h),
        # Never blocks on a handle that is not a live handoff.
        "handoff_next": lambda: call(native.blocking.handoff_next, h),
        "handoff_shutdown": lambda: call(q.handoff_shutdown, h),
        "handoff_close": lambda: call(q.handoff_close, h),
    }


def assert_all_bad_handle(ops: dict[str, Callable[[], tuple[int, str]]]) -> None:
    for name, op in ops.items():
        rc, msg = op()
        assert rc == _native.EBADHANDLE, (name, rc, msg)
        assert "bad handle" in msg, (name, msg)


@pytest.fixture
def foreign_handles() -> Iterator[list[int]]:
    """Addresses that are no handle: NULL, small numbers, a live Python
    buffer (a real pointer into this process), and the top of memory."""
    buf = ctypes.create_string_buffer(64)
    yield [0, 1, 8, ctypes.addressof(buf), 2**64 - 1]


def test_foreign_handles_are_refused(native, foreign_handles):
    for h in foreign_handles:
        assert_all_bad_handle(poller_ops(native, h))
        assert_all_bad_handle(handoff_ops(native, h))


def test_wrong_kind_handles_are_refused(native):
    poller = open_poller(native)
    handoff = open_handoff(native, poller)
    try:
        ops = poller_ops(native, handoff)
        ops.pop("poller_close")  # checked below, after the others
        assert_all_bad_handle(ops)
        ops = handoff_ops(native, poller)
        assert_all_bad_handle(ops)
        assert call(native.quick.poller_close, handoff)[0] == _native.EBADHANDLE
    finally:
        assert call(native.quick.handoff_close, handoff)[0] == 0
        assert call(native.quick.poller_close, poller)[0] == 0


def test_closed_handles_and_double_close_are_refused(native):
    poller = open_poller(native)
    handoff = open_handoff(native, poller)
    rc, msg = call(native.quick.poller_close, poller)
    assert rc == _native.EBUSY and msg  # a handoff still uses it
    assert call(native.quick.handoff_shutdown, handoff) == (0, "")
    assert call(native.quick.handoff_shutdown, handoff) == (0, "")  # idempotent
    assert call(native.quick.handoff_close, handoff) == (0, "")
    assert call(native.quick.poller_close, poller) == (0, "")
    # Nothing was opened since, so neither address has been reused.
    assert_all_bad_handle(handoff_ops(native, handoff))
    assert_all_bad_handle(poller_ops(native, poller))


@pytest.mark.parametrize(
    "timeout_ns", [-1, -(2**63), 2**63 - 1], ids=["-1", "INT64_MIN", "INT64_MAX"]
)
def test_extreme_timeouts_with_a_ready_fd_return_at_once(native, timeout_ns):
    """Negative is "no limit" and huge is allowed: with an fd ready, both
    return it at once instead of overflowing or failing."""
    poller = open_poller(native)
    a, b = socket.socketpair()
    try:
        assert call(native.quick.poller_add, poller, a.fileno(), 1, 7) == (0, "")
        b.send(b"x")
        buf = ctypes.create_string_buffer(16 * 4)
        rc, msg = call(native.blocking.poller_wait, poller, buf, 4, timeout_ns)
        assert rc == 1, msg
        assert _native.EVENT.unpack_from(buf.raw) == (a.fileno(), 1, 7)
    finally:
        call(native.quick.poller_close, poller)
        a.close()
        b.close()


def test_extreme_timeouts_for_a_handoff_request(native):
    poller = open_poller(native)
    handoff = open_handoff(native, poller)
    try:
        for timeout_ns in (-(2**63), 2**63 - 1):
            assert call(native.quick.handoff_request, handoff, timeout_ns, 4) == (0, "")
            # Not waiting yet: the wake turns the request into a poll.
            assert call(native.quick.handoff_wake, handoff) == (0, "")
            assert call(native.blocking.handoff_next, handoff) == (1, "")
            assert call(native.quick.handoff_take, handoff, None, 0) == (0, "")
        rc, msg = call(native.quick.handoff_request, handoff, 0, -1)
        assert rc == _native.EINVAL and "max_events" in msg
    finally:
        call(native.quick.handoff_close, handoff)
        call(native.quick.poller_close, poller)


def test_invalid_arguments_are_einval(native):
    poller = open_poller(native)
    try:
        q = native.quick
        assert call(q.poller_add, poller, -1, 1, 0)[0] == _native.EINVAL
        assert call(q.poller_add, poller, 0, 0, 0)[0] == _native.EINVAL
        assert call(q.poller_add, poller, 0, 4, 0)[0] == _native.EINVAL
        assert call(q.poller_wait, poller, None, 4, 0)[0] == _native.EINVAL
        buf = ctypes.create_string_buffer(16)
        assert call(q.poller_wait, poller, buf, -1, 0)[0] == _native.EINVAL
        assert call(q.poller_open, None)[0] == _native.EINVAL
        assert call(q.handoff_open, poller, None)[0] == _native.EINVAL
    finally:
        call(native.quick.poller_close, poller)


@pytest.mark.parametrize("errlen", [0, 1, 2, 7])
def test_short_message_buffers_are_respected(native, errlen):
    """The message is cut to errlen - 1 bytes plus NUL (nothing at all for
    errlen 0): the bytes after the buffer stay untouched."""
    size = errlen + 16
    raw = ctypes.create_string_buffer(b"\xaa" * size, size)
    rc = native.quick.poller_close(0, raw, errlen)
    assert rc == _native.EBADHANDLE
    data = raw.raw
    assert data[errlen:] == b"\xaa" * (size - errlen)
    if errlen:
        assert data[errlen - 1] == 0
        assert data[: errlen - 1] == b"ag_poller_close: bad handle"[: errlen - 1]
    # a NULL buffer with a length is not written either
    assert native.quick.poller_close(0, None, 100) == _native.EBADHANDLE


@pytest.mark.parametrize(
    "rc, exc_type, err",
    [
        (-errno.EBADF, OSError, errno.EBADF),
        (-errno.EPERM, PermissionError, errno.EPERM),
        (-errno.ENOENT, FileNotFoundError, errno.ENOENT),
        (_native.EINVAL, ValueError, None),
        (_native.EEXIST, KeyError, None),
        (_native.ENOENT, KeyError, None),
        (_native.EBADHANDLE, aioguest.AioguestError, None),
        (_native.EBUSY, aioguest.AioguestError, None),
        (_native.ECLOSED, aioguest.AioguestError, None),
        (_native.EINTERNAL, aioguest.AioguestError, None),
    ],
)
def test_codes_become_the_exceptions_selectors_raise(rc, exc_type, err):
    buf = ctypes.create_string_buffer(b"detail")
    with pytest.raises(exc_type) as excinfo:
        _native.raise_error(rc, buf, "what")
    assert type(excinfo.value) is exc_type
    assert getattr(excinfo.value, "errno", None) == err
    assert "what" in str(excinfo.value) and "detail" in str(excinfo.value)
    if exc_type is aioguest.AioguestError:
        assert excinfo.value.code == rc


# ---------------------------------------------------------------------------
# the same bad input from guest code, through the event loop


def _guest_add_reader(make_bad: Callable[[Env], Any]) -> Any:
    async def main() -> Outcome:
        loop = asyncio.get_running_loop()
        env = Env(loop._selector)  # type: ignore[attr-defined]
        env.sel = _NoClose(env.sel)  # type: ignore[assignment]
        try:
            bad = make_bad(env)
            got = outcome_of(lambda: loop.add_reader(bad, lambda: None))
            # the loop is still usable afterwards
            env.b.send(b"x")
            await asyncio.wait_for(loop.sock_recv(env.a, 1), 5)
            return got
        finally:
            env.close()

    return main()


class _NoClose:
    """Env.close() closes its selector; the loop's own must stay open."""

    def __init__(self, sel: Any) -> None:
        self._sel = sel

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda e: e.closed_fd(),
        lambda e: regular_file(e),
        lambda e: directory_fd(e),
        lambda e: closed_socket(e),
        lambda e: -3,
        lambda e: 2**40,
        lambda e: FilenoRaises(),
    ],
    ids=["closed fd", "regular file", "directory", "closed socket", "-3", "2**40", "fileno raises"],
)
def test_bad_fd_from_guest_code_raises_what_asyncio_run_raises(host, make_bad):
    expected = asyncio.run(_guest_add_reader(make_bad))
    assert expected[0] not in ("returned",), "the scenario must be an error"
    got = host.run(_guest_add_reader(make_bad)).unwrap()
    assert got == expected


def test_fd_closed_and_reused_during_the_guests_wait(host):
    """Host code, between turns and with the worker's wait in flight: makes a
    registered socket readable (the worker collects that), then removes its
    reader, closes it, and registers a fresh, silent socket that got the
    same number.  The collected record is stale: it must not reach the new
    socket's reader (with the worker, the selector's tags drop it)."""
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        old_a, old_b = socket.socketpair()
        loop.add_reader(old_a, lambda: seen.append("stale reader"))
        swapped = loop.create_future()
        made: list[socket.socket] = [old_b]

        def host_code() -> None:
            number = old_a.fileno()
            old_b.send(b"x")
            # Give the worker time to collect the readiness (bounded; if it
            # has not, the test is merely weaker, never wrong).
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and host.queue.empty():
                time.sleep(0.001)
            loop.remove_reader(old_a)
            old_a.close()
            new_a, new_b = socket.socketpair()
            made.extend((new_a, new_b))
            reused = new_a if new_a.fileno() == number else new_b
            loop.add_reader(reused, lambda: seen.append("new reader"))
            loop.call_soon(swapped.set_result, (reused, number == reused.fileno()))

        host.in_host(host_code)
        reused, same_number = await asyncio.wait_for(swapped, 5)
        try:
            if not same_number:
                pytest.skip("the fd number was not reused")
            await asyncio.sleep(0.05)  # nothing is readable on the new socket
            seen.append("quiet")
            peer = made[1] if reused is made[2] else made[2]
            peer.send(b"y")
            for _ in range(500):
                if "new reader" in seen:
                    break
                await asyncio.sleep(0.01)
            loop.remove_reader(reused)
        finally:
            for s in made:
                s.close()

    host.run(main()).unwrap()
    assert seen[:2] == ["quiet", "new reader"], seen


def test_second_concurrent_wait_is_a_clear_error(spawn):
    """A difference from EpollSelector, which lets two threads block in
    select() at once: the Go poller runs one wait at a time (aioguest.h),
    so the second blocking select() fails at once with AioguestError
    (AG_EBUSY) instead of waiting; a poll (timeout 0) still works."""
    import threading

    sel = aioguest.GoSelector()
    a, b = socket.socketpair()
    try:
        sel.register(a, EVENT_READ)
        entered = threading.Event()
        done = threading.Event()
        results: list[Any] = []

        def first() -> None:
            entered.set()
            while True:
                try:
                    results.append(sel.select(10))
                    break
                except aioguest.AioguestError:
                    pass  # the probe below was inside first; go again
            done.set()

        spawn(first)
        assert entered.wait(5)
        deadline = time.monotonic() + 5
        error: BaseException | None = None
        while error is None and time.monotonic() < deadline:
            try:
                sel.select(0.05)  # the first thread may not be inside yet
            except aioguest.AioguestError as exc:
                error = exc
        assert error is not None and error.code == _native.EBUSY  # type: ignore[attr-defined]
        assert "already in progress" in str(error)
        b.send(b"x")
        assert done.wait(5)
        assert [key.fileobj for key, _ in results[0]] == [a]
        assert [key.fileobj for key, _ in sel.select(0)] == [a]
    finally:
        sel.close()
        a.close()
        b.close()
