"""The known differences from stock asyncio, in one place, each with its reason.

A test that fails, errors, hangs or crashes in the ``selector`` or ``guest``
mode but not with stock asyncio on the same interpreter is a difference.
Each one must either be fixed or listed here.  ``kind`` says which:

``inherent``
    a consequence of a deliberate design decision that the test observes
    (documented in ``docs/conformance.md``);
``bug``
    a library bug not yet fixed (it also has a strict xfail test in
    ``tests/test_conformance_bugs.py``).

``report.py`` and ``tests/test_conformance.py`` match results against this
list; an entry that no longer matches anything is reported as stale.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

PYTHONS_ALL: tuple[str, ...] = ("3.10", "3.11", "3.12", "3.13")
BAD_OUTCOMES = ("fail", "error", "timeout", "crash")
OURS = ("selector", "guest", "guest-watch")


@dataclass(frozen=True)
class Expected:
    #: A test id (``test.test_asyncio.module.Class.test``) or an fnmatch
    #: pattern over ids; ``<module id>::exit`` stands for how the module's
    #: interpreter ended after its tests.
    test: str
    modes: tuple[str, ...]
    reason: str
    kind: str = "inherent"
    pythons: tuple[str, ...] = PYTHONS_ALL
    #: The bad outcomes this entry accepts (others are still differences).
    outcomes: tuple[str, ...] = BAD_OUTCOMES

    def matches(self, python: str, mode: str, test_id: str, outcome: str) -> bool:
        return (
            python in self.pythons
            and mode in self.modes
            and outcome in self.outcomes
            and fnmatch.fnmatchcase(test_id, self.test)
        )


_FORK_REASON = (
    "the test runs asyncio.new_event_loop() in a ProcessPoolExecutor worker, "
    "which 3.10 and 3.11 start with fork(): aioguest's Go runtime does not "
    "survive fork(), so by design every aioguest call in a forked child raises "
    "RuntimeError (docs/design.md, 'Loading and fork'), and the loop factory "
    "the test patched in is ours. 3.12+ use a forkserver there, whose children "
    "never loaded aioguest."
)

_FORK_CHILD_REASON = (
    "the test fork()s and uses asyncio in the child (asyncio.run, a subprocess, "
    "or the policy's get_event_loop(), which makes a new loop there): the loop "
    "class is ours, and aioguest's Go runtime does not survive fork(), so by "
    "design every aioguest call in a forked child raises RuntimeError "
    "(docs/design.md, 'Loading and fork'); the child reports the failure to "
    "the parent, whose assertion fails"
)

EXPECTED: tuple[Expected, ...] = (
    Expected(
        "test.test_asyncio.test_unix_events.TestFork.test_fork_asyncio_run",
        modes=OURS,
        pythons=("3.12", "3.13"),
        outcomes=("fail",),
        reason=_FORK_CHILD_REASON,
    ),
    Expected(
        "test.test_asyncio.test_unix_events.TestFork.test_fork_asyncio_subprocess",
        modes=OURS,
        pythons=("3.12", "3.13"),
        outcomes=("fail",),
        reason=_FORK_CHILD_REASON,
    ),
    Expected(
        "test.test_asyncio.test_unix_events.TestFork.test_fork_not_share_event_loop",
        modes=OURS,
        pythons=("3.12", "3.13"),
        outcomes=("fail",),
        reason=_FORK_CHILD_REASON,
    ),
    Expected(
        "test.test_asyncio.test_events.Test*GetEventLoop.test_get_event_loop_new_process",
        modes=OURS,
        pythons=("3.10", "3.11"),
        outcomes=("error",),
        reason=_FORK_REASON,
    ),
    Expected(
        "test.test_asyncio.test_events::exit",
        modes=OURS,
        pythons=("3.11",),
        outcomes=("timeout",),
        reason=(
            "follows from test_get_event_loop_new_process: the test shuts its "
            "process pool down only on success, so after the failure the "
            "interpreter waits at exit for pool workers that never exit (the "
            "runner's exit watchdog ends it after 10 s); 3.10's pool gives up "
            "on its broken workers and exits"
        ),
    ),
)


def lookup(python: str, mode: str, test_id: str, outcome: str) -> Expected | None:
    """The entry that accounts for *test_id* ending as *outcome*, if any."""
    for entry in EXPECTED:
        if entry.matches(python, mode, test_id, outcome):
            return entry
    return None
