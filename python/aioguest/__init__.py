"""asyncio guest mode: run an unmodified asyncio event loop inside another
event loop (a GUI toolkit's, Trio's, ...), on that loop's thread, with the
blocking I/O wait done by a worker thread in aioguest's Go library.

Importing this package loads nothing: the Go library (and with it the Go
runtime's threads) is loaded the first time a selector or a run needs it.
"""

from ._native import AioguestError
from .run import DEFAULT_TIME_SLICE, start_guest_run
from .selector import GoSelector

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_TIME_SLICE",
    "AioguestError",
    "GoSelector",
    "__version__",
    "start_guest_run",
]
