"""Turns the raw runs of bench/run.py into medians, ratios, target checks,
a Markdown report and a chart."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from contenders import BY_ID, HEADLINE, HOST_BASELINE, NATIVE, TARGETS, Target

Runs = list[dict[str, Any]]


def _ok(runs: Runs) -> Runs:
    return [r for r in runs if r.get("ok")]


def _bracket(runs: Runs, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The native runs nearest before and after *run* in its block."""
    block = [r for r in runs if r["rep"] == run["rep"] and r["workload"] == run["workload"]]
    natives = [r for r in _ok(block) if r["contender"] == NATIVE]
    before = [r for r in natives if r["seq"] < run["seq"]]
    after = [r for r in natives if r["seq"] > run["seq"]]
    return ([before[-1]] if before else []) + ([after[0]] if after else [])


def _native_ref(runs: Runs, run: dict[str, Any], metric: str) -> float | None:
    values = [r["metrics"].get(metric) for r in _bracket(runs, run)]
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def build(data: dict[str, Any]) -> dict[str, Any]:
    runs: Runs = data["runs"]
    by_pair: dict[tuple[str, str], Runs] = defaultdict(list)
    for r in runs:
        by_pair[(r["workload"], r["contender"])].append(r)

    medians: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    failures: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for (workload, cid), rs in by_pair.items():
        good = _ok(rs)
        bad = [r.get("error", "?") for r in rs if not r.get("ok")]
        if bad:
            failures[workload][cid] = bad
        if not good:
            continue
        keys = set().union(*(r["metrics"] for r in good))
        medians[workload][cid] = {
            k: statistics.median(r["metrics"][k] for r in good if k in r["metrics"])
            for k in sorted(keys)
            if all(isinstance(r["metrics"].get(k, 0), (int, float)) for r in good)
        }

    # Per-repetition comparisons with the bracketing native runs.
    ratios: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    deltas: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (workload, cid), rs in by_pair.items():
        if cid == NATIVE:
            continue
        metric, _ = HEADLINE[workload]
        per_rep = []
        delta_reps: dict[str, list[float]] = defaultdict(list)
        for r in _ok(rs):
            if not _bracket(runs, r):
                continue
            ref = _native_ref(runs, r, metric)
            value = r["metrics"].get(metric)
            if ref and value is not None:
                per_rep.append(value / ref)
            for m in ("overshoot_mean_ms", "overshoot_p99_ms"):
                ref_m = _native_ref(runs, r, m)
                if m in r["metrics"] and ref_m is not None:
                    delta_reps[m].append(r["metrics"][m] - ref_m)
        if per_rep:
            ratios[workload][cid] = {"median": statistics.median(per_rep), "per_rep": per_rep}
        for m, v in delta_reps.items():
            deltas[workload].setdefault(cid, {})[m] = statistics.median(v)

    checks = [_check(t, medians, ratios, deltas) for t in TARGETS]
    return {
        **data,
        "medians": medians,
        "ratios": ratios,
        "over_native": deltas,
        "targets": checks,
        "failures": failures,
    }


def _check(
    t: Target,
    medians: dict[str, dict[str, dict[str, float]]],
    ratios: dict[str, dict[str, dict[str, Any]]],
    deltas: dict[str, dict[str, dict[str, float]]],
) -> dict[str, Any]:
    value: float | None = None
    if t.kind == "ratio":
        value = ratios.get(t.workload, {}).get(t.contender, {}).get("median")
    elif t.kind == "over-native":
        value = deltas.get(t.workload, {}).get(t.contender, {}).get(t.metric)
    else:
        value = medians.get(t.workload, {}).get(t.contender, {}).get(t.metric)
        if value is not None and t.kind == "over-host":
            base_id = HOST_BASELINE.get(BY_ID[t.contender].host)
            base = medians.get(t.workload, {}).get(base_id or "", {}).get(t.metric)
            value = None if base is None else value - base
    met = None if value is None else (value <= t.limit if t.op == "<=" else value >= t.limit)
    return {**t.__dict__, "value": value, "met": met}


