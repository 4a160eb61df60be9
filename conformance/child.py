"""Run one ``test.test_asyncio`` module in one mode; stream results as JSON lines.

Started by ``run.py`` in a fresh interpreter (the one under test), as a
script: ``python conformance/child.py --mode M --module NAME --events FILE``.
Every test's start and end is appended to FILE and flushed at once, so when
the process dies or is killed the parent still knows what finished and which
test was running.  A faulthandler watchdog, re-armed for every test, dumps
all threads' stacks and exits if one test runs longer than --test-timeout:
a hang costs minutes, not the whole run, and the dump says where it hung.
"""

from __future__ import annotations

import argparse
import faulthandler
import fnmatch
import json
import logging
import os
import sys
import time
import traceback
import unittest
from collections.abc import Iterator
from typing import Any, TextIO

# Run as a script, sys.path[0] is this directory, whose module names must
# not shadow anything; the package is imported from the repository root,
# put *last* so that nothing there can shadow the stdlib or aioguest.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    del sys.path[0]
sys.path.append(os.path.dirname(_HERE))

from conformance import loops  # noqa: E402


def _iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from _iter_tests(item)
    else:
        yield suite


def _brief(err: Any) -> str:
    """The last line of a formatted exception: enough to tell failures apart."""
    exc_type, exc, _tb = err
    text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    last = text.splitlines()[-1] if text else exc_type.__name__
    return last[:300]


