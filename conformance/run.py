"""Run ``test.test_asyncio`` modules in one or more modes; write the raw results.

    python -m conformance.run --python .venv-3.12/bin/python          # every mode, module
    python -m conformance.run --python .venv/bin/python --mode stock guest \
        --modules test_tasks test_locks --report

Modes: stock, selector, guest, guest-watch (see ``__init__.py``).  Module
names are test.test_asyncio's, plus ``test_selectors`` (GoSelector against
the stdlib's generic selector tests).  The interpreter must import aioguest.

Each module runs in its own interpreter (``child.py``), with a watchdog per
test.  When a test hangs or kills the interpreter, the module is restarted
without the tests that already ended (and without the culprit, recorded as
``timeout`` or ``crash``), so one bad test does not hide the others' results.
Tests that fail or error are run once more, each module's set in a fresh
interpreter: a test that then passes is ``pass`` with ``flaky`` set, which
keeps a loaded machine's timing noise out of the comparison (``stock`` gets
the same treatment, so no mode is favoured).

The results go to ``<out>/raw/<python>-<mode>.json``; ``report.py`` compares
the modes and writes the tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import expected

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")
DEFAULT_OUT = os.path.join(HERE, "results")
MODES = ("stock", "selector", "guest", "guest-watch")

#: Not part of test_asyncio, but the stdlib's generic selector tests are the
#: natural conformance test for GoSelector itself (selector mode only).
SELECTOR_TESTS = "test_selectors"

# Windows-only modules skip themselves at import; listing them costs nothing.
_BAD_OUTCOMES = ("fail", "error", "timeout", "crash")


@dataclass
class ModuleResult:
    module: str
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    restarts: int = 0
    exit: str = "ok"  # or how the last interpreter ended badly after its tests
    counters: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("pass", "fail", "error", "skip", "xfail", "xpass", "timeout",
                              "crash")}
        for rec in self.tests.values():
            out[rec["outcome"]] = out.get(rec["outcome"], 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "seconds": round(self.seconds, 2),
                "restarts": self.restarts, "exit": self.exit, "counters": self.counters,
                "counts": self.counts(), "tests": self.tests}


def module_id(name: str) -> str:
    """The importable name of a module the runner knows by its short name."""
    return f"test.{name}" if name == SELECTOR_TESTS else f"test.test_asyncio.{name}"


def python_info(python: str) -> dict[str, Any]:
    """Version and test_asyncio module names of the interpreter under test."""
    code = (
        "import importlib.util, json, os, sys\n"
        "spec = importlib.util.find_spec('test.test_asyncio')\n"
        "d = list(spec.submodule_search_locations)[0] if spec else None\n"
        "mods = sorted(f[:-3] for f in os.listdir(d) if f.startswith('test_')"
        " and f.endswith('.py')) if d else []\n"
        "if importlib.util.find_spec('test.test_selectors'): mods.append('test_selectors')\n"
        "print(json.dumps({'version': '%d.%d' % sys.version_info[:2],"
        " 'full': sys.version.split()[0], 'executable': sys.executable, 'modules': mods}))\n"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    info: dict[str, Any] = json.loads(out.stdout)
    return info


def exit_outcome(how: str) -> str:
    """How a module's last interpreter ended (``ModuleResult.exit``), as a
    test outcome for the pseudo-test ``<module id>::exit``."""
    if how == "ok" or how.startswith("gave up"):
        return "pass"  # giving up is already visible in the tests' outcomes
    return "timeout" if how.startswith("hung") else "crash"


def _read_events(path: str) -> list[dict[str, Any]]:
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError:
                    break  # a line cut short by a kill: nothing after it counts
    except FileNotFoundError:
        pass
    return events


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def _run_child(
    python: str, mode: str, module: str, events: str, log: Any, *, exclude: set[str],
    only: set[str] | None, test_timeout: float, module_timeout: float, env: dict[str, str],
    deselect: list[str] | None = None,
) -> tuple[int | None, list[dict[str, Any]]]:
    """One interpreter; returns (returncode or None if killed by us, its events)."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        cmd = [python, "-X", "faulthandler", CHILD, "--mode", mode,
               "--module", module_id(module), "--events", events,
               "--test-timeout", str(test_timeout)]
        if exclude:
            path = os.path.join(tmp, "exclude")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(sorted(exclude)))
            cmd += ["--exclude", path]
        if deselect:
            path = os.path.join(tmp, "deselect")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(deselect))
            cmd += ["--deselect", path]
        if only is not None:
            path = os.path.join(tmp, "only")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(sorted(only)))
            cmd += ["--only", path]
        before = len(_read_events(events))
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        # Its own session, so that a backstop kill takes the tests' own
        # child processes with it (and nothing of ours).
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp,
                                start_new_session=True)
        try:
            rc: int | None = proc.wait(module_timeout)
        except subprocess.TimeoutExpired:
            rc = None
        # Also after a normal exit: a test's own children (a process
        # pool's forked workers when the watchdog ended the interpreter)
        # must not outlive it and load the machine for the next modules.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return rc, _read_events(events)[before:]


