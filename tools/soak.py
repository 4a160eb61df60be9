#!/usr/bin/env python3
"""Soak aioguest: guest runs on a queue host for a long time, with traffic
and injected failures, then check that nothing leaked.

What one guest run does, for --run-length seconds, until the host cancels
its main task:

* echo clients: round trips of 1 B to 64 KiB through the Go echo peer
  (cmd/echopeer, a separate process), reconnecting now and then, and now
  and then aborting their own connection mid-message (injected);
* a flaky echo server inside the guest that drops connections at random,
  and clients that must see those drops as connection errors (injected);
* timers: bursts of call_later that must never fire early, and every one
  fires or is cancelled;
* cancellations: tasks cancelled mid-sleep and mid-read, wait_for timeouts;
* callbacks that raise (injected): they must reach the exception handler;
* a foreign thread feeding call_soon_threadsafe, in order, and host code
  scheduling guest callbacks between turns;
* executor jobs and, every few seconds, a subprocess.

Runs alternate between the Go worker and the host watching the poller's fd
(--mode).  Some runs end early because the host refuses a turn (injected):
their outcome must be that refusal.  Every other run must end with the
CancelledError of its cancelled main task.

At the end it prints operation and error counts and the thread, fd and RSS
figures at start (after the first run, which warms everything up) and end,
and exits 1 if anything leaked or an error nobody injected happened.

    PYTHONPATH=python .venv/bin/python tools/soak.py --duration 120
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import heapq
import itertools
import math
import os
import queue
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome

import aioguest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Injected(Exception):
    """An error the soak raised on purpose."""


class HostRefused(Exception):
    """The host refusing a turn, on purpose."""


class Stats:
    def __init__(self) -> None:
        self.ops: collections.Counter[str] = collections.Counter()
        self.expected: collections.Counter[str] = collections.Counter()
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.messages: list[str] = []

    def bad(self, what: str, detail: object = "") -> None:
        self.unexpected[what] += 1
        if len(self.messages) < 30:
            self.messages.append(f"{what}: {detail!r}" if detail != "" else what)


# ---------------------------------------------------------------- the host


class Host:
    """A queue-based host loop, optionally watching the poller's fd itself."""

    def __init__(self, watch: bool) -> None:
        self.queue: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self.timers: list[tuple[float, int, Callable[[], Any]]] = []
        self.seq = itertools.count()
        self.watch = watch
        self.wake_r, self.wake_w = os.pipe() if watch else (-1, -1)
        self.fd: int | None = None
        self.fd_callback: Callable[[], None] | None = None
        self.refuse_at: float | None = None

    # the callbacks a guest run gets
    def run_sync_soon_threadsafe(self, fn: Callable[[], Any]) -> None:
        self.queue.put(fn)
        if self.wake_w >= 0:
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:  # pragma: no cover - a full pipe wakes anyway
                pass

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], Any]) -> None:
        if self.refuse_at is not None and time.monotonic() >= self.refuse_at:
            self.refuse_at = None
            raise HostRefused("the host refused a turn (injected)")
        self.queue.put(fn)

    # PollerWatcher
    def watch_fd(self, fd: int, callback: Callable[[], None]) -> None:
        self.fd, self.fd_callback = fd, callback

    def unwatch(self) -> None:
        self.fd = self.fd_callback = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        entry = [callback]
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), entry.pop))
        return lambda: entry.clear()

    def poller_watcher(self) -> Any:
        host = self

        class Watcher:
            def watch(self, fd: int, callback: Callable[[], None]) -> None:
                host.watch_fd(fd, callback)

            def unwatch(self) -> None:
                host.unwatch()

            def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
                return host.call_later(delay, callback)

        return Watcher() if self.watch else None

    def later(self, delay: float, fn: Callable[[], Any]) -> None:
        """Host code after delay (host thread only)."""
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), lambda: fn))

    def run_until(self, done: Callable[[], bool], limit: float) -> None:
        deadline = time.monotonic() + limit
        while not done():
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"the guest run did not finish within {limit} s")
            while self.timers and self.timers[0][0] <= now:
                _, _, get = heapq.heappop(self.timers)
                try:
                    fn = get()
                except IndexError:
                    continue  # cancelled
                fn()
            wait = min(0.05, deadline - now)
            if self.timers:
                wait = min(wait, max(self.timers[0][0] - now, 0))
            if self.watch:
                if not self.queue.empty():
                    wait = 0
                poll = select.poll()
                poll.register(self.wake_r, select.POLLIN)
                fd = self.fd
                if fd is not None:
                    poll.register(fd, select.POLLIN)
                ready = dict(poll.poll(math.ceil(wait * 1000)))
                if ready.get(self.wake_r):
                    os.read(self.wake_r, 4096)
                if fd is not None and ready.get(fd) and self.fd == fd and self.fd_callback:
                    self.fd_callback()
            else:
                try:
                    self.queue.get(timeout=wait)()
                except queue.Empty:
                    pass
            # only what was queued before this point: a busy guest queues
            # its next turn from each turn, and draining until empty would
            # starve the host's own timers
            for _ in range(self.queue.qsize()):
                try:
                    fn = self.queue.get_nowait()
                except queue.Empty:
                    break
                fn()
        # strays, as a real host would run them
        while True:
            try:
                self.queue.get_nowait()()
            except queue.Empty:
                break

    def close(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)