class _AioguestLogCounter(logging.Handler):
    """Counts error records of the ``aioguest`` logger (abandoned runs, ...)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class StreamingResult(unittest.TestResult):
    """Writes one JSON line per test start and end; re-arms the watchdog.

    A test's outcome is the worst of its own and its subtests' (``pass`` <
    ``skip``/``xfail`` < ``fail`` < ``error``); subtests are not counted as
    tests of their own, so the counts match between modes whatever fails.
    """

    _RANK = {"pass": 0, "skip": 1, "xfail": 1, "xpass": 2, "fail": 3, "error": 4}

    def __init__(self, out: TextIO, log: TextIO, test_timeout: float) -> None:
        super().__init__(stream=None, descriptions=None, verbosity=0)
        # Set by test.support's cleanup helpers when a test leaves threads,
        # processes or files behind (what regrtest reports as "env changed").
        from test import support  # type: ignore[import-not-found]

        self._support = support
        self._out = out
        self._log = log
        self._test_timeout = test_timeout
        self._current: dict[str, Any] | None = None
        self._t0 = 0.0
        self._unraisable = 0
        self._aioguest_errors = _AioguestLogCounter()
        logging.getLogger("aioguest").addHandler(self._aioguest_errors)
        self._prev_hook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable

    def _on_unraisable(self, unraisable: Any) -> None:
        self._unraisable += 1
        self._prev_hook(unraisable)

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def _arm(self) -> None:
        faulthandler.dump_traceback_later(self._test_timeout, exit=True)

    # -- per test -------------------------------------------------------------

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._support.environment_altered = False
        self._current = {"test": test.id(), "outcome": "pass", "detail": ""}
        self._unraisable = 0
        self._aioguest_errors.count = 0
        self._emit({"event": "start", "test": test.id()})
        self._log.write(f"{test.id()} ... ")
        self._log.flush()
        self._t0 = time.monotonic()
        self._arm()

    def _set(self, test: Any, outcome: str, detail: str) -> None:
        cur = self._current
        if cur is None or cur["test"] != test.id():
            # Errors outside any test (setUpModule, setUpClass, tearDown*
            # of a class or module) are reported against a placeholder.
            self._emit({"event": "end", "test": test.id(), "outcome": outcome,
                        "detail": detail, "duration": 0.0, "fixture": True})
            self._log.write(f"{test.id()}: {outcome.upper()} {detail}\n")
            return
        if self._RANK[outcome] >= self._RANK[cur["outcome"]]:
            cur["outcome"] = outcome
            cur["detail"] = detail

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        cur = self._current
        self._current = None
        if cur is not None:
            cur["event"] = "end"
            cur["duration"] = round(time.monotonic() - self._t0, 3)
            if self._support.environment_altered:
                cur["env_changed"] = True
            if self._unraisable:
                cur["unraisable"] = self._unraisable
            if self._aioguest_errors.count:
                cur["aioguest_errors"] = self._aioguest_errors.count
            self._emit(cur)
            self._log.write(f"{cur['outcome']} ({cur['duration']:.2f}s)"
                            f"{' ' + cur['detail'] if cur['detail'] else ''}\n")
            self._log.flush()
        super().stopTest(test)
        # Between tests (class/module fixtures) the watchdog keeps watching.
        self._arm()

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._log_traceback(test, err)
        self._set(test, "error", _brief(err))

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._log_traceback(test, err)
        self._set(test, "fail", _brief(err))

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._set(test, "skip", reason[:300])

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, "xfail", _brief(err))

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "xpass", "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._log_traceback(subtest, err)
            failure = issubclass(err[0], test.failureException)
            self._set(test, "fail" if failure else "error", f"{subtest.id()}: {_brief(err)}")

    def _log_traceback(self, test: Any, err: Any) -> None:
        self._log.write(f"\n{'=' * 70}\n{test.id()}\n{'-' * 70}\n")
        self._log.write(self._exc_info_to_string(err, test))  # type: ignore[attr-defined]
        self._log.flush()


def _selector_suite(module: Any, mode: str) -> unittest.TestSuite:
    """test_selectors' generic tests, on EpollSelector (stock) or GoSelector.

    The module has one TestCase per stdlib selector, all sharing a base
    class that takes the selector from ``SELECTOR``; one more such class,
    under the same name in every mode so the results line up, is all that
    is needed (the module is not modified).
    """
    import selectors

    import aioguest

    cls = type(
        "SelectorUnderTest",
        (module.BaseSelectorTestCase, module.ScalableSelectorMixIn, unittest.TestCase),
        {
            "SELECTOR": selectors.EpollSelector if mode == "stock" else aioguest.GoSelector,
            "__module__": module.__name__,
        },
    )
    if mode != "stock":
        loops.Counters.loops += 1  # not a loop, but shows the swap happened
    return unittest.defaultTestLoader.loadTestsFromTestCase(cls)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=loops.MODES, required=True)
    ap.add_argument("--module", required=True, help="e.g. test.test_asyncio.test_events")
    ap.add_argument("--events", required=True, help="JSON-lines file to append to")
    ap.add_argument("--exclude", help="file with test ids (one a line) not to run")
    ap.add_argument("--only", help="file with the test ids (one a line) to run")
    ap.add_argument("--deselect", help="file with fnmatch patterns of test ids to report as "
                    "skipped without running them")
    ap.add_argument("--test-timeout", type=float, default=120.0)
    ap.add_argument("--exit-timeout", type=float, default=10.0)
    args = ap.parse_args(argv)

    faulthandler.enable()
    loops.install(args.mode)

    out = open(args.events, "a", encoding="utf-8")  # lives until the process exits
    log = sys.stderr

    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    import asyncio

    emit({"event": "begin", "pid": os.getpid(), "python": sys.version.split()[0],
          "loop_class": asyncio.SelectorEventLoop.__qualname__})
    # Importing can hang too (the package checks for working sockets).
    faulthandler.dump_traceback_later(args.test_timeout, exit=True)
    if args.module == "test.test_selectors" and args.mode not in ("stock", "selector"):
        emit({"event": "end", "test": args.module, "outcome": "skip",
              "detail": "the selector tests run no event loop: selector mode covers them",
              "duration": 0.0, "fixture": True})
        emit({"event": "finish", "counters": {}})
        return 0
    try:
        module = __import__(args.module, fromlist=["*"])
    except unittest.SkipTest as exc:
        emit({"event": "end", "test": args.module, "outcome": "skip",
              "detail": str(exc)[:300], "duration": 0.0, "fixture": True})
        emit({"event": "finish", "counters": {}})
        return 0
    except Exception as exc:
        traceback.print_exc()
        emit({"event": "end", "test": args.module, "outcome": "error",
              "detail": f"import failed: {exc!r}"[:300], "duration": 0.0, "fixture": True})
        emit({"event": "finish", "counters": {}})
        return 0

    if args.module == "test.test_selectors":
        suite = _selector_suite(module, args.mode)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = list(_iter_tests(suite))
    if args.exclude:
        with open(args.exclude, encoding="utf-8") as f:
            skip = set(f.read().split())
        tests = [t for t in tests if t.id() not in skip]
    if args.only:
        with open(args.only, encoding="utf-8") as f:
            only = set(f.read().split())
        tests = [t for t in tests if t.id() in only]
    if args.deselect:
        with open(args.deselect, encoding="utf-8") as f:
            patterns = f.read().split()
        kept = []
        for t in tests:
            if any(fnmatch.fnmatchcase(t.id(), p) for p in patterns):
                emit({"event": "end", "test": t.id(), "outcome": "skip",
                      "detail": "deselected: a known difference (conformance/expected.py)",
                      "duration": 0.0})
            else:
                kept.append(t)
        tests = kept
    emit({"event": "collected", "count": len(tests)})

    result = StreamingResult(out, log, args.test_timeout)
    # A flat suite still gets its class and module fixtures: TestSuite.run
    # notices every change of class and module as it goes.
    unittest.TestSuite(tests).run(result)
    faulthandler.cancel_dump_traceback_later()
    emit({"event": "finish", "counters": {"loops": loops.Counters.loops,
                                          "guest_runs": loops.Counters.guest_runs}})
    # What is left (executor threads, atexit hooks, a child process that
    # will not exit) must not keep the interpreter from exiting for long.
    faulthandler.dump_traceback_later(args.exit_timeout, exit=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