def run_module(
    python: str, version: str, mode: str, module: str, raw_dir: str, *, test_timeout: float,
    module_timeout: float, max_restarts: int, rerun_failures: bool, env: dict[str, str],
    only: set[str] | None = None, deselect_expected: bool = False,
) -> ModuleResult:
    res = ModuleResult(module)
    events_path = os.path.join(raw_dir, f"{module}.jsonl")
    log_path = os.path.join(raw_dir, f"{module}.log")
    for p in (events_path, log_path):
        if os.path.exists(p):
            os.remove(p)
    # Known differences need not be watched happen again (the pytest subset
    # skips them: some cost a hang at exit); the full run keeps them.
    deselect = [e.test for e in expected.EXPECTED
                if deselect_expected and version in e.pythons and mode in e.modes
                and "::" not in e.test]
    t0 = time.monotonic()
    seen: set[str] = set()
    with open(log_path, "w", encoding="utf-8") as log:
        attempt = 0
        while True:
            rc, events = _run_child(python, mode, module, events_path, log, exclude=seen,
                                    only=only, test_timeout=test_timeout,
                                    module_timeout=module_timeout, env=env,
                                    deselect=deselect)
            running: str | None = None
            finished = False
            for ev in events:
                kind = ev.get("event")
                if kind == "start":
                    running = ev["test"]
                elif kind == "end":
                    res.tests[ev["test"]] = {k: v for k, v in ev.items() if k != "event"}
                    seen.add(ev["test"])
                    running = None
                elif kind == "finish":
                    finished = True
                    res.counters = ev.get("counters", {})
            if finished:
                if rc is None or rc == 1:
                    # 1 is how faulthandler's watchdog exits (nothing else
                    # in the child exits with it once the tests are done).
                    res.exit = "hung at exit"
                elif rc != 0:
                    res.exit = f"after the tests: {_describe_exit(rc)}"
                break
            # The interpreter died inside a test (or between tests).
            how = "timeout" if rc is None or rc == 1 else "crash"
            culprit = running or f"{module_id(module)} (between tests)"
            res.tests[culprit] = {"test": culprit, "outcome": how,
                                  "detail": "watchdog or backstop timeout" if how == "timeout"
                                  else _describe_exit(rc if rc is not None else -9),
                                  "duration": 0.0}
            seen.add(culprit)
            attempt += 1
            if running is None or attempt > max_restarts:
                res.exit = f"gave up after {attempt} interpreters"
                break
            res.restarts += 1
        if rerun_failures:
            # Known differences are not re-run: they are not noise, and some
            # cost a hang at exit each time.
            again = {t for t, r in res.tests.items()
                     if r["outcome"] in ("fail", "error") and not r.get("fixture")
                     and expected.lookup(version, mode, t, r["outcome"]) is None}
            if again:
                log.write(f"\n# re-running {len(again)} failed tests\n")
                _rc, events = _run_child(python, mode, module, events_path, log, exclude=set(),
                                         only=again, test_timeout=test_timeout,
                                         module_timeout=module_timeout, env=env)
                for ev in events:
                    if ev.get("event") == "end" and ev["test"] in again and not ev.get("fixture"):
                        first = res.tests[ev["test"]]
                        if ev["outcome"] in ("pass", "skip"):
                            first["flaky"] = f"{first['outcome']} then {ev['outcome']}"
                            first["outcome"] = ev["outcome"]
    res.seconds = time.monotonic() - t0
    return res


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Nothing in the environment may change which asyncio the tests see.
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    return env


