"""Run one workload under one contender and print one JSON result line.

    python bench/worker.py IMPL HOST WORKLOAD --peer HOST:PORT [--params JSON]

IMPL is how the workload's loop runs:

  asyncio           asyncio.run (HOST none): the limit
  trio              trio.run (HOST none)
  aioguest          aioguest.start_guest_run on HOST (queue, tk, qt, trio); the
                    aioguest imported is whichever the interpreter finds: ours
                    (PYTHONPATH=python) or oremanj's 0.1.0 in its own venv
  aioguest-adapter  our ready-made adapter for HOST (tk, qt, trio): the host
                    loop watches the Go poller's fd, no worker thread
  aioguest-adapter-worker  the same adapter with watch_poller=False
  trio-guest        trio.lowlevel.start_guest_run on HOST, Trio workloads
  qasync            asyncio on qasync's QEventLoop (HOST qt)
  trio-asyncio      asyncio workloads inside trio.run via trio_asyncio (HOST trio)

The driver (bench/run.py) starts one fresh process per measurement, so no
contender inherits another's threads, caches or heap.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from workloads import aio
from workloads.common import (
    DEFAULTS,
    Context,
    Probe,
    SteadySampler,
    idle_result,
    process_sample,
)

from hosts import HOSTS, asyncio_periodic, trio_periodic

AsyncWorkload = Callable[[Context], Coroutine[Any, Any, dict[str, Any]]]


def run_asyncio(workload: AsyncWorkload, ctx: Context, periodic: bool) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        if periodic:
            asyncio_periodic(ctx.params["host_period"], ctx.probe)
        return await workload(ctx)

    return asyncio.run(main())


def run_trio(
    main: Callable[[], Coroutine[Any, Any, dict[str, Any]]], ctx: Context, periodic: bool
) -> dict[str, Any]:
    """trio.run(main), with the periodic host timer as a sibling task."""
    import trio

    async def wrapper() -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            if periodic:
                nursery.start_soon(trio_periodic, ctx.params["host_period"], ctx.probe)
            result = await main()
            nursery.cancel_scope.cancel()
        return result

    return trio.run(wrapper)


def run_qasync(workload: AsyncWorkload, ctx: Context, periodic: bool) -> dict[str, Any]:
    import qasync

    host = HOSTS["qt"]()
    if periodic:
        host.start_periodic(ctx.params["host_period"], ctx.probe)
    loop = qasync.QEventLoop(host.app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            result: dict[str, Any] = loop.run_until_complete(workload(ctx))
    finally:
        asyncio.set_event_loop(None)
        host.close()
    return result


def run_guest(
    impl: str, host_name: str, workload_name: str, ctx: Context, periodic: bool
) -> dict[str, Any]:
    host = HOSTS[host_name]()
    box: list[Any] = []

    def done(result: Any) -> None:
        box.append(result)
        host.stop()

    if impl == "aioguest":
        import aioguest

        def start() -> None:
            aioguest.start_guest_run(
                aio.WORKLOADS[workload_name](ctx),
                run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
                done_callback=done,
            )
    elif impl == "trio-guest":
        import trio
        from workloads import trio_workloads

        def start() -> None:
            trio.lowlevel.start_guest_run(
                trio_workloads.WORKLOADS[workload_name],
                ctx,
                run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
                done_callback=done,
                host_uses_signal_set_wakeup_fd=False,
            )
    elif impl in ("aioguest-adapter", "aioguest-adapter-worker"):
        coro = aio.WORKLOADS[workload_name](ctx)
        # The adapters' default is the fast path where the host loop watches
        # the poller's fd itself; "-worker" keeps the Go worker thread.
        kw: dict[str, Any] = {"watch_poller": False} if impl.endswith("-worker") else {}
        if host_name == "tk":
            from aioguest.hosts import tk as adapter

            def start() -> None:
                adapter.start(coro, root=host.root, **kw).add_done_callback(done)
        elif host_name == "qt":
            from aioguest.hosts import qt as adapter

            def start() -> None:
                adapter.start(coro, **kw).add_done_callback(done)
        elif host_name == "trio":
            from aioguest.hosts import trio as adapter

            def start() -> None:
                adapter.start(coro, **kw).add_done_callback(done)
        else:
            raise SystemExit(f"no adapter for host {host_name!r}")
    else:
        raise SystemExit(f"unknown guest implementation {impl!r}")

    if periodic:
        host.start_periodic(ctx.params["host_period"], ctx.probe)
    try:
        host.run(start)
    finally:
        host.close()
    if not box:
        raise RuntimeError("the host loop ended before the guest run finished")
    result = box[0]
    # outcome.Outcome from the guest modes, a Guest (.result()) from adapters.
    metrics: dict[str, Any] = result.unwrap() if hasattr(result, "unwrap") else result.result()
    return metrics


def run_host_alone(host_name: str, ctx: Context) -> dict[str, Any]:
    """The idle workload's baseline: the host loop alone, waiting on its own
    timer for the idle time, with no guest."""
    host = HOSTS[host_name]()
    box: dict[str, Any] = {}

    class Stop:
        def armed(self, due: float) -> None:
            pass

        def fired(self) -> None:
            box["result"] = idle_result(
                box["before"], process_sample(), time.perf_counter() - box["t0"], box["sampler"]
            )
            host.stop()

    def start() -> None:
        box["sampler"] = SteadySampler(ctx.params["idle_seconds"])
        box["sampler"].start()
        box["before"] = process_sample()
        box["t0"] = time.perf_counter()
        host.start_periodic(ctx.params["idle_seconds"], Stop())

    # The same settling time as the idle workload gives its guests.
    time.sleep(0.2)
    try:
        host.run(start)
    finally:
        host.close()
    metrics: dict[str, Any] = box["result"]
    return metrics


def measure(impl: str, host: str, workload: str, ctx: Context) -> dict[str, Any]:
    periodic = workload == "hostresp"
    if impl == "host-alone":
        if workload != "idle":
            raise SystemExit("host-alone only runs the idle workload")
        return run_host_alone(host, ctx)
    if impl == "asyncio":
        return run_asyncio(aio.WORKLOADS[workload], ctx, periodic)
    if impl == "trio":
        from workloads import trio_workloads

        trio_wl = trio_workloads.WORKLOADS[workload]
        return run_trio(lambda: trio_wl(ctx), ctx, periodic)
    if impl == "trio-asyncio":
        import trio_asyncio

        async def inside() -> dict[str, Any]:
            async with trio_asyncio.open_loop():
                result: dict[str, Any] = await trio_asyncio.aio_as_trio(aio.WORKLOADS[workload])(
                    ctx
                )
            return result

        return run_trio(inside, ctx, periodic)
    if impl == "qasync":
        return run_qasync(aio.WORKLOADS[workload], ctx, periodic)
    return run_guest(impl, host, workload, ctx, periodic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl")
    parser.add_argument("host")
    parser.add_argument("workload", choices=sorted(aio.WORKLOADS))
    parser.add_argument("--peer", required=True, help="HOST:PORT of the echo peer")
    parser.add_argument("--params", default="{}", help="JSON overrides of the defaults")
    args = parser.parse_args()
    host, _, port = args.peer.rpartition(":")
    params = dict(DEFAULTS)
    params.update(json.loads(args.params))
    ctx = Context(params=params, peer=(host, int(port)), probe=Probe())
    # A collection in the middle of a short timing window is noise that
    # lands on whichever contender is unlucky; every contender gets the
    # same treatment.
    gc.collect()
    gc.freeze()
    try:
        metrics = measure(args.impl, args.host, args.workload, ctx)
    except BaseException as exc:
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps({"ok": True, "metrics": metrics}))


if __name__ == "__main__":
    main()
