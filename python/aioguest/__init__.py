"""asyncio guest mode: run an unmodified asyncio event loop inside another
event loop (a GUI toolkit's, Trio's, ...), on that loop's thread, with the
blocking I/O wait done by a worker thread in aioguest's Go library, or by
the host loop itself where it can watch a file descriptor.

Importing this package loads nothing: the Go library (and with it the Go
runtime's threads) is loaded the first time a selector or a run needs it.
Ready-made hosts for GUI toolkits and other loops are in
:mod:`aioguest.hosts`.
"""

from ._native import AioguestError
from .guest import Guest, Host, start_guest
from .run import DEFAULT_TIME_SLICE, start_guest_run
from .selector import GoSelector
from .turn import Driver, PollerWatcher

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_TIME_SLICE",
    "AioguestError",
    "Driver",
    "GoSelector",
    "Guest",
    "Host",
    "PollerWatcher",
    "__version__",
    "start_guest",
    "start_guest_run",
]