def run_only(
    python: str, mode: str, tests: dict[str, Any], out_dir: str, *, test_timeout: float,
    module_timeout: float,
) -> dict[str, str]:
    """Run just these tests (module -> test ids) in *mode*; test id -> outcome.

    A ``<module id>::exit`` id runs its whole module, since how the
    interpreter ends depends on everything that ran before.
    """
    version = python_info(python)["version"]
    outcomes: dict[str, str] = {}
    for module, ids in tests.items():
        ids = set(ids)
        whole = any(t.endswith("::exit") for t in ids)
        raw_dir = os.path.join(out_dir, "raw", f"{version}-{mode}-only")
        os.makedirs(raw_dir, exist_ok=True)
        res = run_module(python, version, mode, module, raw_dir, test_timeout=test_timeout,
                         module_timeout=module_timeout, max_restarts=3, rerun_failures=True,
                         env=_child_env(), only=None if whole else ids)
        for test_id, rec in res.tests.items():
            outcomes[test_id] = rec["outcome"]
        outcomes[f"{module_id(module)}::exit"] = exit_outcome(res.exit)
    return outcomes


def run(
    python: str, modes: list[str], modules: list[str] | None, out_dir: str, *, jobs: int,
    test_timeout: float, module_timeout: float, max_restarts: int, rerun_failures: bool,
    quiet: bool = False, deselect_expected: bool = False,
) -> dict[str, dict[str, Any]]:
    info = python_info(python)
    ver = info["version"]
    mods = modules or info["modules"]
    unknown = [m for m in mods if m not in info["modules"]]
    if unknown:
        raise SystemExit(f"Python {ver} has no test.test_asyncio modules {unknown}")
    env = _child_env()
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        raw_dir = os.path.join(out_dir, "raw", f"{ver}-{mode}")
        os.makedirs(raw_dir, exist_ok=True)
        # Timings mean little without the machine's load (other jobs).
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        done: dict[str, ModuleResult] = {}
        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            futs = {
                pool.submit(run_module, python, ver, mode, m, raw_dir, test_timeout=test_timeout,
                            module_timeout=module_timeout, max_restarts=max_restarts,
                            rerun_failures=rerun_failures, env=env,
                            deselect_expected=deselect_expected): m
                for m in mods
            }
            for fut in concurrent.futures.as_completed(futs):
                r = fut.result()
                done[r.module] = r
                if not quiet:
                    c = r.counts()
                    bad = sum(c[k] for k in _BAD_OUTCOMES)
                    print(f"[{ver} {mode:8}] {r.module:28} {r.seconds:7.1f}s  pass {c['pass']:4}"
                          f"  skip {c['skip']:3}  bad {bad:3}"
                          f"{'  exit: ' + r.exit if r.exit != 'ok' else ''}", flush=True)
        wall = time.monotonic() - t0
        doc = {"python": ver, "python_full": info["full"], "executable": info["executable"],
               "mode": mode, "seconds": round(wall, 1), "jobs": jobs,
               "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
               "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
               "modules": {m: done[m].to_json() for m in mods}}
        path = os.path.join(out_dir, "raw", f"{ver}-{mode}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
        if not quiet:
            print(f"[{ver} {mode:8}] all modules: {wall:.1f}s wall -> {path}", flush=True)
        results[mode] = doc
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append", required=True,
                    help="interpreter under test (repeatable); aioguest must import in it")
    ap.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--modules", nargs="+", help="test_asyncio module names (default: all)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--jobs", "-j", type=int, default=1, help="modules run at once")
    ap.add_argument("--test-timeout", type=float, default=120.0)
    ap.add_argument("--module-timeout", type=float, default=1800.0)
    ap.add_argument("--max-restarts", type=int, default=10)
    ap.add_argument("--no-rerun", dest="rerun", action="store_false",
                    help="do not run failed tests a second time")
    ap.add_argument("--deselect-expected", action="store_true",
                    help="report the tests expected.py lists as skipped, without running them")
    ap.add_argument("--report", action="store_true",
                    help="then compare the modes (report.py) and fail on unexpected differences")
    args = ap.parse_args(argv)
    status = 0
    for python in args.python:
        # Absolute (children run in a scratch directory), but not resolved:
        # a venv's interpreter is known by its symlink's path.
        exe = os.path.abspath(python) if os.sep in python else shutil.which(python) or python
        run(exe, args.mode, args.modules, args.out, jobs=args.jobs,
            test_timeout=args.test_timeout, module_timeout=args.module_timeout,
            max_restarts=args.max_restarts, rerun_failures=args.rerun,
            deselect_expected=args.deselect_expected)
        if args.report:
            from . import report

            status |= report.main(["--out", args.out, "--python", python_info(exe)["version"]])
    return status


if __name__ == "__main__":
    sys.exit(main())