# ---------------------------------------------------------------- guest work


class Guest:
    def __init__(self, stats: Stats, rng: random.Random, echo: tuple[str, int], clients: int):
        self.stats = stats
        self.rng = rng
        self.echo = echo
        self.clients = clients
        self.injected_aborts = 0
        self.server_drops = 0
        self.flaky_errors = 0
        self.timers_scheduled = 0
        self.timers_fired = 0
        self.timers_cancelled = 0
        self.feed: list[int] = []
        self.feed_sent = 0

    def handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Injected):
            self.stats.expected["callback raised (injected)"] += 1
        else:
            self.stats.bad("exception handler", context.get("message"))
            loop.default_exception_handler(context)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.handler)
        server = await loop.create_server(self.flaky_echo, "127.0.0.1", 0)
        flaky_addr = server.sockets[0].getsockname()[:2]
        tasks = [loop.create_task(self.echo_client(i)) for i in range(self.clients)]
        tasks += [loop.create_task(self.flaky_client(flaky_addr)) for _ in range(2)]
        tasks += [
            loop.create_task(self.timers()),
            loop.create_task(self.cancellations()),
            loop.create_task(self.raisers()),
            loop.create_task(self.executor_and_subprocesses()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.close()
            await server.wait_closed()

    async def echo_client(self, i: int) -> None:
        rng = random.Random(self.rng.random())
        while True:
            try:
                reader, writer = await asyncio.open_connection(*self.echo)
            except OSError as exc:
                self.stats.bad("connect to the echo peer", exc)
                await asyncio.sleep(0.1)
                continue
            aborted = False
            try:
                for _ in range(rng.randint(1, 200)):
                    size = rng.choice((1, 100, 4096, 65536))
                    payload = rng.randbytes(size)
                    writer.write(payload)
                    if rng.random() < 0.002:
                        writer.transport.abort()
                        aborted = True
                        self.stats.expected["client aborted its connection (injected)"] += 1
                        break
                    await writer.drain()
                    # No wait_for here: before 3.12 it can swallow a
                    # cancellation that lands as the read completes, and the
                    # client would then never stop.  A stuck read shows up as
                    # a run that does not finish.
                    got = await reader.readexactly(size)
                    if got != payload:
                        self.stats.bad("echo mismatch", (size, len(got)))
                    self.stats.ops["echo round trips"] += 1
                    self.stats.ops["echo bytes"] += size
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.stats.bad("echo peer connection", exc)
            finally:
                if not aborted:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except (ConnectionError, OSError) as exc:
                        self.stats.bad("closing an echo connection", exc)
            self.stats.ops["echo connections"] += 1

    def flaky_echo(self) -> asyncio.Protocol:
        """A server-side echo protocol that drops its connection at random.

        A protocol rather than start_server's coroutine: 3.11's streams
        report a handler task cancelled at teardown as an error in a
        callback (fixed in 3.12), which would blur the soak's own errors.
        """
        guest = self
        rng = random.Random(self.rng.random())

        class FlakyEcho(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if rng.random() < 0.05:
                    guest.server_drops += 1
                    guest.stats.expected["flaky server dropped a connection (injected)"] += 1
                    self.transport.abort()
                else:
                    self.transport.write(data)

        return FlakyEcho()

    async def flaky_client(self, addr: tuple[str, int]) -> None:
        rng = random.Random(self.rng.random())
        while True:
            reader, writer = await asyncio.open_connection(*addr)
            try:
                while True:
                    payload = rng.randbytes(rng.choice((10, 1000, 20000)))
                    writer.write(payload)
                    await writer.drain()
                    if await reader.readexactly(len(payload)) != payload:
                        self.stats.bad("flaky echo mismatch")
                    self.stats.ops["flaky round trips"] += 1
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                # Only the server's injected drops may end these.
                self.flaky_errors += 1
                if self.flaky_errors > self.server_drops:
                    self.stats.bad("flaky connection error without a drop", exc)
                else:
                    self.stats.expected["flaky client saw the drop"] += 1
            finally:
                writer.transport.abort()

    async def timers(self) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.rng.random())
        pending: dict[int, asyncio.TimerHandle] = {}
        ids = itertools.count()
        # A timer may fire late (the host was busy), never early; allow for
        # the clock's resolution, as asyncio itself does.
        slack = time.get_clock_info("monotonic").resolution

        def fired(i: int, when: float) -> None:
            pending.pop(i, None)
            self.timers_fired += 1
            if loop.time() < when - slack:
                self.stats.bad("a timer fired early", when - loop.time())

        try:
            while True:
                for _ in range(rng.randint(1, 50)):
                    i = next(ids)
                    when = loop.time() + rng.random() * 0.05
                    pending[i] = loop.call_at(when, fired, i, when)
                    self.timers_scheduled += 1
                # cancel some of them again
                for i in rng.sample(sorted(pending), k=min(len(pending), rng.randint(0, 5))):
                    pending.pop(i).cancel()
                    self.timers_cancelled += 1
                await asyncio.sleep(rng.random() * 0.02)
        finally:
            for handle in pending.values():
                handle.cancel()
                self.timers_cancelled += 1
            pending.clear()

    async def cancellations(self) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.rng.random())
        while True:
            a, b = socket.socketpair()
            a.setblocking(False)
            with a, b:
                sleeper = loop.create_task(asyncio.sleep(10))
                reader = loop.create_task(loop.sock_recv(a, 10))  # nothing ever arrives
                await asyncio.sleep(rng.random() * 0.01)
                sleeper.cancel()
                reader.cancel()
                # asyncio.wait, not await: a CancelledError caught here could
                # be this task's own cancellation, and swallowing it would
                # keep the run from ever ending.
                await asyncio.wait((sleeper, reader))
                for task in (sleeper, reader):
                    if task.cancelled():
                        self.stats.ops["tasks cancelled"] += 1
                    else:
                        self.stats.bad("a cancelled task finished")
            try:
                await asyncio.wait_for(loop.create_future(), rng.random() * 0.01)
            except asyncio.TimeoutError:
                self.stats.ops["wait_for timeouts"] += 1

    async def raisers(self) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.rng.random())
        while True:
            await asyncio.sleep(rng.random() * 0.2)
            loop.call_soon(_raise_injected)

    async def executor_and_subprocesses(self) -> None:
        loop = asyncio.get_running_loop()
        last_subprocess = 0.0
        while True:
            await loop.run_in_executor(None, time.sleep, 0.001)
            self.stats.ops["executor jobs"] += 1
            if time.monotonic() - last_subprocess > 5:
                last_subprocess = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "print('soak')", stdout=asyncio.subprocess.PIPE
                )
                out, _ = await asyncio.wait_for(proc.communicate(), 60)
                if out != b"soak\n" or proc.returncode != 0:
                    self.stats.bad("subprocess", (out, proc.returncode))
                self.stats.ops["subprocesses"] += 1
            await asyncio.sleep(0.05)

    def record_feed(self, i: int) -> None:
        self.feed.append(i)

    def count_host_call_soon(self) -> None:
        self.stats.ops["call_soon from host code"] += 1


