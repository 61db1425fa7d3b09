#!/usr/bin/env python3
"""`make run`: the whole platform on this machine, data under .run/.

Starts NATS (JetStream), Postgres and Redis (infra/local/stack.py), applies
migrations, runs `moonport serve` with every role, and once it is ready
seeds a demo and an admin account and the steps in infra/local/seed.d/ (the
product catalogue). Seeding waits for serve because creating an account
provisions its profile through the running user service. Runs until Ctrl-C
or `make stop`, and stops everything it started. A second run reuses .run/.

`run.py --cluster` (make run CLUSTER=1) runs it scaled out instead: a NATS
cluster of three nodes, two gateway processes sharing port 8080 (each loop
thread's listener has SO_REUSEPORT, so the kernel spreads connections over
both processes) and two processes of each service role, each in its role's
queue group under its role's own NATS user. The first replica of every role
starts (and is ready) before the second, so Auth's first signing key is made
once. Admin ports: the gateways 9090 and 9091, the services from 9100 on.

`run.py --stop` (make stop) stops a running `make run` from another shell.
"""
from __future__ import annotations

import argparse, os, signal, subprocess, sys, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nats_auth  # noqa: E402
import stack as stacklib  # noqa: E402

RUN = os.path.join(ROOT, ".run")
PIDFILE = os.path.join(RUN, "moonport.pid")
LOG = os.path.join(RUN, "moonport.log")
CONFIG = os.path.join(ROOT, "config", "moonport.yaml")
ACCOUNTS = [("demo@moonport.local", "demo-password-42", "user"), ("admin@moonport.local", "admin-password-42", "admin")]
REPLICAS = 2          # of every role, with --cluster
GATEWAY_ADMIN = 9090  # the first gateway's admin port; the second has the next
SERVICE_ADMIN = 9100  # the first service process's admin port; the others count up


def say(what: str, where: str, note: str = "") -> None:
    print(f"{what:<15} {where}{('  (' + note + ')') if note else ''}", flush=True)


def moonport(binary: str, env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args, "--config", CONFIG], cwd=ROOT, env=env, input=stdin, text=True,
                          capture_output=True)


def seed(binary: str, env: dict) -> None:
    for email, password, role in ACCOUNTS:
        r = moonport(binary, env, "user", "create", "--email", email, "--role", role, stdin=password + "\n")
        if r.returncode not in (0, 3):  # 3: it exists already, from an earlier run
            sys.exit(f"seeding {email} failed:\n{r.stderr}")
    extra = os.path.join(ROOT, "infra", "local", "seed.d")
    if os.path.isdir(extra):
        for name in sorted(os.listdir(extra)):
            args = open(os.path.join(extra, name)).read().split()
            r = moonport(binary, env, *args)
            if r.returncode != 0:
                sys.exit(f"seed step {name} failed:\n{r.stderr}")


