"""A forked child must get clear errors from aioguest, never a hang.

Go's runtime threads do not survive fork(): in the child, almost any call
into the library would block forever.  Objects inherited from the parent are
the dangerous part, because garbage collection in the child closes them (an
unclosed event loop's __del__ closes its selector), so every entry point,
not only object creation, has to know it is in a child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import multiprocessing
import os
import socket
import time
import warnings

import pytest

import aioguest

CHILD_TIMEOUT = 30.0


def _fork(child) -> int:
    """Run child() in a forked process; return its exit status (bounded)."""
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock the
        # child: exactly the situation under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = child()
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def test_inherited_objects_raise_or_close_quietly_in_a_forked_child(host):
    sel = aioguest.GoSelector()
    r, w = os.pipe()
    sel.register(r, 1)
    parent_loop = asyncio.SelectorEventLoop(aioguest.GoSelector())

    def child() -> int:
        checks = []
        for attempt in (
            lambda: sel.register(w, 2),
            lambda: sel.select(0),
            lambda: aioguest.GoSelector(),
        ):
            try:
                attempt()
            except RuntimeError as exc:
                checks.append("forked" in str(exc))
            else:
                checks.append(False)
        sel.close()  # must neither hang nor raise
        parent_loop.close()
        return 0 if all(checks) else 2

    try:
        assert _fork(child) == 0
        # The parent's objects still work after the child is gone.
        os.write(w, b"x")
        assert [key.fd for key, _ in sel.select(1)] == [r]
    finally:
        sel.close()
        parent_loop.close()
        os.close(r)
        os.close(w)


def test_child_forked_during_a_guest_run_exits_cleanly(host):
    """The run belongs to the parent: the child neither warns nor hangs."""
    forked = []

    async def main():
        await asyncio.sleep(0)
        forked.append(_fork(lambda: 0))
        await asyncio.sleep(0.01)
        return "parent done"

    out = host.run(main())
    assert out.unwrap() == "parent done"
    assert forked == [0]


def _new_loop_in_child() -> str:
    try:
        asyncio.new_event_loop()
    except RuntimeError as exc:
        return str(exc)
    return "no error"


def test_fork_process_pool_with_an_unclosed_loop_does_not_hang():
    """The case found with CPython's test_asyncio: a fork-started pool whose
    workers inherit an unclosed GoSelector loop must still shut down."""
    import selectors

    leaked_loop = asyncio.SelectorEventLoop(aioguest.GoSelector())
    default = selectors.DefaultSelector
    selectors.DefaultSelector = aioguest.GoSelector  # type: ignore[misc]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                message = pool.submit(_new_loop_in_child).result(timeout=CHILD_TIMEOUT)
        assert "forked" in message
    finally:
        selectors.DefaultSelector = default  # type: ignore[misc]
        leaked_loop.close()


# ---------------------------------------------------------------------------
# multiprocessing children of a process whose guest is running


def _plain_asyncio_child(conn) -> None:
    """A child that does not use aioguest: its own asyncio.run, socket I/O."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            loop.call_later(0.01, b.send, b"child io")
            return await asyncio.wait_for(loop.sock_recv(a, 100), 5)

    conn.send(("ok", asyncio.run(main()), type(asyncio.new_event_loop()).__name__))
    conn.close()


def _aioguest_child(conn) -> None:
    """A child that uses aioguest in every way it could."""
    results = []
    for name, attempt in (
        ("GoSelector", lambda: aioguest.GoSelector()),
        ("start_guest_run", _start_a_guest),
    ):
        t0 = time.monotonic()
        try:
            attempt()
        except RuntimeError as exc:
            results.append((name, "RuntimeError", "forked" in str(exc), time.monotonic() - t0))
        except BaseException as exc:  # pragma: no cover - reported to the parent
            results.append((name, repr(exc), False, time.monotonic() - t0))
        else:
            results.append((name, "no error", False, time.monotonic() - t0))
    conn.send(results)
    conn.close()


