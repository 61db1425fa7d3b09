#!/usr/bin/env python3
"""Which gateway policy costs what: bench/run.py's REST route (GET /v1/bench/items/{id}?fields=summary) with every
policy off, every policy on, and each policy alone.

For each variant it prints wrk's requests/s and p99, which move with whatever else runs on the machine, and the CPU
time per request of moonport and of Redis (the rate limit's other half), read from /proc/<pid>/stat before and after
the measured run, which hold on a busy machine:

    CPU µs per request = (Δutime + Δstime) / requests completed

With --repeat N every variant runs N times (interleaved) and the medians are printed last.

    python3 bench/policy_probe.py                          # build-bench (make bench builds it), 4 s per run
    python3 bench/policy_probe.py --only "all off,only jwt" --repeat 3 --build build
"""
from __future__ import annotations

import argparse, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as benchrun  # noqa: E402  (its sys.path setup gives us the harness too)
from run import ROOT, Client, Moonport, stacklib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
OFF = benchrun.POLICIES_OFF
VARIANTS = [  # (name, environment, the route needs a token)
    ("all off", OFF, False),
    ("all on", {}, True),
    ("only jwt", OFF, True),
    ("only ratelimit", {**OFF, "MOONPORT_GATEWAY_RATE_LIMIT_ENABLED": "true"}, False),
    ("only validation", {**OFF, "MOONPORT_GATEWAY_VALIDATION": "true"}, False),
    ("only breaker+retry", {**OFF, "MOONPORT_GATEWAY_CIRCUIT_BREAKER_ENABLED": "true",
                            "MOONPORT_GATEWAY_RETRY_ENABLED": "true"}, False),
]


def cpu_s(pid: int | None) -> float:
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def variant(st, binary: str, tmp: str, env: dict, token: bool, seconds: int, connections: int) -> dict:
    routes, specs = benchrun.rest_files(tmp, "required" if token else "none")
    mp = Moonport(st, binary, roles="gateway,auth,user", log_level="warn", routes_file=routes, specs_dir=specs,
                  rate_limits={"bench": {"rate": "1000000/s", "burst": 1000000, "key": "user"}}, env=env)
    mp.start()
    try:
        headers = []
        if token:
            c = Client(mp.url)
            email = f"probe-{time.time_ns()}@example.com"
            assert c.post("/v1/auth/register", {"email": email, "password": "bench-password-42",
                                                "display_name": "P"}).status == 201
            tok = c.post("/v1/auth/login", {"email": email, "password": "bench-password-42"}).json["access_token"]
            headers = [f"Authorization: Bearer {tok}"]
        url = f"{mp.url}/v1/bench/items/item-42?fields=summary"
        benchrun.wrk(url, 2, connections, headers)  # warm-up
        redis = st._pid("redis")
        g0, r0 = cpu_s(mp.proc.pid), cpu_s(redis)
        r = benchrun.wrk(url, seconds, connections, headers)
        g1, r1 = cpu_s(mp.proc.pid), cpu_s(redis)
        n = max(1.0, r["rps"] * seconds)
        return {**r, "gateway_us": (g1 - g0) * 1e6 / n, "redis_us": (r1 - r0) * 1e6 / n}
    finally:
        mp.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated variant names")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",")]
    st = stacklib.temp_stack()
    st.start()
    env = {**os.environ, **st.env()}
    echo = subprocess.Popen([os.path.join(build, "tests", "mp-echo"), "--nats", env["MP_TEST_NATS_URL"], "--inline",
                             "--bytes", "1000"], stdout=subprocess.PIPE, text=True)
    results: dict[str, list[dict]] = {}
    tmp = tempfile.mkdtemp(prefix="moonport-probe-")
    try:
        assert "ready" in echo.stdout.readline()
        for _ in range(args.repeat):
            for name, venv, token in chosen:
                r = variant(st, os.path.join(build, "moonport"), tmp, venv, token, args.seconds, args.connections)
                results.setdefault(name, []).append(r)
                print(f"RESULT {name:20s} {r['rps']:8.0f} rps  p99 {r['p99_ms']} ms  non-2xx {r['non_2xx']}  "
                      f"CPU per request: moonport {r['gateway_us']:.1f} us, redis {r['redis_us']:.1f} us",
                      flush=True)
    finally:
        echo.terminate()
        echo.wait()
        st.stop()
    print(f"\nmedians of {args.repeat} run(s), {args.seconds} s each:")
    for name, rs in results.items():
        med = lambda k: statistics.median(x[k] for x in rs)  # noqa: E731
        print(f"  {name:20s} {med('rps'):8.0f} rps   moonport {med('gateway_us'):5.1f} us/request   "
              f"redis {med('redis_us'):5.1f} us/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