def _raise_injected() -> None:
    raise Injected("a callback raising on purpose")


# ---------------------------------------------------------------- one run


def one_run(
    stats: Stats,
    rng: random.Random,
    echo: tuple[str, int],
    args: argparse.Namespace,
    run_length: float,
    watch: bool,
) -> None:
    host = Host(watch)
    guest = Guest(stats, rng, echo, args.clients)
    refuse = rng.random() < args.refusal_rate
    if refuse:
        host.refuse_at = time.monotonic() + rng.random() * run_length
    outcomes: list[outcome.Outcome[Any]] = []
    task = aioguest.start_guest_run(
        guest.main(),
        run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
        done_callback=outcomes.append,
        poller_watcher=host.poller_watcher(),
    )
    assert task is not None
    loop = task.get_loop()

    # a foreign thread feeding the guest, in order
    stop_feed = threading.Event()

    def feeder() -> None:
        i = 0
        while not stop_feed.wait(0.001):
            try:
                loop.call_soon_threadsafe(guest.record_feed, i)
            except RuntimeError:
                return  # the loop closed (the run ended early)
            i += 1
            guest.feed_sent = i

    feed_thread = threading.Thread(target=feeder, name="soak-feeder")
    feed_thread.start()

    # host code touching the guest between turns
    def host_code() -> None:
        if outcomes:
            return
        loop.call_soon(guest.count_host_call_soon)
        host.later(0.01, host_code)

    host.later(0.01, host_code)
    host.later(run_length, task.cancel)
    try:
        host.run_until(lambda: bool(outcomes), run_length + 120)
    finally:
        stop_feed.set()
        feed_thread.join(10)
        host.close()
    stats.ops["guest runs"] += 1
    stats.ops["worker runs" if not watch else "watch runs"] += 1

    (result,) = outcomes
    if refuse and host.refuse_at is None:
        if isinstance(result, outcome.Error) and isinstance(result.error, HostRefused):
            stats.expected["run ended by a host refusal (injected)"] += 1
        else:
            stats.bad("outcome after a host refusal", result)
    elif isinstance(result, outcome.Error) and isinstance(result.error, asyncio.CancelledError):
        stats.ops["runs cancelled by the host"] += 1
    else:
        stats.bad("run outcome", result)
    if not loop.is_closed():
        stats.bad("loop not closed after the run")
    # asyncio.run's teardown finishes every task before closing the loop
    unfinished = asyncio.all_tasks(loop)
    if unfinished:
        stats.bad("tasks left unfinished by the teardown", sorted(map(repr, unfinished))[:3])
    if guest.feed != list(range(len(guest.feed))):
        stats.bad("call_soon_threadsafe feed out of order or lost")
    stats.ops["call_soon_threadsafe from a thread"] += len(guest.feed)
    if guest.timers_scheduled != guest.timers_fired + guest.timers_cancelled:
        stats.bad(
            "timers neither fired nor cancelled",
            guest.timers_scheduled - guest.timers_fired - guest.timers_cancelled,
        )
    stats.ops["timers fired"] += guest.timers_fired
    stats.ops["timers cancelled"] += guest.timers_cancelled


