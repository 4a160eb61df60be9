"""Which thread should tell the host that the I/O wait is over?

Measures one-byte round trips to an echo peer in another process, where the
host thread never blocks in the kernel itself: it hands "wait until the
socket is readable" to a worker and sleeps on a queue until notified, as a
guest run does.  Candidates:

  lent      a Python thread lends itself to Go: it blocks in ag_handoff_next
            (GIL released), Go runs epoll_wait on it, and on return the same
            thread, which keeps its Python thread state, notifies the host
            (what aioguest ships);
  spawned   a Go-created, OS-locked thread runs the wait and calls a ctypes
            callback to notify (ctypes makes and destroys a Python thread
            state around every call);
  pythread  a plain Python worker thread around select.epoll (the design of
            Trio's guest mode and oremanj/aioguest), for reference;
  pythread_go  pythread's structure with the kernel wait in Go (a diagnostic);
  direct    the host blocks in epoll itself: the floor, not a guest design;
  godirect  the same through GoSelector.select (the cost of the Go call).

    python bench/notify_paths.py [--rounds N] [--repeat K]
"""

from __future__ import annotations

import argparse
import ctypes
import queue
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import aioguest
from aioguest import _native

PEER = (
    "import socket, sys\n"
    "s = socket.socket(fileno=int(sys.argv[1]))\n"
    "while (b := s.recv(1)):\n"
    "    s.sendall(b)\n"
)


def with_peer(fn: Callable[[socket.socket, int], float], rounds: int) -> float:
    mine, theirs = socket.socketpair()
    peer = subprocess.Popen(
        [sys.executable, "-c", PEER, str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    try:
        return fn(mine, rounds)
    finally:
        mine.close()
        peer.wait(10)


def direct(sock: socket.socket, rounds: int) -> float:
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    t0 = time.perf_counter()
    for _ in range(rounds):
        sock.send(b"x")
        ep.poll()
        sock.recv(1)
    dt = time.perf_counter() - t0
    ep.close()
    return dt


def godirect(sock: socket.socket, rounds: int) -> float:
    sel = aioguest.GoSelector()
    sel.register(sock, 1)
    t0 = time.perf_counter()
    for _ in range(rounds):
        sock.send(b"x")
        sel.select(None)
        sock.recv(1)
    dt = time.perf_counter() - t0
    sel.close()
    return dt


def _worker_round_trips(sock: socket.socket, rounds: int, wait: Callable[[], object]) -> float:
    """A Python worker thread calls wait() per request; queues carry both ways."""
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
    notes: queue.SimpleQueue[object] = queue.SimpleQueue()

    def worker() -> None:
        while requests.get():
            notes.put(wait())

    thread = threading.Thread(target=worker)
    thread.start()
    t0 = time.perf_counter()
    for _ in range(rounds):
        sock.send(b"x")
        requests.put(True)
        notes.get()
        sock.recv(1)
    dt = time.perf_counter() - t0
    requests.put(False)
    thread.join()
    return dt


def pythread(sock: socket.socket, rounds: int) -> float:
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    try:
        return _worker_round_trips(sock, rounds, ep.poll)
    finally:
        ep.close()


def pythread_go(sock: socket.socket, rounds: int) -> float:
    """pythread's structure, but the kernel wait is a blocking Go call."""
    sel = aioguest.GoSelector()
    sel.register(sock, 1)
    try:
        return _worker_round_trips(sock, rounds, lambda: sel.wait(None))
    finally:
        sel.close()


def _go_round_trips(sock: socket.socket, rounds: int, start: Callable[..., object]) -> float:
    sel = aioguest.GoSelector()
    sel.register(sock, 1)
    handoff = sel.open_handoff()
    notes: queue.SimpleQueue[object] = queue.SimpleQueue()
    keep = start(handoff, notes)
    buf, cap = sel.buffer, sel.capacity
    t0 = time.perf_counter()
    for _ in range(rounds):
        sock.send(b"x")
        handoff.request(None, cap)
        notes.get()
        handoff.take(buf, cap)
        sock.recv(1)
    dt = time.perf_counter() - t0
    sel.close()
    del keep
    return dt


def lent(sock: socket.socket, rounds: int) -> float:
    def start(handoff: aioguest.handoff.Handoff, notes: queue.SimpleQueue[object]) -> None:
        handoff.start(lambda: notes.put(1) or True)

    return _go_round_trips(sock, rounds, start)


NOTIFY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def spawned(sock: socket.socket, rounds: int) -> object:
    native = _native.load()
    spawn = native.dll.ag_handoff_spawn
    spawn.argtypes = [ctypes.c_void_p, NOTIFY, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]

    def start(handoff: aioguest.handoff.Handoff, notes: queue.SimpleQueue[object]) -> object:
        callback = NOTIFY(lambda arg: notes.put(1))
        err = _native.errbuf()
        rc = spawn(handoff._handle, callback, None, err, len(err))
        if rc < 0:
            _native.raise_error(rc, err, "spawn")
        return callback  # ctypes callbacks must outlive their last call

    return _go_round_trips(sock, rounds, start)


CANDIDATES = {
    "direct": direct,
    "godirect": godirect,
    "lent": lent,
    "spawned": spawned,
    "pythread": pythread,
    "pythread_go": pythread_go,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for _ in range(args.repeat):
        # Interleaved, so drift in machine load hits every candidate alike.
        for name, fn in CANDIDATES.items():
            times[name].append(with_peer(fn, args.rounds) / args.rounds * 1e6)  # type: ignore[arg-type]
    floor = statistics.median(times["direct"])
    print(f"Python {sys.version.split()[0]}, {args.rounds} round trips x {args.repeat}")
    print(f"{'path':10} {'median us/rt':>13} {'min':>8} {'vs direct':>10}")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:10} {med:13.1f} {min(samples):8.1f} {med / floor:9.2f}x")


if __name__ == "__main__":
    main()
