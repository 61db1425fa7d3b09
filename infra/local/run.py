#!/usr/bin/env python3
"""`make run`: the whole platform on this machine, data under .run/.

Starts NATS (JetStream), Postgres and Redis (infra/local/stack.py), applies
migrations, runs `moonport serve` with every role, and once it is ready
seeds a demo and an admin account and the steps in infra/local/seed.d/ (the
product catalogue). Seeding waits for serve because creating an account
provisions its profile through the running user service. Runs until Ctrl-C
or `make stop`, and stops everything it started. A second run reuses .run/.

`run.py --stop` (make stop) stops a running `make run` from another shell.
"""
from __future__ import annotations

import argparse, os, signal, subprocess, sys, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack as stacklib  # noqa: E402

RUN = os.path.join(ROOT, ".run")
PIDFILE = os.path.join(RUN, "moonport.pid")
LOG = os.path.join(RUN, "moonport.log")
CONFIG = os.path.join(ROOT, "config", "moonport.yaml")
ACCOUNTS = [("demo@moonport.local", "demo-password-42", "user"), ("admin@moonport.local", "admin-password-42", "admin")]


def say(what: str, where: str, note: str = "") -> None:
    print(f"{what:<12} {where}{('  (' + note + ')') if note else ''}", flush=True)


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


def wait_ready(proc: subprocess.Popen, timeout: float = 60) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with opener.open("http://127.0.0.1:9090/readyz", timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


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
    stacklib.Stack(RUN, **stacklib.DEFAULT_PORTS, persistent=True).stop() if os.path.isdir(RUN) else None
    print("moonport and its servers are stopped")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--stop", action="store_true")
    args = ap.parse_args()
    if args.stop:
        return stop_other()
    binary = os.path.join(ROOT, args.build, "moonport")
    os.makedirs(RUN, exist_ok=True)
    st = stacklib.Stack(RUN, **stacklib.DEFAULT_PORTS, persistent=True)
    st.start()
    env = {**os.environ, **st.env()}
    logs = {"nats-server": "nats/nats.log", "postgres": "pg/postgres.log", "redis": "redis/redis.log"}
    for name, _, ok, where in st.status():
        say(name, where, f"logs: .run/{logs.get(name, '')}")
    say("nats users", "one per role, passwords in .run/secrets/nats/", "moonport serve connects as `moonport`")
    r = moonport(binary, env, "migrate")
    if r.returncode != 0:
        st.stop()
        sys.exit(f"migrations failed:\n{r.stderr}")

    log = open(LOG, "ab")
    proc = subprocess.Popen([binary, "serve", "--config", CONFIG], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    with open(PIDFILE, "w") as f:
        f.write(str(os.getpid()))
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    seeded = seed_failed = False
    if wait_ready(proc):
        try:
            seed(binary, env)  # accounts need the user role up: their profiles are provisioned over NATS
            seeded = True
        except SystemExit as e:
            print(e, flush=True)
            seed_failed = True
            on_signal(signal.SIGTERM, None)
    if seeded:
        say("moonport", "http://localhost:8080", "admin http://localhost:9090, logs: .run/moonport.log")
        for email, password, role in ACCOUNTS:
            say(role + " login", f"{email} / {password}")
        print("Ctrl-C (or `make stop` in another shell) stops everything.", flush=True)
    elif proc.poll() is None and not seed_failed:
        print("moonport is running but not ready yet; see .run/moonport.log", flush=True)
    while proc.poll() is None:
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    code = proc.returncode
    if not stopping:
        print(f"moonport exited with {code}; last log lines:", flush=True)
        subprocess.run(["tail", "-n", "20", LOG])
    st.stop()
    os.unlink(PIDFILE)
    print("stopped moonport, nats-server, postgres and redis", flush=True)
    if seed_failed:
        return 1
    return 0 if stopping and code == 0 else (code or 1)


if __name__ == "__main__":
    sys.exit(main())
