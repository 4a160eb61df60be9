"""Host: Tornado's IOLoop.

Tornado 6 runs on asyncio: an ``IOLoop`` wraps an asyncio loop
(``io_loop.asyncio_loop``) and its ``add_callback`` is that loop's
``call_soon``/``call_soon_threadsafe``.  So a Tornado host is an asyncio
host (:mod:`aioguest.hosts.asyncio`), found from the IOLoop, and every
helper of that module works from Tornado handlers and coroutines::

    from aioguest.hosts import tornado as tornado_host

    class Handler(tornado.web.RequestHandler):
        async def get(self):
            # the coroutine runs in the guest's own asyncio loop
            self.write(await tornado_host.run_in_guest(guest, work()))

The scheduling goes to the asyncio loop directly rather than through
``IOLoop.add_callback``: the effect is the same minus Tornado's wrapper
(which would also swallow the "loop is closed" error that tells aioguest
its host is gone).  Inside the guest, ``IOLoop.current()`` is a separate
IOLoop wrapping the guest loop, so Tornado code run by the guest stays in
the guest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tornado.ioloop import IOLoop  # type: ignore[import-not-found, import-untyped, unused-ignore]

from ..guest import Guest
from ..turn import DEFAULT_TIME_SLICE
from . import asyncio as _asyncio_host
from .asyncio import (
    AsyncioHost,
    cancel_and_wait,
    open_guest,
    run,
    run_in_guest,
    run_in_host,
    wait,
)

__all__ = [
    "TornadoHost",
    "cancel_and_wait",
    "open_guest",
    "run",
    "run_in_guest",
    "run_in_host",
    "start",
    "wait",
]

T = TypeVar("T")


class TornadoHost(AsyncioHost):
    """A Tornado IOLoop (default: the current one) as the host of guests."""

    def __init__(self, io_loop: Any = None, *, watch_poller: bool = True) -> None:
        if io_loop is None:
            io_loop = _current_io_loop()
        self.io_loop = io_loop
        loop: asyncio.AbstractEventLoop = io_loop.asyncio_loop
        super().__init__(loop, watch_poller=watch_poller)


def start(
    coro: Coroutine[Any, Any, T],
    *,
    io_loop: Any = None,
    watch_poller: bool = True,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    time_slice: float = DEFAULT_TIME_SLICE,
) -> Guest[T]:
    """Start *coro* as an asyncio guest of *io_loop* (default: the current
    IOLoop); call it on the IOLoop's thread.  See
    :func:`aioguest.hosts.asyncio.start` for the rest."""
    try:
        if io_loop is None:
            io_loop = _current_io_loop()
        loop: asyncio.AbstractEventLoop = io_loop.asyncio_loop
    except BaseException:
        coro.close()
        raise
    return _asyncio_host.start(
        coro,
        loop=loop,
        watch_poller=watch_poller,
        debug=debug,
        loop_factory=loop_factory,
        time_slice=time_slice,
    )


def _current_io_loop() -> Any:
    # Typed Any: only Tornado's asyncio-based IOLoops have asyncio_loop,
    # which is every IOLoop since Tornado 6.
    return IOLoop.current()
