"""Ready-made hosts: run an asyncio guest inside a toolkit's own event loop.

One module per host loop; each imports its toolkit only when imported
itself, and offers a ``start(coro, ...)`` that returns a
:class:`aioguest.Guest` (cancel it, learn its result):

========================  ==============================================
``aioguest.hosts.tk``       Tkinter
``aioguest.hosts.qt``       PySide6, PyQt6, PyQt5 (the binding the app uses)
``aioguest.hosts.gtk``      GTK 3/4 through PyGObject (GLib main context)
``aioguest.hosts.pygame``   pygame (events posted to the app's own loop)
``aioguest.hosts.asyncio``  another asyncio loop, on that loop's thread
``aioguest.hosts.tornado``  Tornado's IOLoop
``aioguest.hosts.trio``     Trio
``aioguest.hosts.win32``    a Win32 message loop (Windows only)
``aioguest.hosts.webview``  webview-python's loop
========================  ==============================================

Any other loop: implement :class:`aioguest.Host` and call
:func:`aioguest.start_guest`.
"""

from __future__ import annotations

from ..guest import Guest, Host, start_guest

__all__ = ["Guest", "Host", "start_guest"]