class Proc:
    """One `moonport serve` of the platform: its roles (None: all), admin port and log file."""

    def __init__(self, name: str, roles: str | None, admin: int, log: str):
        self.name, self.roles, self.admin, self.log = name, roles, admin, log
        self.popen: subprocess.Popen | None = None

    def start(self, binary: str, st: stacklib.Stack) -> None:
        env = {**os.environ, **st.env()}
        argv = [binary, "serve", "--config", CONFIG]
        if self.roles:  # a role of its own: its own NATS user and admin port
            env |= st.nats_env(self.roles) | {"MOONPORT_ADMIN_LISTEN": f"127.0.0.1:{self.admin}"}
            argv += ["--roles", self.roles]
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, timeout: float = 60) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.time() + timeout
        while time.time() < deadline and self.alive():
            try:
                with opener.open(f"http://127.0.0.1:{self.admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return True
            except Exception:
                pass
            time.sleep(0.2)
        return False


def plan(cluster: bool) -> list[list[Proc]]:
    """The processes to start, in waves: each wave is started, then waited for, before the next."""
    if not cluster:
        return [[Proc("moonport", None, GATEWAY_ADMIN, LOG)]]
    logs = os.path.join(RUN, "logs")
    os.makedirs(logs, exist_ok=True)
    services = sorted(nats_auth.discovered())
    waves = []
    for r in range(REPLICAS):  # inner roles before the gateway in each wave, as serve orders them in one process
        wave = [Proc(f"{s}-{r + 1}", s, SERVICE_ADMIN + i * REPLICAS + r, os.path.join(logs, f"{s}-{r + 1}.log"))
                for i, s in enumerate(services)]
        wave.append(Proc(f"gateway-{r + 1}", "gateway", GATEWAY_ADMIN + r, os.path.join(logs, f"gateway-{r + 1}.log")))
        waves.append(wave)
    return waves


def tail(p: Proc) -> None:
    print(f"{p.name} exited with {p.popen.returncode}; last log lines:", flush=True)
    subprocess.run(["tail", "-n", "20", p.log])


def stop_other() -> int:
    """make stop: ask the running `make run` to finish (it stops the servers itself)."""
    try:
        pid = int(open(PIDFILE).read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    stacklib.saved_stack(RUN).stop() if os.path.isdir(RUN) else None  # stack.json says how many NATS nodes
    print("moonport and its servers are stopped")
    return 0


def show_servers(st: stacklib.Stack, cluster: bool) -> None:
    logs = {"postgres": "pg/postgres.log", "redis": "redis/redis.log"}
    for name, _, ok, where in st.status():
        say(name, where, f"logs: .run/{logs.get(name, (name if cluster else 'nats') + '/nats.log')}")
    if cluster:
        say("nats cluster", f"{len(st.nats_ports)} nodes, EVENTS with 3 replicas",
            f"monitoring http://127.0.0.1:{st.nats_http_ports[0]}/jsz")
    say("nats users", "one per role, passwords in .run/secrets/nats/",
        "each process connects as its role's user" if cluster else "moonport serve connects as `moonport`")


def show_platform(procs: list[Proc], cluster: bool) -> None:
    if not cluster:
        say("moonport", "http://localhost:8080", "admin http://localhost:9090, logs: .run/moonport.log")
    else:
        say("gateways", "http://localhost:8080", f"{REPLICAS} processes on one port (SO_REUSEPORT)")
        for p in sorted(procs, key=lambda p: p.name):
            say(p.name, f"admin http://localhost:{p.admin}", f"logs: .run/logs/{p.name}.log")
    for email, password, role in ACCOUNTS:
        say(role + " login", f"{email} / {password}")
    print("Ctrl-C (or `make stop` in another shell) stops everything.", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--stop", action="store_true")
    ap.add_argument("--cluster", action="store_true", help="3 NATS nodes, 2 processes of every role")
    args = ap.parse_args()
    if args.stop:
        return stop_other()
    binary = os.path.join(ROOT, args.build, "moonport")
    os.makedirs(RUN, exist_ok=True)
    st = stacklib.saved_stack(RUN, nats_nodes=3 if args.cluster else 1, **stacklib.DEFAULT_PORTS)
    st.start()
    env = {**os.environ, **st.env()}
    show_servers(st, args.cluster)
    r = moonport(binary, env, "migrate")
    if r.returncode != 0:
        st.stop()
        sys.exit(f"migrations failed:\n{r.stderr}")

    with open(PIDFILE, "w") as f:
        f.write(str(os.getpid()))
    procs: list[Proc] = []
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ready = True
    for wave in plan(args.cluster):
        for p in wave:
            p.start(binary, st)
        procs += wave
        ready = ready and not stopping and all(p.wait_ready() for p in wave)
    seeded = seed_failed = False
    if ready:
        try:
            seed(binary, env)  # accounts need the user role up: their profiles are provisioned over NATS
            seeded = True
        except SystemExit as e:
            print(e, flush=True)
            seed_failed = True
            on_signal(signal.SIGTERM, None)
    if seeded:
        show_platform(procs, args.cluster)
    elif not stopping and not seed_failed and all(p.alive() for p in procs):
        print("moonport is running but not ready yet; see its logs", flush=True)
    # one process ending on its own ends the run: a platform missing a replica is not what was asked for
    while all(p.alive() for p in procs) and not stopping:
        time.sleep(0.5)
    failed = seed_failed or not stopping
    if not stopping:
        for p in procs:
            if not p.alive():
                tail(p)
        on_signal(signal.SIGTERM, None)
    codes = [p.popen.wait() for p in procs]
    st.stop()
    os.unlink(PIDFILE)
    print("stopped moonport, nats-server, postgres and redis", flush=True)
    return next((c for c in codes if c), 1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
