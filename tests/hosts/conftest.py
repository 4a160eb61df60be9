"""Fixtures for the host adapters' tests: an X display when there is none."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """An X display for Tk and GTK: $DISPLAY if set, else our own Xvfb.

    Session-scoped, so the server starts before any test's leak-check
    baseline and is not counted as a leaked child process.
    """
    existing = os.environ.get("DISPLAY")
    if existing:
        yield existing
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (`make test` installs it: tools/system-deps.sh)")
    # -displayfd: Xvfb picks a free display number and writes it to the fd
    # once it accepts connections, so there is neither a race on the
    # number nor a sleep waiting for the server to come up.
    r, w = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    try:
        number = b""
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([r], [], [], 30)
            chunk = os.read(r, 16) if ready else b""
            if not chunk:
                raise RuntimeError("Xvfb did not report a display number within 30 s")
            number += chunk
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(r)
    display = f":{number.decode().strip()}"
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        del os.environ["DISPLAY"]
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
