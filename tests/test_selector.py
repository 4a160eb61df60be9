"""GoSelector must behave like selectors.EpollSelector.

Behavioural tests are parametrized over both selectors, so that every
expectation here is checked against the stdlib too: if EpollSelector does not
pass a test, the test is wrong, not the library.
"""

from __future__ import annotations

import asyncio
import errno
import math
import os
import resource
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE

import pytest

import aioguest

SELECTORS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "epoll": selectors.EpollSelector,
    "go": lambda: aioguest.GoSelector(),
}


@pytest.fixture(params=sorted(SELECTORS))
def sel(request: pytest.FixtureRequest) -> Iterator[selectors.BaseSelector]:
    s = SELECTORS[request.param]()
    yield s
    s.close()


@pytest.fixture
def socketpair() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    """A factory of socketpairs, all closed at teardown."""
    made: list[socket.socket] = []

    def make() -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        made.extend((a, b))
        return a, b

    yield make
    for s in made:
        s.close()


def fill_send_buffer(s: socket.socket) -> None:
    s.setblocking(False)
    try:
        while True:
            s.send(b"x" * 65536)
    except BlockingIOError:
        pass


def ready(sel: selectors.BaseSelector, timeout: float | None = 0) -> dict[object, int]:
    """select() as {fileobj: events}, checking each key is the registered one."""
    out = {}
    for key, events in sel.select(timeout):
        assert sel.get_key(key.fileobj) is key or sel.get_key(key.fileobj) == key
        assert key.fileobj not in out, "fd reported twice in one select"
        out[key.fileobj] = events
    return out


# ---------------------------------------------------------------------------
# registration


def test_register_returns_key_for_socket_and_int_fd(sel, socketpair):
    a, b = socketpair()
    ka = sel.register(a, EVENT_READ, "data-a")
    assert ka == selectors.SelectorKey(a, a.fileno(), EVENT_READ, "data-a")
    kb = sel.register(b.fileno(), EVENT_READ | EVENT_WRITE)
    assert kb == selectors.SelectorKey(b.fileno(), b.fileno(), EVENT_READ | EVENT_WRITE, None)
    assert sel.get_key(a) == ka
    # get_key accepts the fd number for an object registration and vice versa
    assert sel.get_key(a.fileno()) == ka
    assert sel.get_key(b) == kb


def test_get_map_is_a_live_mapping_view(sel, socketpair):
    a, b = socketpair()
    m = sel.get_map()
    assert isinstance(m, Mapping)
    assert len(m) == 0
    assert list(m) == []
    ka = sel.register(a, EVENT_READ, 1)
    kb = sel.register(b, EVENT_WRITE, 2)
    # a view: it sees registrations made after it was taken
    assert len(m) == 2
    assert sorted(m) == sorted([a.fileno(), b.fileno()])
    assert a in m and a.fileno() in m and b in m
    assert 12345 not in m
    assert m[a] == ka and m[b.fileno()] == kb
    assert m.get(12345) is None
    assert sorted(m.keys()) == sorted([a.fileno(), b.fileno()])
    assert sorted(k.data for k in m.values()) == [1, 2]
    assert dict(m.items()) == {a.fileno(): ka, b.fileno(): kb}
    with pytest.raises(KeyError):
        m[12345]
    sel.unregister(a)
    assert len(m) == 1 and a not in m


def test_register_twice_is_keyerror(sel, socketpair):
    a, _ = socketpair()
    sel.register(a, EVENT_READ)
    with pytest.raises(KeyError):
        sel.register(a, EVENT_WRITE)
    with pytest.raises(KeyError):
        sel.register(a.fileno(), EVENT_READ)  # same fd, other spelling
    assert sel.get_key(a).events == EVENT_READ


def test_unregister_and_modify_unknown_are_keyerror(sel, socketpair):
    a, _ = socketpair()
    with pytest.raises(KeyError):
        sel.unregister(a)
    with pytest.raises(KeyError):
        sel.modify(a, EVENT_READ)
    with pytest.raises(KeyError):
        sel.get_key(a)
    sel.register(a, EVENT_READ)
    sel.unregister(a)
    with pytest.raises(KeyError):
        sel.unregister(a)


