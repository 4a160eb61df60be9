"""Loading of the Go library.

Loading a Go c-shared library starts the Go runtime's OS threads, and a
process with those threads cannot fork safely; so ``import aioguest`` must not
load it: only the first real use (a GoSelector, a guest run) may.  Checked in
a fresh interpreter, where nothing else has loaded it yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import aioguest

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(aioguest.__file__)))

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading

    def state():
        with open("/proc/self/maps") as f:
            loaded = "libaioguest" in f.read()
        return {
            "os_threads": len(os.listdir("/proc/self/task")),
            "py_threads": threading.active_count(),
            "loaded": loaded,
        }

    out = {"before": state()}
    import aioguest
    # touching the public names must not load the library either
    aioguest.start_guest_run, aioguest.GoSelector
    out["imported"] = state()
    sel = aioguest.GoSelector()
    out["selector"] = state()
    sel.close()
    out["closed"] = state()
    print(json.dumps(out))
    """
)


def run_probe(code: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_import_does_not_load_library_or_start_threads():
    out = run_probe(PROBE)
    assert out["before"]["os_threads"] == 1
    assert out["imported"] == {"os_threads": 1, "py_threads": 1, "loaded": False}


def test_first_goselector_loads_library_and_starts_go_threads():
    out = run_probe(PROBE)
    assert out["selector"]["loaded"]
    assert out["selector"]["os_threads"] > 1  # the Go runtime's threads
    # closing it leaves no Python-level thread behind
    assert out["closed"]["py_threads"] == 1


HEADER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capi", "aioguest.h"
)


def test_python_constants_match_the_c_header():
    """capi/aioguest.h is the contract; the binding must not drift from it."""
    import re

    from aioguest import _native

    with open(HEADER) as f:
        defines = {
            name: int(value)
            for name, value in re.findall(r"(?m)^#define AG_(\w+)\s+\(?(-?\d+)u?\)?", f.read())
        }
    assert defines == {
        "ABI_VERSION": _native.ABI_VERSION,
        "READ": _native.READ,
        "WRITE": _native.WRITE,
        "ERR_BASE": _native.ERR_BASE,
        "EINVAL": _native.EINVAL,
        "EBADHANDLE": _native.EBADHANDLE,
        "EEXIST": _native.EEXIST,
        "ENOENT": _native.ENOENT,
        "EBUSY": _native.EBUSY,
        "ECLOSED": _native.ECLOSED,
        "EUNSUPPORTED": _native.EUNSUPPORTED,
        "EINTERNAL": _native.EINTERNAL,
    }
    assert _native.EVENT.size == 16  # sizeof(ag_event)
