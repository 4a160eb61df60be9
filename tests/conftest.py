"""Shared fixtures: a trivial queue-based host loop and a leak check.

The host here is the simplest thing that satisfies the guest-mode contract: the
library's callbacks go into a ``queue.SimpleQueue`` and the host thread runs them
one by one.  Tests use it to run guest code, and also to run *host* code between
guest turns (``host.in_host`` / ``host.call_later``), which is how the "host
touches the guest loop directly" behaviours are exercised.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import math
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

# ---------------------------------------------------------------------------
# The queue host


class QueueHost:
    """A host loop: run_sync_soon_* put callables in a queue, ``pump`` runs them.

    Everything the library hands us is counted, so tests can assert how often
    the guest asked for the host's attention (the "no polling" tests), and from
    which thread (``run_sync_soon_not_threadsafe`` must only be called from the
    host thread; violations are recorded here and fail the run).
    """

    def __init__(self, watch: bool = False) -> None:
        self.queue: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        # watch=True: the host also watches the poller's fd itself (the
        # PollerWatcher path) instead of leaving the wait to the worker; a
        # pipe then wakes the pump for callbacks queued from other threads.
        self.poller_watcher: PumpWatcher | None = PumpWatcher(self) if watch else None
        self._wake_r, self._wake_w = os.pipe() if watch else (-1, -1)
        self.thread_id: int | None = None
        self.threadsafe_calls = 0
        self.not_threadsafe_calls = 0
        # thread idents that called run_sync_soon_threadsafe.  (Idents, not
        # threading.current_thread(): that would create a _DummyThread for
        # every foreign thread the library calls us from.)
        self.threadsafe_callers: set[int] = set()
        self.violations: list[str] = []
        self.outcomes: list[outcome.Outcome] = []
        self.done_thread_ids: list[int] = []
        self.task: Any = None
        self.host_callbacks_run = 0
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._seq = itertools.count()

    # -- the callbacks given to start_guest_run ---------------------------

    def run_sync_soon_threadsafe(self, fn: Callable[[], Any]) -> None:
        self.threadsafe_calls += 1
        self.threadsafe_callers.add(threading.get_ident())
        self.queue.put(fn)
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], Any]) -> None:
        self.not_threadsafe_calls += 1
        if threading.get_ident() != self.thread_id:
            self.violations.append(
                f"run_sync_soon_not_threadsafe({fn!r}) called from thread "
                f"{threading.get_ident()}, host thread is {self.thread_id}"
            )
        self.queue.put(fn)

    def done_callback(self, result: outcome.Outcome) -> None:
        self.outcomes.append(result)
        self.done_thread_ids.append(threading.get_ident())

    @property
    def guest_requests(self) -> int:
        """How many callbacks the library has asked the host to run so far."""
        return self.threadsafe_calls + self.not_threadsafe_calls

    # -- host-side code for tests ------------------------------------------

    def in_host(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` as host code (between guest turns) soon.  Thread-safe."""
        self.queue.put(_HostCode(fn))

    def call_later(self, delay: float, fn: Callable[[], Any]) -> None:
        """Run ``fn`` as host code after ``delay`` seconds.  Host thread only."""
        assert threading.get_ident() == self.thread_id, "QueueHost.call_later off-thread"
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))

    @property
    def loop(self) -> Any:
        """The guest's event loop (from the main task returned by start_guest_run)."""
        return self.task.get_loop()

    # -- running --------------------------------------------------------------

    def start(self, coro: Any, *, not_threadsafe: bool = True, **kwargs: Any) -> Any:
        import aioguest

        self.thread_id = threading.get_ident()
        if not_threadsafe:
            kwargs["run_sync_soon_not_threadsafe"] = self.run_sync_soon_not_threadsafe
        if self.poller_watcher is not None:
            kwargs.setdefault("poller_watcher", self.poller_watcher)
        self.task = aioguest.start_guest_run(
            coro,
            run_sync_soon_threadsafe=self.run_sync_soon_threadsafe,
            done_callback=self.done_callback,
            **kwargs,
        )
        return self.task

    def _run_one(self, fn: Callable[[], Any]) -> None:
        if isinstance(fn, _HostCode):
            self.host_callbacks_run += 1
        try:
            fn()
        except (KeyboardInterrupt, SystemExit) as exc:
            # Never let these reach pytest: they would end the whole session.
            pytest.fail(f"{exc!r} escaped into the host from callback {fn!r}")

    def pump(self, timeout: float = 10) -> outcome.Outcome:
        """Run callbacks until done_callback fires; return its outcome."""
        assert threading.get_ident() == self.thread_id, "pump() off the host thread"
        deadline = time.monotonic() + timeout
        while not self.outcomes:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                self.host_callbacks_run += 1
                self._run_one(fn)
                if self.outcomes:
                    break
            if self.outcomes:
                break
            if now >= deadline:
                pytest.fail(
                    f"guest run did not finish within {timeout} s "
                    f"({self.guest_requests} callbacks requested by the guest so far)"
                )
            wait = deadline - now
            if self._timers:
                wait = min(wait, self._timers[0][0] - now)
            if self.poller_watcher is not None:
                self._pump_watching(wait)
                continue
            try:
                fn = self.queue.get(timeout=max(wait, 0))
            except queue.Empty:
                continue
            self._run_one(fn)
        # Run whatever is already queued (a well-behaved library queues nothing
        # after done_callback, but running strays is what a real host does),
        # then check that done_callback was not called again.
        while True:
            try:
                fn = self.queue.get_nowait()
            except queue.Empty:
                break
            self._run_one(fn)
        assert not self.violations, self.violations
        assert len(self.outcomes) == 1, f"done_callback called {len(self.outcomes)} times"
        assert self.done_thread_ids == [self.thread_id], "done_callback off the host thread"
        return self.outcomes[0]

    def _pump_watching(self, wait: float) -> None:
        """One host loop iteration that also watches the poller's fd."""
        watcher = self.poller_watcher
        assert watcher is not None
        wait = min(wait, watcher.next_timer() - time.monotonic())
        if not self.queue.empty():
            wait = 0
        poll = select.poll()
        poll.register(self._wake_r, select.POLLIN)
        watched = watcher.fd
        if watched is not None:
            poll.register(watched, select.POLLIN)
        ready = dict(poll.poll(max(math.ceil(wait * 1000), 0)))
        if ready.get(self._wake_r):
            os.read(self._wake_r, 4096)
        if watched is not None and ready.get(watched) and watcher.fd == watched:
            watcher.fire()
        watcher.run_due_timers()
        while not self.outcomes:
            try:
                fn = self.queue.get_nowait()
            except queue.Empty:
                break
            self._run_one(fn)

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def run(self, coro: Any, timeout: float = 10, **kwargs: Any) -> outcome.Outcome:
        """start_guest_run(coro, **kwargs) and pump until it is done."""
        self.start(coro, **kwargs)
        return self.pump(timeout)