# -- Markdown ---------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 2, suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}{suffix}"
    if abs(v) >= 100:
        return f"{v:.0f}{suffix}"
    return f"{v:.{digits}f}{suffix}"


def _contenders_in(data: dict[str, Any]) -> list[str]:
    present = {r["contender"] for r in data["runs"]}
    return [c for c in BY_ID if c in present]


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    med = data["medians"]
    rat = data["ratios"]
    over = data["over_native"]
    v = meta.get("versions", {})
    out = [
        "# aioguest benchmark results",
        "",
        f"{meta['date']}; {meta['machine']}; Python {v.get('ours:python', '?')}, "
        f"{v.get('go', '?')}; aioguest {v.get('ours:commit', '?')}; oremanj/aioguest "
        f"{v.get('oremanj:aioguest', '?')} (greenlet {v.get('oremanj:greenlet', '?')}); "
        f"trio {v.get('ours:trio', '?')}, trio-asyncio {v.get('ours:trio-asyncio', '?')}, "
        f"qasync {v.get('ours:qasync', '?')}, PyQt5 {v.get('ours:PyQt5', '?')}.",
        f"{meta['reps']} repetitions{' (quick run)' if meta.get('quick') else ''}, "
        f"{meta.get('seconds', '?')} s in all; load average {meta.get('loadavg_start', '?')} at "
        f"the start, {meta.get('loadavg_end', '?')} at the end (2 vCPUs). Generated by "
        "`make bench` (bench/run.py).",
        "",
        "Ratios are to native `asyncio.run`, per repetition against the native runs made "
        "just before and after, then the median over repetitions (lower is better, except "
        "*many*, which is throughput). Overshoot columns are *minus native's*.",
        "",
        "| contender | tick × | echo × | many conns (thru ×) | timer overshoot mean / p99 "
        "(ms over native) | idle CPU ms/s | idle wake-ups/s, settled | host timer p99 late (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cid in _contenders_in(data):

        def r(w: str, cid: str = cid) -> str:
            if cid == NATIVE:
                return "1"
            return _fmt(rat.get(w, {}).get(cid, {}).get("median"), suffix="×")

        def m(w: str, k: str, cid: str = cid) -> float | None:
            value: float | None = med.get(w, {}).get(cid, {}).get(k)
            return value

        if cid == NATIVE:
            timers = f"{_fmt(m('timers', 'overshoot_mean_ms'))} / " + _fmt(
                m("timers", "overshoot_p99_ms")
            )
            timers += " (absolute)"
        elif cid in over.get("timers", {}):
            d = over["timers"][cid]
            timers = (
                f"{_fmt(d.get('overshoot_mean_ms'), suffix='', digits=2)} / "
                f"{_fmt(d.get('overshoot_p99_ms'), digits=2)}"
            )
        else:
            timers = "–"
        late = m("hostresp", "late_p99_ms")
        out.append(
            f"| {cid} | {r('tick')} | {r('echo')} | {r('many')} | {timers} | "
            f"{_fmt(m('idle', 'cpu_ms_per_s'))} | {_fmt(m('idle', 'steady_wakeups_per_s'), 1)} | "
            f"{_fmt(late, 1)}{' (starved)' if late is not None and late > 500 else ''} |"
        )

    out += [
        "",
        "## Medians",
        "",
        "| contender | tick µs/iter | echo µs/round trip | many conns round trips/s | "
        "timer overshoot mean / p99 ms | idle CPU ms (wake-ups) in "
        f"{_idle_seconds(meta)} s; settled wake-ups/s | "
        "host timer late p50 / p99 / max ms (firings) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cid in _contenders_in(data):

        def m2(w: str, k: str, cid: str = cid) -> float | None:
            value: float | None = med.get(w, {}).get(cid, {}).get(k)
            return value

        idle_cpu, idle_wk = m2("idle", "cpu_ms"), m2("idle", "wakeups")
        idle = (
            f"{_fmt(idle_cpu)} ({_fmt(idle_wk, 0)}); {_fmt(m2('idle', 'steady_wakeups_per_s'), 1)}"
            if idle_cpu is not None
            else "–"
        )
        host = (
            f"{_fmt(m2('hostresp', 'late_p50_ms'))} / {_fmt(m2('hostresp', 'late_p99_ms'))} / "
            f"{_fmt(m2('hostresp', 'late_max_ms'))} ({_fmt(m2('hostresp', 'late_n'), 0)})"
            if m2("hostresp", "late_n") is not None
            else "–"
        )
        out.append(
            f"| {cid} | {_fmt(m2('tick', 'us_per_iter'))} | {_fmt(m2('echo', 'us_per_rt'))} | "
            f"{_fmt(m2('many', 'rt_per_s'))} | {_fmt(m2('timers', 'overshoot_mean_ms'))} / "
            f"{_fmt(m2('timers', 'overshoot_p99_ms'))} | {idle} | {host} |"
        )

    out += [
        "",
        "## Targets",
        "",
        "| workload | contender | metric | target | measured | met | anchors |",
        "|---|---|---|---|---|---|---|",
    ]
    unit = {"ratio": "×", "over-native": " over native", "over-host": " over host alone"}
    for t in data["targets"]:
        if t["value"] is None and t["contender"] not in _contenders_in(data):
            continue
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        u = unit.get(t["kind"], "")
        out.append(
            f"| {t['workload']} | {t['contender']} | {t['metric']} | {t['op']} "
            f"{t['limit']}{u} | {_fmt(t['value'])} | {met} | {t['anchor']} |"
        )

    go = data.get("go_bench") or []
    if go:
        out += [
            "",
            "## Go microbenchmarks (median ns/op)",
            "",
            "| benchmark | ns/op |",
            "|---|---|",
        ]
        for g in go:
            if "error" in g:
                out.append(f"| error | {g['error']} |")
            else:
                out.append(f"| {g['name']} | {_fmt(g['ns_per_op'], 1)} |")
    micro = data.get("micro") or {}
    if micro.get("breakdown"):
        out += [
            "",
            "## Where a guest's time goes (bench/breakdown.py, one process, interleaved)",
            "",
            "| step | µs per op | wake-ups per op |",
            "|---|---|---|",
        ]
        for row in micro["breakdown"]:
            out.append(f"| {row['name']} | {_fmt(row['us'])} | {_fmt(row['wakeups_per_op'])} |")
    if micro.get("rows"):
        out += [
            "",
            "## One guest turn (bench/micro_turn.py)",
            "",
            "| measurement | µs | notes |",
            "|---|---|---|",
        ]
        for row in micro["rows"]:
            out.append(f"| {row['name']} | {_fmt(row['us'])} | {row.get('note', '')} |")
    for err in micro.get("errors", []):
        out += ["", f"microbenchmarks: {err}"]

    notes = []
    for cid, why in meta.get("skipped", {}).items():
        notes.append(f"- skipped {cid}: {why}")
    for w, per in data.get("failures", {}).items():
        for cid, errs in per.items():
            notes.append(f"- {w} / {cid}: {len(errs)} failed run(s): {errs[0]}")
    if notes:
        out += ["", "## Skipped and failed", "", *notes]
    return "\n".join(out) + "\n"


def _idle_seconds(meta: dict[str, Any]) -> str:
    return str(meta.get("params", {}).get("idle_seconds", 2.0))


# -- chart ------------------------------------------------------------------------

# A colour map per family, so each contender gets its own shade.
FAMILY_MAPS = {
    "native": "Greys",
    "ours": "Blues",
    "oremanj": "Oranges",
    "trio": "Greens",
    "other": "Purples",
}


# Hatching tells the hosts apart within a family's shades.
HOST_HATCH = {"tk": "//", "qt": "..", "trio": "xx"}


def _hatch(cid: str) -> str | None:
    return HOST_HATCH.get(BY_ID[cid].host)


def _family(cid: str) -> str:
    return "trio" if cid == "trio" else BY_ID[cid].family


def _colours(ids: list[str]) -> dict[str, Any]:
    import matplotlib

    members: dict[str, list[str]] = defaultdict(list)
    for cid in ids:
        members[_family(cid)].append(cid)
    out: dict[str, Any] = {}
    for fam, cids in members.items():
        cmap = matplotlib.colormaps[FAMILY_MAPS.get(fam, "Greys")]
        for i, cid in enumerate(cids):
            # From dark to light, never so light that a bar disappears.
            out[cid] = cmap(0.9 - 0.55 * i / max(1, len(cids) - 1)) if len(cids) > 1 else cmap(0.75)
    return out


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [c for c in _contenders_in(data) if BY_ID[c].only is None]
    colours = _colours(ids)
    rat = data["ratios"]
    med = data["medians"]
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig = plt.figure(figsize=(16, 10), constrained_layout=True)
    grid = fig.add_gridspec(2, 3, height_ratios=[1.25, 1])
    top = fig.add_subplot(grid[0, :])
    groups = ["tick", "echo", "many"]
    labels = ["tick (sleep(0) loop)", "echo (1-byte round trip)", "1,000 connections"]
    others = [c for c in ids if c != NATIVE]
    width = 0.9 / max(1, len(others))
    targets = [t for t in data["targets"] if t["kind"] == "ratio"]
    for gi, w in enumerate(groups):
        for ci, cid in enumerate(others):
            r = rat.get(w, {}).get(cid, {}).get("median")
            if r is None:
                continue
            slowdown = 1 / r if w == "many" else r
            x = gi + (ci - (len(others) - 1) / 2) * width
            top.bar(
                x,
                slowdown,
                width,
                color=colours[cid],
                hatch=_hatch(cid),
                edgecolor="white",
                linewidth=0,
                label=cid if gi == 0 else None,
            )
            for t in targets:
                if t["workload"] == w and t["contender"] == cid:
                    limit = 1 / t["limit"] if w == "many" else t["limit"]
                    top.plot([x - width / 2, x + width / 2], [limit, limit], color="red", lw=2)
    top.axhline(1.0, color="black", lw=0.8)
    top.set_yscale("log")
    top.yaxis.set_major_locator(FixedLocator([0.25, 0.5, 1, 2, 5, 10, 20, 50, 100]))
    top.yaxis.set_major_formatter(ScalarFormatter())
    top.yaxis.set_minor_locator(NullLocator())
    top.set_xticks(range(len(groups)), labels)
    top.set_ylabel("slowdown vs native asyncio (×, log)")
    top.set_title(
        "Cost relative to native asyncio.run, same run (red ticks: our targets; "
        "for 1,000 connections, native throughput ÷ contender's)"
    )
    top.legend(ncol=1, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))

    panels = [
        ("timers", "overshoot_p99_ms", "timer overshoot p99 (ms)", None),
        ("idle", "cpu_ms_per_s", "idle: CPU ms per idle second", 1.0),
        ("hostresp", "late_p99_ms", "host timer p99 lateness, guest saturated (ms)", 6.0),
    ]
    for i, (w, metric, title, limit) in enumerate(panels):
        ax = fig.add_subplot(grid[1, i])
        shown = [c for c in ids if med.get(w, {}).get(c, {}).get(metric) is not None]
        values = [med[w][c][metric] for c in shown]
        bars = ax.bar(range(len(shown)), values, color=[colours[c] for c in shown])
        for bar, cid in zip(bars, shown, strict=True):
            bar.set_hatch(_hatch(cid))
            bar.set_edgecolor("white")
            bar.set_linewidth(0)
        ax.set_xticks(range(len(shown)), shown, rotation=70, fontsize=7, ha="right")
        ax.set_title(title, fontsize=10)
        if w == "timers" and NATIVE in med.get(w, {}):
            limit = med[w][NATIVE][metric] + 0.1
        if limit is not None:
            ax.axhline(limit, color="red", lw=1.5)
        if values and max(values) / max(min(values), 1e-3) > 50:
            ax.set_yscale("log")
    fig.suptitle(f"aioguest benchmark, {data['meta']['date'][:10]}", fontsize=12)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    import json
    import sys

    raw = json.loads(Path(sys.argv[1]).read_text())
    built = build(raw)
    print(markdown(built))
    if len(sys.argv) > 2:
        chart(built, Path(sys.argv[2]))


__all__ = ["build", "chart", "markdown"]
