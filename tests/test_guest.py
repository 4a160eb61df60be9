"""The Guest handle and start_guest, on the queue host (both wait modes)."""

from __future__ import annotations

import asyncio
import logging
import threading

import outcome
import pytest

import aioguest


def start(host, coro, **kwargs):
    host.thread_id = threading.get_ident()
    guest = aioguest.start_guest(coro, host, **kwargs)
    guest.add_done_callback(lambda g: host.done_callback(g.outcome))
    return guest


def test_result_and_state(host):
    async def main():
        await asyncio.sleep(0.01)
        return "value"

    guest = start(host, main())
    assert not guest.done() and guest.outcome is None
    with pytest.raises(asyncio.InvalidStateError):
        guest.result()
    with pytest.raises(asyncio.InvalidStateError):
        guest.exception()
    assert "running" in repr(guest)
    assert host.pump() == outcome.Value("value")
    assert guest.done() and not guest.cancelled()
    assert guest.result() == "value"
    assert guest.exception() is None
    assert "finished" in repr(guest)
    assert guest.task is not None and guest.task.done()


def test_exception(host):
    async def main():
        await asyncio.sleep(0)
        raise LookupError("nope")

    guest = start(host, main())
    host.pump()
    assert isinstance(guest.exception(), LookupError)
    with pytest.raises(LookupError, match="nope"):
        guest.result()
    assert "failed" in repr(guest)


def test_cancel_from_host_code_runs_the_guests_cleanup(host):
    cleaned = []

    async def main():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup may still await
            cleaned.append(True)

    guest = start(host, main())
    host.call_later(0.02, lambda: guest.cancel("window closed"))
    out = host.pump()
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, asyncio.CancelledError)
    assert guest.cancelled()
    assert cleaned == [True]
    assert "cancelled" in repr(guest)
    assert guest.cancel() is False  # already over


def test_cancel_before_the_first_turn(host):
    started = []

    async def main():
        started.append(True)

    guest = start(host, main())
    assert guest.cancel() is True
    assert "cancelling" in repr(guest)
    host.pump()
    assert guest.cancelled()
    assert started == []


def test_done_callbacks_run_in_order_and_late_ones_at_once(host, caplog):
    calls = []

    async def main():
        return 1

    guest = start(host, main())

    def bad(g):
        raise RuntimeError("callback bug")

    guest.add_done_callback(lambda g: calls.append("a"))
    guest.add_done_callback(bad)
    guest.add_done_callback(lambda g: calls.append("b"))
    guest.add_done_callback(bad)
    assert guest.remove_done_callback(bad) == 2
    guest.add_done_callback(bad)
    with caplog.at_level(logging.ERROR, logger="aioguest"):
        host.pump()
    assert calls == ["a", "b"]
    # A failing callback is logged, not raised into the host.
    assert any("callback bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    guest.add_done_callback(lambda g: calls.append("late"))
    assert calls == ["a", "b", "late"]


def test_start_guest_checks_like_start_guest_run(host):
    with pytest.raises(ValueError, match="coroutine"):
        aioguest.start_guest(lambda: None, host)  # type: ignore[arg-type]
