#!/usr/bin/env python3
"""CPU time moonport spends per BFF request, a figure that holds on a shared machine.

`make bench` reports requests/s, which moves with whatever else runs on the
machine. This probe measures what moonport itself costs: it starts the same
setup as bench/run.py (a throwaway stack, mp-echo answering ~1 KB JSON, a
gateway serving bench/lua with server timing off), drives each route with wrk
at a fixed number of connections, and reads the moonport process's
utime + stime from /proc/<pid>/stat (all threads) before and after each run:

    CPU µs per request = (Δutime + Δstime) / requests completed

The same delta from /proc/<pid>/task/*/schedstat (nanosecond run time) is
printed next to it. Each route is measured --repeat times; the lowest figure
is the one to quote (noise from a busy machine only ever adds).

    python3 bench/cpu_probe.py --build build-bench                  # home and one
    python3 bench/cpu_probe.py --build build-a,build-b --repeat 5   # A/B: two builds in turns, same load
    python3 bench/cpu_probe.py --routes home --perf /tmp/home.data  # plus a perf profile of one run
    python3 bench/cpu_probe.py --breakdown --threads 1   # also nats-server's, mp-echo's and the machine's CPU
    perf report -i /tmp/home.data --no-children --sort symbol

Build the binary optimised (`make bench` builds build-bench with
RelWithDebInfo); a Debug build measures the compiler's -O0, not the code.
"""
from __future__ import annotations

import argparse, os, re, signal, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as benchrun  # noqa: E402  (its sys.path setup gives us the harness too)
from run import ROOT, stacklib, Moonport  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def run_ns(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def drive(url: str, seconds: int, connections: int) -> int:
    """Runs wrk; returns the number of completed requests (all must be 2xx)."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk said:\n{out}")
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers:\n{out}")
    return int(m.group(1))


def machine_ticks() -> int:
    """Busy ticks of the whole machine (every CPU, everything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def measure(pid: int, url: str, seconds: int, connections: int,
            others: dict | None = None) -> tuple[int, float, float]:
    """One wrk run: (requests, µs of CPU per request from /proc/<pid>/stat, the same from schedstat).
    With others ({name: pid}), also prints what each of them and the whole machine spent per request:
    where the rest of a 2-core machine goes decides how far moonport's own savings can carry."""
    others = others or {}
    t0, n0, o0, m0 = cpu_ticks(pid), run_ns(pid), {k: cpu_ticks(v) for k, v in others.items()}, machine_ticks()
    reqs = drive(url, seconds, connections)
    t1, n1, o1, m1 = cpu_ticks(pid), run_ns(pid), {k: cpu_ticks(v) for k, v in others.items()}, machine_ticks()
    if others:
        per = lambda d: d / TICK * 1e6 / reqs  # noqa: E731
        parts = ", ".join(f"{k} {per(o1[k] - o0[k]):.1f}" for k in others)
        print(f"  µs CPU per request: {parts}, whole machine {per(m1 - m0):.1f}", flush=True)
    return reqs, (t1 - t0) / TICK * 1e6 / reqs, (n1 - n0) / 1e3 / reqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"),
                    help="build tree; several, comma-separated, are measured in turns (A/B under the same load)")
    ap.add_argument("--routes", default="home,one", help="comma-separated routes of bench/lua/bench")
    ap.add_argument("--seconds", type=int, default=5, help="per measured run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--perf", help="also record a perf profile of one more run of the first route into this file")
    ap.add_argument("--call-graph", default="fp", help="perf's --call-graph (fp, dwarf, lbr)")
    ap.add_argument("--threads", type=int, help="gateway.threads (default: one per CPU)")
    ap.add_argument("--echo-batched", action="store_true",
                    help="the echo responder batches its writes (nats.c's default) instead of send_asap")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print the CPU per request of nats-server, the echo responder and the whole machine")
    ap.add_argument("--any-build", action="store_true", help="measure Debug or sanitizer builds too (to compare)")
    args = ap.parse_args()
    builds = [os.path.abspath(b) for b in args.build.split(",")]
    for b in builds:
        if not args.any_build:
            benchrun.check_optimised(b)

    st = stacklib.temp_stack()
    st.start()
    echo, mps = None, []
    try:
        nats_url = {**os.environ, **st.env()}["MP_TEST_NATS_URL"]
        echo = subprocess.Popen([os.path.join(builds[0], "tests", "mp-echo"), "--nats", nats_url, "--inline",
                                 "--bytes", "1000", "--send-asap", "0" if args.echo_batched else "1"],
                                stdout=subprocess.PIPE, text=True)
        assert "ready" in echo.stdout.readline()
        for b in builds:
            mp = Moonport(st, os.path.join(b, "moonport"), roles="gateway", log_level="warn",
                          rate_limits={"bff": {"enabled": False}},  # as bench/run.py's engine rows
                          env={"MOONPORT_GATEWAY_THREADS": str(args.threads)} if args.threads else None,
                          extra_config=f"bff:\n  scripts_dir: {os.path.join(ROOT, 'bench', 'lua')}\n"
                                       "  hot_reload: false\n  server_timing: false\n")
            mps.append(mp)
            mp.start()
        name = {mp: os.path.basename(b) for mp, b in zip(mps, builds)} if len(builds) > 1 else {mps[0]: ""}
        for route in args.routes.split(","):
            runs = {mp: [] for mp in mps}
            for mp in mps:
                drive(f"{mp.url}/bff/bench/{route}", 2, args.connections)  # warm-up: connections, caches, arenas
            for _ in range(args.repeat):
                for mp in mps:
                    others = {"nats-server": st._pid("nats"), "mp-echo": echo.pid} if args.breakdown else None
                    reqs, us, us_ns = measure(mp.proc.pid, f"{mp.url}/bff/bench/{route}", args.seconds,
                                              args.connections, others)
                    runs[mp].append(us)
                    print(f"{route}{' ' + name[mp] if name[mp] else ''}: {reqs} requests in {args.seconds}s "
                          f"({reqs / args.seconds:.0f}/s), {us:.1f} µs CPU per request (schedstat: {us_ns:.1f} µs)",
                          flush=True)
            for mp in mps:
                r = sorted(runs[mp])
                print(f"{route}{' ' + name[mp] if name[mp] else ''}: best {r[0]:.1f} µs CPU per request "
                      f"(median {r[len(r) // 2]:.1f})", flush=True)
        if args.perf:
            route, mp = args.routes.split(",")[0], mps[0]
            perf = subprocess.Popen(["perf", "record", "--call-graph", args.call_graph, "-o", args.perf, "-p",
                                     str(mp.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            drive(f"{mp.url}/bff/bench/{route}", args.seconds, args.connections)
            perf.send_signal(signal.SIGINT)
            perf.wait()
            print(f"perf data of {route}: {args.perf}", flush=True)
    finally:
        for mp in mps:
            mp.stop()
        if echo:
            echo.terminate()
            echo.wait()
        st.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