# ---------------------------------------------------------------- figures


def go_netpoll_fds(targets: dict[int, str]) -> set[int]:
    """The Go runtime's own lazily opened epoll + eventfd (see conftest)."""
    found: set[int] = set()
    for fd, target in targets.items():
        if target != "anon_inode:[eventpoll]":
            continue
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                lines = [ln.split() for ln in f if ln.startswith("tfd:")]
        except OSError:
            continue
        if len(lines) == 1:
            fields = dict(zip(lines[0][0::2], lines[0][1::2], strict=False))
            tfd, data = int(fields.get("tfd:", "-1")), int(fields.get("data:", "0"), 16)
            if data > 0xFFFFFFFF and targets.get(tfd) == "anon_inode:[eventfd]":
                found.update((fd, tfd))
    return found


def figures() -> dict[str, Any]:
    gc.collect()
    targets = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            targets[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
    own = f"/proc/{os.getpid()}/fd"
    ignored = go_netpoll_fds(targets)
    fds = sorted(
        (fd, t)
        for fd, t in targets.items()
        if fd not in ignored and t != own and not t.startswith("/sys/fs/cgroup/")
    )
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    children: set[str] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                children.update(f.read().split())
        except OSError:
            pass
    return {
        "py_threads": sorted(t.name for t in threading.enumerate()),
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": fds,
        "rss_kib": rss,
        "children": sorted(children),
    }


def settled(start: dict[str, Any] | None, limit: float = 10) -> dict[str, Any]:
    """The end figures, once short-lived helpers (asyncio's waitpid
    threads, a child being reaped) have had a bounded time to go."""
    deadline = time.monotonic() + limit
    while True:
        fig = figures()
        if start is None or time.monotonic() >= deadline:
            return fig
        if fig["py_threads"] == start["py_threads"] and fig["fds"] == start["fds"]:
            return fig
        time.sleep(0.05)


def show(label: str, fig: dict[str, Any]) -> None:
    print(
        f"{label}: python threads {len(fig['py_threads'])}, OS threads {fig['os_threads']}, "
        f"fds {len(fig['fds'])}, RSS {fig['rss_kib'] / 1024:.1f} MiB, "
        f"children {len(fig['children'])}",
        flush=True,
    )


# ---------------------------------------------------------------- main


def start_echopeer(go: str, workdir: str) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    binary = os.path.join(workdir, "echopeer")
    subprocess.run([go, "build", "-o", binary, "./cmd/echopeer"], cwd=REPO, check=True, timeout=300)
    proc = subprocess.Popen(
        [binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=workdir
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise SystemExit(f"soak: echopeer said {line!r}")
    host, _, port = line.split(" ", 1)[1].rpartition(":")
    return proc, (host, int(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--run-length", type=float, default=30, help="seconds per guest run")
    parser.add_argument("--clients", type=int, default=16, help="echo clients per run")
    parser.add_argument("--mode", choices=("both", "worker", "watch"), default="both")
    parser.add_argument("--refusal-rate", type=float, default=0.2, help="runs ended by the host")
    parser.add_argument("--rss-tolerance-mib", type=float, default=32)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--go", default=os.environ.get("AIOGUEST_GO") or "go")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    stats = Stats()
    modes = {"both": (False, True), "worker": (False,), "watch": (True,)}[args.mode]

    print(
        f"soak: {args.duration:.0f} s in runs of {args.run_length:.0f} s, {args.clients} echo "
        f"clients, modes {'+'.join('watch' if m else 'worker' for m in modes)}, seed {seed}",
        flush=True,
    )
    show("before anything", figures())
    workdir = tempfile.mkdtemp(prefix="aioguest-soak-")
    peer, echo = start_echopeer(args.go, workdir)
    t0 = time.monotonic()
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    try:
        for n in itertools.count():
            watch = modes[n % len(modes)]
            remaining = args.duration - (time.monotonic() - t0)
            run_length = max(1.0, min(args.run_length, remaining))
            try:
                one_run(stats, rng, echo, args, run_length, watch)
            except Exception as exc:
                # A run that cannot finish leaves nothing sane to go on with.
                stats.bad("a guest run failed to finish", exc)
                break
            if start is None:
                start = figures()
                show("start (after the first run)", start)
            elapsed = time.monotonic() - t0
            print(
                f"  {elapsed:6.0f} s: {stats.ops['guest runs']} runs, "
                f"{stats.ops['echo round trips']} echo round trips, "
                f"{sum(stats.unexpected.values())} unexpected errors",
                flush=True,
            )
            if elapsed >= args.duration:
                break
        # before the echo peer goes: its pipes and process are in "start" too
        end = settled(start)
    finally:
        assert peer.stdin is not None
        peer.stdin.close()  # echopeer exits on stdin EOF
        try:
            peer.wait(30)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()
        if peer.stdout is not None:
            peer.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if end is None:
        end = settled(start)
    show("end", end)
    if start is None:
        start = end

    print("operations:")
    for name, count in sorted(stats.ops.items()):
        print(f"  {name:42} {count}")
    print("errors, injected or expected:")
    for name, count in sorted(stats.expected.items()):
        print(f"  {name:42} {count}")
    print("unexpected errors:")
    for name, count in sorted(stats.unexpected.items()):
        print(f"  {name:42} {count}")
    for message in stats.messages:
        print(f"    {message}")

    leaks = []
    if end["fds"] != start["fds"]:
        gone = set(map(tuple, start["fds"])) - set(map(tuple, end["fds"]))
        new = set(map(tuple, end["fds"])) - set(map(tuple, start["fds"]))
        leaks.append(f"fds: new {sorted(new)}, gone {sorted(gone)}")
    if end["py_threads"] != start["py_threads"]:
        leaks.append(f"python threads: {start['py_threads']} -> {end['py_threads']}")
    if end["os_threads"] > start["os_threads"] + 4:
        leaks.append(f"OS threads: {start['os_threads']} -> {end['os_threads']}")
    peer_pid = str(peer.pid)
    if [c for c in end["children"] if c != peer_pid]:
        leaks.append(f"child processes: {end['children']}")
    growth = (end["rss_kib"] - start["rss_kib"]) / 1024
    if growth > args.rss_tolerance_mib:
        leaks.append(f"RSS grew {growth:.1f} MiB (tolerance {args.rss_tolerance_mib} MiB)")
    print(f"RSS change from start to end: {growth:+.1f} MiB")
    if not stats.ops["echo round trips"] or not stats.ops["guest runs"]:
        leaks.append("no traffic at all")
    for leak in leaks:
        print(f"LEAK: {leak}")
    ok = not leaks and not stats.unexpected
    print("result:", "OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