class PumpWatcher:
    """QueueHost's PollerWatcher: its pump polls the fd and runs the timers."""

    def __init__(self, host: QueueHost) -> None:
        self.host = host
        self.fd: int | None = None
        self.callback: Callable[[], None] | None = None
        self.watch_calls = 0
        self.fired = 0
        self._timers: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.host.thread_id:
            self.host.violations.append(f"PollerWatcher.{what} called off the host thread")

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self._check_thread("watch")
        self.watch_calls += 1
        self.fd, self.callback = fd, callback

    def unwatch(self) -> None:
        self._check_thread("unwatch")
        self.fd = self.callback = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        self._check_thread("call_later")
        entry: list[Any] = [callback]
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), entry))

        def cancel() -> None:
            entry[0] = None

        return cancel

    def next_timer(self) -> float:
        while self._timers and self._timers[0][2][0] is None:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else math.inf

    def fire(self) -> None:
        callback = self.callback
        if callback is not None:
            self.fired += 1
            callback()

    def run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, entry = heapq.heappop(self._timers)
            callback, entry[0] = entry[0], None
            if callback is not None:
                callback()


class _HostCode:
    """Marks a callable queued by the test (host code), not by the library."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def __call__(self) -> Any:
        return self.fn()

    def __repr__(self) -> str:
        return f"<host code {self.fn!r}>"


# How long "promptly" may take in assertions: generous, because CI machines
# are loaded; what the tests tell apart is prompt versus never/much later.
PROMPT = 2.0


def running_loop_in_host() -> Any:
    """asyncio.get_running_loop() as seen from host code (None if it raises)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@pytest.fixture(params=["worker", "watch"])
def host(request: pytest.FixtureRequest) -> Iterator[QueueHost]:
    """The queue host, once with the Go worker waiting, once watching the
    poller's fd itself (every test that uses it runs in both modes)."""
    h = QueueHost(watch=request.param == "watch")
    yield h
    h.close()