@pytest.mark.parametrize("events", [0, 4, -1, 8, EVENT_READ | 4])
def test_register_invalid_events_is_valueerror(sel, socketpair, events):
    a, _ = socketpair()
    with pytest.raises(ValueError):
        sel.register(a, events)
    assert a not in sel.get_map()


@pytest.mark.parametrize("fileobj", [-1, "x", None, 1.5])
def test_register_invalid_fileobj_is_valueerror(sel, fileobj):
    with pytest.raises(ValueError):
        sel.register(fileobj, EVENT_READ)
    assert len(sel.get_map()) == 0


def test_register_closed_fd_is_ebadf_and_leaves_no_key(sel, socketpair):
    a, _ = socketpair()
    fd = os.dup(a.fileno())
    os.close(fd)
    with pytest.raises(OSError) as excinfo:
        sel.register(fd, EVENT_READ)
    assert excinfo.value.errno == errno.EBADF
    assert fd not in sel.get_map()
    with pytest.raises(KeyError):
        sel.get_key(fd)
    # and the number is really free again: a new fd with that number registers
    fd2 = os.dup(a.fileno())
    try:
        assert fd2 == fd  # lowest free number
        sel.register(fd2, EVENT_READ)
        sel.unregister(fd2)
    finally:
        os.close(fd2)


def test_register_regular_file_is_eperm(sel, tmp_path):
    with open(tmp_path / "f", "w") as f:
        with pytest.raises(OSError) as excinfo:
            sel.register(f, EVENT_READ)
        assert excinfo.value.errno == errno.EPERM
        assert isinstance(excinfo.value, PermissionError)  # what EpollSelector raises
        assert f.fileno() not in sel.get_map()


def test_unregister_closed_socket_removes_key(sel, socketpair):
    a, b = socketpair()
    sel.register(a, EVENT_READ, "a")
    a.close()  # a.fileno() is now -1: must still be found by identity
    key = sel.unregister(a)
    assert key.data == "a"
    assert len(sel.get_map()) == 0
    # the number, reused, can be registered again (no stale registration left)
    c, d = socketpair()
    sel.register(c, EVENT_READ, "c")
    d.send(b"x")
    assert ready(sel) == {c: EVENT_READ}


def test_unregister_closed_int_fd_removes_key(sel, socketpair):
    a, _ = socketpair()
    fd = os.dup(a.fileno())
    sel.register(fd, EVENT_READ)
    os.close(fd)
    assert sel.unregister(fd).fd == fd
    assert fd not in sel.get_map()


def test_modify_data_only(sel, socketpair):
    a, b = socketpair()
    k1 = sel.register(a, EVENT_READ, "old")
    k2 = sel.modify(a, EVENT_READ, "new")
    assert (k2.events, k2.data) == (EVENT_READ, "new")
    assert sel.get_key(a) == k2 and k2 != k1
    b.send(b"x")
    [(key, events)] = sel.select(0)
    assert key.data == "new" and events == EVENT_READ


def test_modify_events_changes_interest(sel, socketpair):
    a, _ = socketpair()
    sel.register(a, EVENT_READ, "d")
    assert ready(sel) == {}  # writable, but not asked for
    key = sel.modify(a, EVENT_WRITE, "d")
    assert key.events == EVENT_WRITE and key.data == "d"
    assert ready(sel) == {a: EVENT_WRITE}
    sel.modify(a, EVENT_READ | EVENT_WRITE)
    assert ready(sel) == {a: EVENT_WRITE}


# ---------------------------------------------------------------------------
# readiness


def test_select_reports_read_write_both(sel, socketpair):
    a, b = socketpair()
    c, d = socketpair()
    sel.register(a, EVENT_READ, "a")
    sel.register(c, EVENT_WRITE, "c")
    sel.register(d, EVENT_READ | EVENT_WRITE, "d")
    assert ready(sel) == {c: EVENT_WRITE, d: EVENT_WRITE}
    b.send(b"x")
    c.send(b"y")
    assert ready(sel) == {a: EVENT_READ, c: EVENT_WRITE, d: EVENT_READ | EVENT_WRITE}
    a.recv(1)
    d.recv(1)
    assert ready(sel) == {c: EVENT_WRITE, d: EVENT_WRITE}


