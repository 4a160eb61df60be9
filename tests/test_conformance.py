"""CPython's own asyncio tests on aioguest: a fast subset of ``make conformance``.

Runs a few ``test.test_asyncio`` modules of the interpreter running pytest
with every loop on a GoSelector (``selector``) and as a guest of a trivial
host loop (``guest``: the Go worker waits; ``guest-watch``: the host polls
the poller's fd), and fails on any bad outcome that ``conformance/
expected.py`` does not account for and that stock asyncio does not share
(a failure is re-run with stock asyncio before it counts against us, so a
test broken on this machine for everyone is not our bug).
"""

from __future__ import annotations

import os
import selectors
import sys
from typing import Any

import pytest

import aioguest

# The runner lives next to tests/, not in the installed package; appended,
# so nothing in the repository root can shadow an installed module.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

from conformance import expected, run  # noqa: E402

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"

# Chosen for what they exercise per second (see docs/conformance.md for the
# timings): test_events runs the loop API on each selector kind (sockets,
# pipes, subprocesses, signals, servers), the others cover streams, raw
# socket operations, sendfile, signal handling and child watchers,
# to_thread, and the synchronisation primitives under IsolatedAsyncioTestCase
# (each of these creates loops on every version: test_queues, say, runs on
# TestLoop in 3.10); test_selectors checks GoSelector itself (selector mode).
SUBSET = (
    "test_events",
    "test_streams",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_server",
    "test_unix_events",
    "test_locks",
    "test_threads",
    "test_timeouts",
    "test_waitfor",
    "test_selectors",
)


def _bad(python: str, mode: str, doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """module -> {test id: description} of the bad outcomes not expected."""
    out: dict[str, dict[str, str]] = {}
    for module, md in doc["modules"].items():
        for test_id, rec in md["tests"].items():
            got = rec["outcome"]
            if got in expected.BAD_OUTCOMES and not expected.lookup(python, mode, test_id, got):
                out.setdefault(module, {})[test_id] = f"{got}: {rec.get('detail', '')}"
        how = run.exit_outcome(md["exit"])
        if how != "pass":
            exit_id = f"{run.module_id(module)}::exit"
            if not expected.lookup(python, mode, exit_id, how):
                out.setdefault(module, {})[exit_id] = f"{how}: {md['exit']}"
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", expected.OURS)
def test_asyncio_subset(mode: str, tmp_path: Any) -> None:
    info = run.python_info(sys.executable)
    modules = [m for m in SUBSET if m in info["modules"]]
    if not modules:
        pytest.skip("this interpreter ships without its test package (test.test_asyncio)")
    results = run.run(
        sys.executable, [mode], modules, str(tmp_path), jobs=1, test_timeout=120,
        module_timeout=600, max_restarts=5, rerun_failures=True, quiet=True,
        deselect_expected=True,
    )
    doc = results[mode]

    # The swap really happened: every module ran tests on our loops.
    for module, md in doc["modules"].items():
        if module == run.SELECTOR_TESTS and mode != "selector":
            continue  # runs no event loop: skipped outside selector mode
        assert md["counters"].get("loops", 0) > 0, f"{module}: no test used a GoSelector"
        if mode != "selector":
            assert md["counters"].get("guest_runs", 0) > 0, f"{module}: nothing ran as a guest"

    bad = _bad(VERSION, mode, doc)
    if bad:
        # Only what stock asyncio passes on this machine is a difference.
        confirm = run.run_only(sys.executable, "stock", bad, str(tmp_path), test_timeout=120,
                               module_timeout=600)
        for module, tests in list(bad.items()):
            for test_id in list(tests):
                if confirm.get(test_id, "pass") in expected.BAD_OUTCOMES:
                    del tests[test_id]
            if not tests:
                del bad[module]
    assert not bad, "differences from stock asyncio not listed in conformance/expected.py:\n" + (
        "\n".join(f"  {t}: {d}" for tests in bad.values() for t, d in sorted(tests.items()))
    )


def test_expected_entries_are_well_formed() -> None:
    for entry in expected.EXPECTED:
        assert entry.test.startswith(("test.test_asyncio.", "test.test_selectors.")), entry
        assert entry.modes and set(entry.modes) <= set(expected.OURS), entry
        assert entry.pythons and set(entry.pythons) <= set(expected.PYTHONS_ALL), entry
        assert entry.outcomes and set(entry.outcomes) <= set(expected.BAD_OUTCOMES), entry
        assert entry.kind in ("inherent", "bug"), entry
        assert len(entry.reason) > 20, entry


@pytest.mark.parametrize("cls", [selectors.EpollSelector, aioguest.GoSelector])
def test_modify_refused_by_the_kernel_unregisters(cls: Any) -> None:
    """What test_selectors' test_modify_unregister checks (bpo-30014), which
    it can only do for the stdlib selectors (it patches their internals): a
    registration the kernel refused to modify is dropped, not left stale."""
    selector = cls()
    r, w = os.pipe()
    try:
        selector.register(r, selectors.EVENT_READ)
        os.close(r)  # the kernel forgets it; modify now fails with EBADF
        with pytest.raises(OSError):
            selector.modify(r, selectors.EVENT_READ | selectors.EVENT_WRITE)
        with pytest.raises(KeyError):
            selector.get_key(r)
    finally:
        os.close(w)
        selector.close()