@pytest.fixture
def worker_host() -> QueueHost:
    """The queue host with the Go worker waiting (worker-specific tests)."""
    return QueueHost()


# ---------------------------------------------------------------------------
# Helper threads


class Spawner:
    """Starts helper threads and joins them (bounded) at teardown."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def __call__(self, fn: Callable[..., Any], *args: Any, delay: float = 0) -> threading.Thread:
        def target() -> None:
            try:
                if delay:
                    time.sleep(delay)  # short, fixed: a helper's "later"
                fn(*args)
            except BaseException as exc:  # reported at teardown
                self.errors.append(exc)

        t = threading.Thread(target=target, name=f"test-helper-{len(self.threads)}", daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def join(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"helper threads still running: {alive}"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    s = Spawner()
    yield s
    s.join()


# ---------------------------------------------------------------------------
# Leak check


@pytest.fixture(scope="session")
def go_runtime() -> Iterator[None]:
    """Load the Go library once, so its OS threads are part of every baseline."""
    import aioguest

    sel = aioguest.GoSelector()
    yield
    sel.close()


def _go_netpoll_fds(targets: dict[int, str]) -> set[int]:
    """The Go runtime's own epoll instance and the eventfd registered in it.

    Go opens them lazily, the first time its scheduler needs a timer (the
    background scavenger does, after some garbage collections), so they
    can appear during any test.  Recognised by content: one registration,
    an eventfd, whose epoll data is a pointer (Go's &netpollEventFd).  A
    GoSelector's wake-up eventfd carries the data 0xffffffff and user fds
    carry their number and a 32-bit tag, so a leaked selector is not
    mistaken for it.
    """
    found: set[int] = set()
    for fd, target in targets.items():
        if target != "anon_inode:[eventpoll]":
            continue
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        entries = [line.split() for line in info.splitlines() if line.startswith("tfd:")]
        if len(entries) != 1:
            continue
        fields = dict(zip(entries[0][0::2], entries[0][1::2], strict=False))
        try:
            tfd, data = int(fields["tfd:"]), int(fields["data:"], 16)
        except (KeyError, ValueError):
            continue
        if data > 0xFFFFFFFF and targets.get(tfd) == "anon_inode:[eventfd]":
            found.update((fd, tfd))
    return found


def _fds() -> set[tuple[int, str]]:
    own = f"/proc/{os.getpid()}/fd"
    targets = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if target == own:  # the directory listing's own fd
            continue
        if target.startswith("/sys/fs/cgroup/"):
            # The Go runtime (1.25+) keeps the cgroup CPU-quota files open to
            # adjust GOMAXPROCS, and may reopen them at any time: its fds,
            # not a leak of the code under test.
            continue
        targets[int(name)] = target
    go_runtime = _go_netpoll_fds(targets)
    return {(fd, target) for fd, target in targets.items() if fd not in go_runtime}


def _children() -> set[str]:
    pids: set[str] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(f.read().split())
        except OSError:
            pass  # the thread exited meanwhile
    return pids


def _snapshot() -> tuple[set[threading.Thread], set[tuple[int, str]], set[str]]:
    return set(threading.enumerate()), _fds(), _children()


@pytest.fixture(autouse=True)
def no_leaks(go_runtime: None) -> Iterator[None]:
    """Fail a test that leaves Python threads, fds or child processes behind.

    Cleanup can be asynchronous (asyncio's waitpid threads, executor threads
    finishing, a worker thread exiting after its run ended), so wait a bounded
    time for the state to return to the baseline.
    """
    threads0, fds0, children0 = _snapshot()
    yield
    deadline = time.monotonic() + 5
    collected = False
    while True:
        threads, fds, children = _snapshot()
        leaked_threads = threads - threads0
        leaked_fds = fds - fds0
        leaked_children = children - children0
        if not (leaked_threads or leaked_fds or leaked_children):
            return
        if time.monotonic() >= deadline:
            break
        if not collected and time.monotonic() >= deadline - 4:
            # Garbage cycles (a failed test's traceback, say) may hold sockets.
            gc.collect()
            collected = True
        time.sleep(0.01)
    problems = []
    if leaked_threads:
        problems.append(f"threads: {sorted(t.name for t in leaked_threads)}")
    if leaked_fds:
        problems.append(f"fds: {sorted(leaked_fds)}")
    if leaked_children:
        problems.append(f"child processes: {sorted(leaked_children)}")
    pytest.fail("leaked after the test: " + "; ".join(problems))
