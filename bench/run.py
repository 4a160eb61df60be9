"""The benchmark suite: every workload under every contender, in one run.

    bench/.venv/bin/python bench/run.py [--reps N] [--quick] [--only WORKLOAD,...]
                                        [--contenders ID,...] [--no-go] [--no-micro]

For each repetition, for each workload, every contender runs once, each in
a fresh subprocess (bench/worker.py) that prints one JSON result.  The
order of contenders is shuffled per repetition, and for the workloads
compared as ratios, native asyncio runs again every few contenders: each
contender's ratio is taken against the mean of the two native runs that
bracket it, then the median over repetitions is reported.  On a small VM
whose speed swings several-fold between quiet and busy periods, only runs
made seconds apart are comparable.

Writes bench/results/latest.json (everything, raw runs included),
latest.md (tables) and latest.png (chart).  Expects what `make bench`
prepares: bench/.venv (ours: PYTHONPATH=python with `make lib`'s library,
plus trio, trio-asyncio, qasync, PyQt5, matplotlib), bench/.venv-oremanj
(aioguest 0.1.0 from PyPI) and bench/.bin/echopeer.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contenders import CONTENDERS, NATIVE, RATIO_WORKLOADS, WORKLOADS, Contender

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
VENVS = {
    "ours": BENCH / ".venv" / "bin" / "python",
    "oremanj": BENCH / ".venv-oremanj" / "bin" / "python",
}
PEER = BENCH / ".bin" / "echopeer"

# A native run every this many contenders in a ratio workload's block.
NATIVE_EVERY = 4
RUN_TIMEOUT = 120.0

QUICK_PARAMS = {
    "tick_seconds": 0.2,
    "echo_seconds": 0.2,
    "many_connections": 200,
    "many_seconds": 0.3,
    "timer_count": 50,
    "idle_seconds": 0.5,
    "host_seconds": 0.5,
    "warmup": 0.05,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the environment: echo peer, X server, which contenders can run -------------


@contextmanager
def echo_peer() -> Iterator[str]:
    if not PEER.exists():
        log(f"building {PEER.relative_to(REPO)}")
        PEER.parent.mkdir(exist_ok=True)
        go = os.environ.get("AIOGUEST_GO", "go")
        subprocess.run([go, "build", "-o", str(PEER), "./cmd/echopeer"], cwd=REPO, check=True)
    # The peer exits when its stdin closes, so it cannot outlive us.
    proc = subprocess.Popen([str(PEER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"echopeer said {line!r}")
        yield line[1]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


class XServer:
    """One Xvfb for every Tk run (starting one per run costs ~0.5 s),
    restarted if it goes away: other jobs on a shared machine clean up
    X servers and their sockets too."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._display: str | None = None
        self._xvfb = shutil.which("Xvfb")
        if self._xvfb is None:
            log("no Xvfb: the Tk contenders are skipped")

    def _alive(self) -> bool:
        if self._proc is None or self._proc.poll() is not None or self._display is None:
            return False
        return os.path.exists(f"/tmp/.X11-unix/X{self._display[1:]}")

    def display(self) -> str | None:
        if self._xvfb is None:
            return None
        if self._alive():
            return self._display
        self.close()
        read, write = os.pipe()
        self._proc = subprocess.Popen(
            [
                self._xvfb,
                "-displayfd",
                str(write),
                "-screen",
                "0",
                "800x600x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=[write],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        self._display = f":{number}" if number else None
        if self._display is None:
            log("Xvfb did not start: the Tk contenders are skipped")
            self._xvfb = None
        return self._display

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def worker_env(contender: Contender, display: str | None, runtime_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if contender.venv == "ours":
        # Our package from the work tree, with the library `make lib` built.
        env["PYTHONPATH"] = str(REPO / "python")
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["XDG_RUNTIME_DIR"] = runtime_dir
    if display is not None:
        env["DISPLAY"] = display
    return env


CHECKS = {
    "qt": "import PyQt5.QtWidgets",
    "adapter-tk": "import aioguest.hosts.tk",
    "adapter-qt": "import aioguest.hosts.qt",
    "adapter-trio": "import aioguest.hosts.trio",
}


def available(
    contenders: list[Contender], display: str | None, runtime_dir: str
) -> tuple[list[Contender], dict[str, str]]:
    ok, skipped = [], {}
    for c in contenders:
        python = VENVS[c.venv]
        if not python.exists():
            skipped[c.id] = f"no {python.relative_to(REPO)} (run `make bench`)"
            continue
        if "x11" in c.needs and display is None:
            skipped[c.id] = "no X server"
            continue
        imports = ["import aioguest" if c.impl.startswith("aioguest") else "import sys"]
        imports += [CHECKS[n] for n in sorted(c.needs) if n in CHECKS]
        if c.impl in ("qasync", "trio-asyncio"):
            imports.append(f"import {c.impl.replace('-', '_')}")
        probe = subprocess.run(
            [str(python), "-c", "; ".join(imports)],
            env=worker_env(c, display, runtime_dir),
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            skipped[c.id] = f"not importable: {last}"
            continue
        ok.append(c)
    return ok, skipped


def versions(display: str | None, runtime_dir: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for d in %r:\n"
        "    try: out[d] = m.version(d)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))\n"
    )
    out: dict[str, str] = {}
    for venv, dists in (
        ("ours", ["trio", "trio-asyncio", "qasync", "PyQt5", "PyQt5-Qt5", "outcome"]),
        ("oremanj", ["aioguest", "greenlet", "trio"]),
    ):
        python = VENVS[venv]
        if not python.exists():
            continue
        res = subprocess.run(
            [str(python), "-c", code % dists], capture_output=True, text=True, check=False
        )
        if res.returncode == 0:
            for k, v in json.loads(res.stdout).items():
                out[f"{venv}:{k}"] = v
    try:
        out["go"] = subprocess.run(
            [os.environ.get("AIOGUEST_GO", "go"), "env", "GOVERSION"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        pass
    try:
        out["ours:commit"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return out


# -- running --------------------------------------------------------------------


def run_one(
    c: Contender, workload: str, peer: str, params: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    cmd = [
        str(VENVS[c.venv]),
        str(BENCH / "worker.py"),
        c.impl,
        c.host,
        workload,
        "--peer",
        peer,
        "--params",
        json.dumps(params),
    ]
    t0 = time.time()
    try:
        res = subprocess.run(
            cmd, env=env, cwd=BENCH, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {RUN_TIMEOUT:.0f} s", "t": t0}
    lines = res.stdout.strip().splitlines()
    out: dict[str, Any]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"ok": False, "error": f"exit {res.returncode}, no result"}
    if not out.get("ok"):
        out["stderr"] = res.stderr[-2000:]
    out["t"] = t0
    out["wall"] = time.time() - t0
    return out


def block_order(contenders: list[Contender], workload: str, rng: random.Random) -> list[Contender]:
    """One workload's runs in one repetition: shuffled, with native runs
    at both ends and every NATIVE_EVERY contenders for ratio workloads."""
    native = next(c for c in contenders if c.id == NATIVE)
    others = [c for c in contenders if c.id != NATIVE and c.runs(workload)]
    rng.shuffle(others)
    if workload not in RATIO_WORKLOADS:
        return [native, *others]
    order = [native]
    for i, c in enumerate(others, 1):
        order.append(c)
        if i % NATIVE_EVERY == 0 or i == len(others):
            order.append(native)
    return order


def go_benchmarks(quick: bool, out_dir: Path) -> list[dict[str, Any]]:
    go = os.environ.get("AIOGUEST_GO", "go")
    cmd = [
        go,
        "test",
        "-p",
        "1",  # one package at a time: two benchmark binaries would share 2 CPUs
        "-run",
        "^$",
        "-bench",
        ".",
        "-benchmem",
        "-benchtime",
        "100ms" if quick else "300ms",
        "-count",
        "1" if quick else "3",
        "-timeout",
        "5m",
        "./internal/poller",
        "./internal/handoff",
    ]
    log("go " + " ".join(cmd[1:]))
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    # The raw output, in the format benchstat reads.
    (out_dir / "go-bench.txt").write_text(res.stdout + res.stderr)
    runs: dict[str, list[float]] = {}
    pkg = ""
    for line in res.stdout.splitlines():
        if line.startswith("pkg: "):
            pkg = line.split()[1].rsplit("/", 1)[-1]
        fields = line.split()
        if fields and fields[0].startswith("Benchmark") and "ns/op" in fields:
            name = fields[0].removeprefix("Benchmark").rsplit("-", 1)[0]
            ns = float(fields[fields.index("ns/op") - 1])
            runs.setdefault(f"{pkg}.{name}", []).append(ns)
    out: list[dict[str, Any]] = [
        {"name": name, "ns_per_op": statistics.median(v), "runs": v} for name, v in runs.items()
    ]
    if res.returncode != 0:
        log(f"go test -bench failed ({res.returncode}); see {out_dir / 'go-bench.txt'}")
        out.append({"error": f"go test -bench exited {res.returncode} (see go-bench.txt)"})
    return out


def micro(env: dict[str, str], peer: str, quick: bool) -> dict[str, Any]:
    """bench/micro_turn.py (one guest turn, piece by piece) and
    bench/breakdown.py (a tick and an echo, ingredient by ingredient)."""
    result: dict[str, Any] = {}
    for name, script, extra in (
        ("rows", "micro_turn.py", ["--quick"] if quick else []),
        ("breakdown", "breakdown.py", ["--peer", peer] + (["--reps", "2"] if quick else [])),
    ):
        log(script)
        cmd = [str(VENVS["ours"]), str(BENCH / script), "--json", *extra]
        res = subprocess.run(cmd, env=env, cwd=BENCH, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            log(res.stderr[-2000:])
            result.setdefault("errors", []).append(f"{script} failed ({res.returncode})")
            continue
        result[name] = json.loads(res.stdout.strip().splitlines()[-1])["rows"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, one repetition")
    parser.add_argument("--only", default="", help="comma-separated workloads")
    parser.add_argument("--contenders", default="", help="comma-separated contender ids")
    parser.add_argument("--no-go", action="store_true", help="skip the Go microbenchmarks")
    parser.add_argument(
        "--no-micro", action="store_true", help="skip micro_turn.py and breakdown.py"
    )
    parser.add_argument("--out", default=str(RESULTS), help="results directory")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    workloads = [w for w in args.only.split(",") if w] or WORKLOADS
    wanted = {c for c in args.contenders.split(",") if c}
    contenders = [c for c in CONTENDERS if not wanted or c.id in wanted or c.id == NATIVE]
    params = dict(QUICK_PARAMS) if args.quick else {}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.time()
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="aioguest-bench-") as runtime_dir,
        echo_peer() as peer,
    ):
        os.chmod(runtime_dir, 0o700)
        xserver = XServer()
        atexit.register(xserver.close)
        display = xserver.display()
        contenders, skipped = available(contenders, display, runtime_dir)
        for cid, why in skipped.items():
            log(f"skipping {cid}: {why}")
        meta: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.release()}",
            "versions": versions(display, runtime_dir),
            "reps": reps,
            "quick": args.quick,
            # Other jobs on the machine move absolute numbers a lot; ratios
            # (native runs bracket every few contenders) much less.
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "params": params,
            "skipped": skipped,
            "contenders": [c.id for c in contenders],
        }
        rng = random.Random(args.seed)
        total = sum(len(block_order(contenders, w, random.Random(0))) for w in workloads) * reps
        done = 0
        for rep in range(reps):
            for workload in workloads:
                for c in block_order(contenders, workload, rng):
                    display = xserver.display() if "x11" in c.needs else None
                    env = worker_env(c, display, runtime_dir)
                    res = run_one(c, workload, peer, params, env)
                    if not res.get("ok"):
                        # One retry: a shared machine fails runs for reasons
                        # of its own (an X server cleaned away, a port
                        # shortage); a second failure is reported as such.
                        log(f"retrying {workload} {c.id}: {res.get('error')}")
                        display = xserver.display() if "x11" in c.needs else None
                        env = worker_env(c, display, runtime_dir)
                        first = res
                        res = run_one(c, workload, peer, params, env)
                        res["first_failure"] = first.get("error")
                    res.update(rep=rep, workload=workload, contender=c.id, seq=len(runs))
                    runs.append(res)
                    done += 1
                    status = "ok" if res.get("ok") else f"FAILED: {res.get('error')}"
                    log(f"[{done}/{total}] rep {rep + 1} {workload:8} {c.id:18} {status}")
                    if not res.get("ok") and res.get("stderr"):
                        log(res["stderr"])
        ours_env = worker_env(next(c for c in contenders if c.venv == "ours"), None, runtime_dir)
        go = [] if args.no_go else go_benchmarks(args.quick, out_dir)
        micro_result = {} if args.no_micro else micro(ours_env, peer, args.quick)
        xserver.close()
    meta["seconds"] = round(time.time() - started)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    import report

    data = report.build({"meta": meta, "runs": runs, "go_bench": go, "micro": micro_result})
    (out_dir / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    (out_dir / "latest.md").write_text(report.markdown(data))
    try:
        report.chart(data, out_dir / "latest.png")
    except ImportError as exc:
        log(f"no chart ({exc})")
    log(f"wrote {out_dir}/latest.{{json,md,png}} in {meta['seconds']} s")
    print(report.markdown(data))


if __name__ == "__main__":
    main()
