"""The Xvfb fixture itself: a display that X clients can connect to."""

from __future__ import annotations

import os
import socket


def test_x_display_accepts_connections(x_display):
    assert os.environ["DISPLAY"] == x_display
    number = x_display.lstrip(":").split(".")[0]
    path = f"/tmp/.X11-unix/X{number}"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    finally:
        s.close()