def test_peer_close_is_reported_to_reader(sel, socketpair):
    a, b = socketpair()
    sel.register(a, EVENT_READ)
    assert ready(sel) == {}
    b.close()
    assert ready(sel) == {a: EVENT_READ}  # EOF is readable
    assert a.recv(1) == b""


def test_hangup_is_reported_to_blocked_writer(sel, socketpair):
    """A hang-up/error wakes a writer whose buffer is full (reported as WRITE)."""
    a, b = socketpair()
    fill_send_buffer(a)
    sel.register(a, EVENT_WRITE)
    assert ready(sel) == {}
    b.close()
    assert ready(sel) == {a: EVENT_WRITE}


def test_error_is_reported_as_both_events(sel):
    """A refused TCP connect (ECONNREFUSED on 127.0.0.1) is an error condition."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    c = socket.socket()
    try:
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except (BlockingIOError, ConnectionRefusedError):
            pass
        sel.register(c, EVENT_READ | EVENT_WRITE)
        assert ready(sel, 5) == {c: EVENT_READ | EVENT_WRITE}
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    finally:
        sel.unregister(c)
        c.close()


# ---------------------------------------------------------------------------
# timeouts


def test_select_none_blocks_until_ready(sel, socketpair, spawn):
    a, b = socketpair()
    sel.register(a, EVENT_READ)
    t0 = time.monotonic()
    spawn(b.send, b"x", delay=0.1)
    assert ready(sel, None) == {a: EVENT_READ}
    elapsed = time.monotonic() - t0
    assert 0.09 <= elapsed < 5


@pytest.mark.parametrize("timeout", [0, -1, -0.5, -1e9])
def test_select_zero_or_negative_does_not_block(sel, socketpair, timeout):
    a, b = socketpair()
    sel.register(a, EVENT_READ)
    t0 = time.monotonic()
    assert ready(sel, timeout) == {}
    assert time.monotonic() - t0 < 0.5
    b.send(b"x")
    assert ready(sel, timeout) == {a: EVENT_READ}


@pytest.mark.parametrize("timeout", [0.001, 0.0105, 0.05])
def test_select_small_timeout_never_returns_early(sel, socketpair, timeout):
    a, _ = socketpair()
    sel.register(a, EVENT_READ)
    t0 = time.monotonic()
    assert sel.select(timeout) == []
    elapsed = time.monotonic() - t0
    assert timeout <= elapsed < timeout + 2


def test_select_huge_timeout_with_ready_fd(sel, socketpair):
    a, b = socketpair()
    sel.register(a, EVENT_READ)
    b.send(b"x")
    if isinstance(sel, selectors.EpollSelector):
        # The stdlib converts to int milliseconds and refuses what overflows.
        with pytest.raises(OverflowError):
            sel.select(1e9)
        return
    # GoSelector resumes its kernel wait until the deadline, so any timeout
    # is fine; with an fd ready it returns at once.
    t0 = time.monotonic()
    assert ready(sel, 1e9) == {a: EVENT_READ}
    assert time.monotonic() - t0 < 1


def test_select_nan_timeout_is_valueerror(sel, socketpair):
    a, _ = socketpair()
    sel.register(a, EVENT_READ)
    with pytest.raises(ValueError):
        sel.select(math.nan)


# ---------------------------------------------------------------------------
# closing


CLOSED_OPS: dict[str, Callable[[selectors.BaseSelector, socket.socket], object]] = {
    "register": lambda s, a: s.register(a, EVENT_READ),
    "unregister": lambda s, a: s.unregister(a),
    "modify": lambda s, a: s.modify(a, EVENT_WRITE),
    "get_key": lambda s, a: s.get_key(a),
    "select0": lambda s, a: s.select(0),
    "select": lambda s, a: s.select(0.01),
    "get_map": lambda s, a: s.get_map(),
    "close_again": lambda s, a: s.close(),
}


def _closed_behaviour(make, op, socketpair):
    a, b = socketpair()
    s = make()
    s.register(b, EVENT_READ)  # b is registered, a is not
    s.close()
    for fileobj in (a, b):
        try:
            result = CLOSED_OPS[op](s, fileobj)
        except Exception as exc:
            yield type(exc)
        else:
            yield ("returned", result)


@pytest.mark.parametrize("op", sorted(CLOSED_OPS))
def test_operations_after_close_match_epoll(op, socketpair):
    expected = list(_closed_behaviour(selectors.EpollSelector, op, socketpair))
    got = list(_closed_behaviour(SELECTORS["go"], op, socketpair))
    assert got == expected


def test_context_manager_closes(socketpair):
    a, _ = socketpair()
    for make in SELECTORS.values():
        with make() as s:
            s.register(a, EVENT_READ)
            assert len(s.get_map()) == 1
        assert s.get_map() is None
        with pytest.raises(RuntimeError):
            s.get_key(a)


# ---------------------------------------------------------------------------
# scale and fd reuse


@pytest.fixture
def fd_headroom() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_many_fds_all_reported_in_one_select(sel, socketpair, fd_headroom):
    pairs = [socketpair() for _ in range(1000)]
    for i, (a, _) in enumerate(pairs):
        sel.register(a, EVENT_READ, i)
    assert ready(sel) == {}
    for _, b in pairs:
        b.send(b"x")
    got = sel.select(0)
    assert sorted(key.data for key, _ in got) == list(range(1000))
    assert all(events == EVENT_READ for _, events in got)


def test_reused_fd_not_reported_for_stale_registration(sel, socketpair):
    """An fd unregistered and closed, its number reused by a new registration:
    readiness is reported only for the new one, with the new interest."""
    a, b = socketpair()
    b.send(b"x")  # a is readable
    sel.register(a, EVENT_READ, "stale")
    assert ready(sel) == {a: EVENT_READ}
    number = a.fileno()
    sel.unregister(a)
    a.close()
    c, d = socketpair()
    assert number in (c.fileno(), d.fileno())
    new = c if c.fileno() == number else d
    sel.register(new, EVENT_WRITE, "new")  # writable, not readable
    got = sel.select(0)
    assert [(key.fileobj, key.data, events) for key, events in got] == [(new, "new", EVENT_WRITE)]


# ---------------------------------------------------------------------------
# a full asyncio loop on a GoSelector, without guest mode


def run_native(coro):
    """asyncio.run(coro) on SelectorEventLoop(GoSelector())."""

    def factory():
        return asyncio.SelectorEventLoop(aioguest.GoSelector())

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def test_native_loop_is_on_goselector():
    async def main():
        return type(asyncio.get_running_loop()._selector)

    assert run_native(main()) is aioguest.GoSelector


def test_native_loop_tcp_echo_with_streams():
    async def main():
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=2**20)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        got = []
        for word in (b"one", b"two", b"x" * 100_000):
            writer.write(word + b"\n")
            await writer.drain()
            got.append(await asyncio.wait_for(reader.readline(), 5))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert run_native(main()) == [b"ONE\n", b"TWO\n", b"X" * 100_000 + b"\n"]


def test_native_loop_call_later_ordering():
    async def main():
        loop = asyncio.get_running_loop()
        order = []
        done = loop.create_future()
        t0 = loop.time()
        for delay, name in [(0.03, "c"), (0.01, "a"), (0.02, "b"), (0.0, "0")]:
            loop.call_later(delay, order.append, (name, delay))
        loop.call_soon(order.append, ("soon", 0))
        loop.call_later(0.05, done.set_result, None)
        await done
        return order, loop.time() - t0

    order, elapsed = run_native(main())
    assert [name for name, _ in order] == ["soon", "0", "a", "b", "c"]
    assert 0.05 <= elapsed < 2


def test_native_loop_run_in_executor():
    async def main():
        loop = asyncio.get_running_loop()
        ident = await loop.run_in_executor(None, threading.get_ident)
        slow = await loop.run_in_executor(None, lambda: (time.sleep(0.05), 42)[1])
        return ident, slow

    ident, slow = run_native(main())
    assert ident != threading.get_ident()
    assert slow == 42
