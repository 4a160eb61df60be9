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
import multiprocessing
import os
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
