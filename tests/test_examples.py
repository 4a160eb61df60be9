"""The demo is documentation that runs: keep it working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def run_demo(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    return subprocess.run(
        [*prefix, sys.executable, str(DEMO), "--size", "0.25", "--files", "3", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_demo_terminal_host_downloads_everything_while_host_ticks():
    done = run_demo("--terminal")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    # 0.25, 0.375 and 0.5 MiB
    assert last.startswith(f"downloaded {int(0.25 * 2**20 * 4.5)} bytes in 3 files"), last
    ticks = int(last.rsplit("ticked", 1)[1].split()[0])
    assert ticks >= 2, "the host's timer never ran while the guest downloaded"
    assert "abandoned" not in done.stderr


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_demo_tk_host_under_xvfb():
    done = run_demo(prefix=("xvfb-run", "-a"))
    assert done.returncode == 0, done.stderr
    assert "abandoned" not in done.stderr
