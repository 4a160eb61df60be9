"""The loop classes swapped in for the tests, and the swap itself.

The tests get their loops in four ways: ``asyncio.new_event_loop()`` (the
policy's ``_loop_factory``), ``asyncio.SelectorEventLoop(...)`` (with no
selector, or with a stdlib selector they picked: test_events,
test_sendfile and test_sock_lowlevel run each test once per selector kind),
``asyncio.EventLoop`` (3.13), and ``test_utils.TestLoop``.  :func:`install`
replaces the first three with one class before any test module is imported,
so classes the tests derive from them at import time derive from ours too.
``TestLoop`` runs on virtual time with a mock selector and no blocking wait:
it stays as it is in every mode (its tests then run natively).
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from asyncio import unix_events
from typing import Any

import aioguest

MODES = ("stock", "selector", "guest", "guest-watch")
#: The modes that run on aioguest.
OURS = MODES[1:]

# Captured before install() touches the module: the classes a test names
# when it wants "a real selector of this kind".
_STDLIB_SELECTORS = tuple(
    getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                 "KqueueSelector")
    if hasattr(selectors, name)
)
_StockLoop: Any = unix_events.SelectorEventLoop


class Counters:
    """How much of our code the tests reached (reported per module).

    A mode whose swap silently missed would otherwise look like a perfect
    pass; these numbers show that the tests really ran on our loops.
    """

    loops = 0  # loops created on a GoSelector
    guest_runs = 0  # run_forever calls driven as a guest


class GoSelectorEventLoop(_StockLoop):  # type: ignore[misc]
    """``asyncio.SelectorEventLoop`` on a :class:`aioguest.GoSelector`.

    A stdlib selector passed in is replaced: the tests pass one only to say
    which kernel interface to exercise, and ours is what is under test.  A
    mock or a test's own selector class is kept, since the test inspects it.
    """

    def __init__(self, selector: Any = None) -> None:
        if type(selector) in _STDLIB_SELECTORS:
            selector.close()
            selector = None
        # With None the base class makes the selector itself, from the
        # DefaultSelector that install() replaced, and only after the loop's
        # own state exists: a selector that fails to open (as ours does in a
        # forked child) then fails exactly as a stock one would.
        super().__init__(selector)
        if isinstance(self._selector, aioguest.GoSelector):
            Counters.loops += 1


def _guest_loop_class(mode: str) -> type[Any]:
    from . import guestloop

    return guestloop.GuestWatchEventLoop if mode == "guest-watch" else guestloop.GuestEventLoop


def install(mode: str) -> None:
    """Make the tests' loops those of *mode* (call before importing them)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if mode == "stock":
        return
    cls = GoSelectorEventLoop if mode == "selector" else _guest_loop_class(mode)
    # BaseSelectorEventLoop looks DefaultSelector up at each construction.
    selectors.DefaultSelector = aioguest.GoSelector  # type: ignore[misc,assignment]
    # asyncio re-exports unix_events' names: both bindings are looked up by
    # tests (asyncio.X) and by asyncio itself (unix_events.X via the policy).
    asyncio.SelectorEventLoop = unix_events.SelectorEventLoop = cls
    if sys.version_info >= (3, 13):
        asyncio.EventLoop = unix_events.EventLoop = cls  # type: ignore[misc]
    unix_events.DefaultEventLoopPolicy._loop_factory = cls  # type: ignore[attr-defined]
