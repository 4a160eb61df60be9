"""Guest runs doing real waiting: sockets, TCP streams, subprocesses, threads."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import outcome
import pytest

from conftest import PROMPT


def test_socketpair_read_of_data_written_later_by_another_thread(host, spawn):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            spawn(b.send, b"hello", delay=0.1)
            t0 = time.monotonic()
            data = await asyncio.wait_for(loop.sock_recv(a, 100), 5)
            return data, time.monotonic() - t0

    data, waited = host.run(main()).unwrap()
    assert data == b"hello"
    assert 0.05 <= waited < PROMPT


def test_socketpair_streams_both_directions(host):
    async def main():
        a, b = socket.socketpair()
        a_r, a_w = await asyncio.open_connection(sock=a)
        b_r, b_w = await asyncio.open_connection(sock=b)
        try:
            received = asyncio.ensure_future(a_r.readexactly(200_000))
            await asyncio.sleep(0)
            b_w.write(b"y" * 200_000)  # more than a socket buffer: needs write waits
            await b_w.drain()
            return len(await asyncio.wait_for(received, 5))
        finally:
            a_w.close()
            b_w.close()
            await a_w.wait_closed()
            await b_w.wait_closed()

    assert host.run(main()) == outcome.Value(200_000)


LIMIT = 2**20  # stream buffer limit: lines longer than the default 64 KiB


async def echo_handler(reader, writer):
    try:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def talk(port, lines):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=LIMIT)
    got = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            got.append(await asyncio.wait_for(reader.readline(), 5))
    finally:
        writer.close()
        await writer.wait_closed()
    return got


LINES = [b"one", b"two", b"z" * 300_000]
EXPECTED = [line.upper() + b"\n" for line in LINES]


def test_tcp_server_and_client_in_guest(host):
    async def main():
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0, limit=LIMIT)
        try:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.gather(talk(port, LINES), talk(port, LINES[:2]))
        finally:
            server.close()
            await server.wait_closed()

    assert host.run(main()) == outcome.Value([EXPECTED, EXPECTED[:2]])


def test_tcp_client_in_guest_against_server_in_thread(host, spawn):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(10)
        with conn, conn.makefile("rb") as r:
            for line in r:
                time.sleep(0.01)  # the guest really has to wait for replies
                conn.sendall(line.upper())

    with listener:
        spawn(serve)
        assert host.run(talk(port, LINES)) == outcome.Value(EXPECTED)


def test_subprocess_exec_with_pipes(host):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys, time; data = sys.stdin.read(); time.sleep(0.1); "
            "print(data.upper()); sys.exit(3)",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(b"abc"), 20)
        return out, err, proc.returncode

    assert host.run(main(), timeout=30) == outcome.Value((b"ABC\n", None, 3))


def test_subprocess_wait_returncode(host):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hi')", stdout=asyncio.subprocess.PIPE
        )
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        return line, await asyncio.wait_for(proc.wait(), 20)

    assert host.run(main(), timeout=30) == outcome.Value((b"hi\n", 0))


def test_run_in_executor_result(host):
    async def main():
        loop = asyncio.get_running_loop()
        quick = await loop.run_in_executor(None, sum, [1, 2, 3])
        slow = await loop.run_in_executor(None, lambda: (time.sleep(0.1), "slow")[1])
        return quick, slow

    assert host.run(main()) == outcome.Value((6, "slow"))


def test_exception_in_executor_propagates(host):
    def boom():
        raise ZeroDivisionError("in executor")

    async def main():
        await asyncio.get_running_loop().run_in_executor(None, boom)

    out = host.run(main())
    assert isinstance(out, outcome.Error) and isinstance(out.error, ZeroDivisionError)


def test_call_soon_threadsafe_from_foreign_thread_wakes_guest(host, spawn):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        sent = []

        def foreign():
            sent.append(time.monotonic())
            loop.call_soon_threadsafe(fut.set_result, threading.get_ident())

        spawn(foreign, delay=0.1)
        ident = await asyncio.wait_for(fut, 100)
        return ident, time.monotonic() - sent[0]

    ident, latency = host.run(main()).unwrap()
    assert ident != threading.get_ident()
    assert latency < PROMPT


@pytest.mark.parametrize("n", [1, 20])
def test_many_concurrent_waiters(host, n):
    """Several tasks waiting on different fds and timers at once."""

    async def main():
        loop = asyncio.get_running_loop()
        pairs = [socket.socketpair() for _ in range(n)]
        try:
            for a, _ in pairs:
                a.setblocking(False)

            async def waiter(i, a):
                await asyncio.sleep(0.01 * (i % 5))
                return await asyncio.wait_for(loop.sock_recv(a, 10), 5)

            tasks = [asyncio.ensure_future(waiter(i, a)) for i, (a, _) in enumerate(pairs)]
            await asyncio.sleep(0.02)
            for i, (_, b) in enumerate(reversed(pairs)):
                b.send(b"%d" % (n - 1 - i))
                await asyncio.sleep(0.001)
            return await asyncio.gather(*tasks)
        finally:
            for a, b in pairs:
                a.close()
                b.close()

    assert host.run(main()) == outcome.Value([b"%d" % i for i in range(n)])