def _start_a_guest() -> None:
    import inspect

    async def guest() -> None:
        await asyncio.sleep(0)

    coro = guest()
    try:
        aioguest.start_guest_run(coro, run_sync_soon_threadsafe=print, done_callback=print)
    finally:
        # the refusal must close it (no "never awaited" in the child)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def _inherited_loop_child(conn, loop) -> None:
    """A child that touches the guest loop it inherited from the parent."""
    try:
        loop.run_until_complete(asyncio.sleep(0))
    except RuntimeError as exc:
        conn.send(("RuntimeError", str(exc)))
    else:  # pragma: no cover - reported to the parent
        conn.send(("no error", ""))
    # gc of the inherited objects, and an explicit close: neither may touch
    # the kernel objects the parent still uses
    gc.collect()
    loop.close()
    conn.close()


def _in_child(method: str, target, *args):
    """Run target(conn, *args) in a multiprocessing child; return what it
    sent.  Bounded: a hung child is killed and fails the test."""
    ctx = multiprocessing.get_context(method)
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock
        # the child: exactly the situation under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=target, args=(child_conn, *args))
        proc.start()
    child_conn.close()
    try:
        if not parent_conn.poll(CHILD_TIMEOUT):
            pytest.fail(f"the {method} child hung (no answer in {CHILD_TIMEOUT} s)")
        result = parent_conn.recv()
        proc.join(CHILD_TIMEOUT)
        assert proc.exitcode == 0, f"the {method} child exited with {proc.exitcode}"
        return result
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        proc.close()
        parent_conn.close()


@pytest.fixture
def stop_forkserver():
    """The forkserver and the resource tracker it starts are long-lived
    children of this process: stop them after the test, so the leak check
    sees only what the test itself left."""
    yield
    from multiprocessing import forkserver, resource_tracker

    forkserver._forkserver._stop()
    resource_tracker._resource_tracker._stop()


def guest_running_while(host, fn):
    """Run fn() as host code while a guest is in the middle of a run (its
    wait in flight, with a socket registered); return fn's result after
    checking that the guest is unaffected."""
    results = []

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            done = loop.create_future()

            def host_code():
                results.append(fn())
                # the guest's registration survived whatever the child did
                b.send(b"after the child")
                loop.call_soon(done.set_result, None)

            host.call_later(0.02, host_code)
            await asyncio.wait_for(done, CHILD_TIMEOUT + 10)
            return await asyncio.wait_for(loop.sock_recv(a, 100), 5)

    assert host.run(main(), timeout=2 * CHILD_TIMEOUT + 20).unwrap() == b"after the child"
    return results[0]


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_children_that_do_not_use_aioguest_are_unaffected(host, stop_forkserver, method):
    got = guest_running_while(host, lambda: _in_child(method, _plain_asyncio_child))
    assert got == ("ok", b"child io", "_UnixSelectorEventLoop")


def test_fork_child_using_aioguest_gets_runtimeerror_quickly(host):
    results = guest_running_while(host, lambda: _in_child("fork", _aioguest_child))
    assert [(name, kind, says_forked) for name, kind, says_forked, _ in results] == [
        ("GoSelector", "RuntimeError", True),
        ("start_guest_run", "RuntimeError", True),
    ]
    # "quickly": an error, not a timeout of some wait (each took well
    # under the time the parent gave the child)
    assert all(took < CHILD_TIMEOUT / 2 for *_, took in results)


def test_fork_child_touching_the_inherited_guest_loop_gets_runtimeerror(host):
    def fork_with_loop():
        return _in_child("fork", _inherited_loop_child, host.loop)

    kind, message = guest_running_while(host, fork_with_loop)
    assert kind == "RuntimeError" and "forked" in message


def _guest_in_forkserver_child(conn) -> None:
    import queue as queue_module

    q = queue_module.SimpleQueue()
    outcomes = []

    async def main():
        await asyncio.sleep(0.01)
        return os.getpid()

    aioguest.start_guest_run(main(), run_sync_soon_threadsafe=q.put, done_callback=outcomes.append)
    while not outcomes:
        q.get(timeout=10)()
    conn.send(outcomes[0].unwrap())
    conn.close()


def test_forkserver_child_can_use_aioguest(host, stop_forkserver):
    """A forkserver child descends from a fresh interpreter, not from this
    process: it may load the Go runtime and run guests of its own."""
    pid = guest_running_while(host, lambda: _in_child("forkserver", _guest_in_forkserver_child))
    assert isinstance(pid, int) and pid != os.getpid()
