"""Driving the sample apps in examples/ from tests: what several hosts share."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
from pathlib import Path

# A non-interactive shell starts background jobs with SIGINT ignored, and
# an ignored signal stays ignored across exec: give the sample the default.
_DEFAULT_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def ctrl_c_sample(sample: Path, port: int, env: dict[str, str]) -> None:
    """Start *sample* downloading from *port*, press Ctrl-C once it prints
    "receiving", and check it cancelled its guest cleanly: the result line
    says "interrupted", exit status 130, no traceback, nothing abandoned."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, str(sample)]
        + ["--port", str(port), "--size", "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=sample.parent,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the sample did not start downloading within 30 s"
        assert proc.stdout.readline().strip() == "receiving"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert "abandoned" not in err, err
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"result: interrupted; ticks \d+", last), (last, err)
    assert proc.returncode == 130, err
