#!/usr/bin/env python3
"""Local infrastructure for moonport: nats-server (JetStream), PostgreSQL, Redis.

Stdlib only; uses the Debian packages (nats-server, postgresql-NN, redis-server),
no Docker.  Two ways to use it:

Library (test harness: temp dir, free ports, everything removed on stop)::

    s = temp_stack(); s.start(); os.environ.update(s.env()); ...; s.stop()

CLI (``make run``: persistent dir, fixed ports, servers stay up detached)::

    python3 infra/local/stack.py up|down|status|env|psql --dir .run \\
        [--nats-port 4222 --nats-http-port 8222 --pg-port 5433 --redis-port 6380] [--nats-nodes 3]
    python3 infra/local/stack.py selftest

NATS runs with an `authorization` block (infra/local/nats_auth.py): one user per
role with subject permissions, passwords in secrets/nats/<user>; env() hands out
the all-in-one `moonport` user, nats_env(roles) the user for a role set.

nats_nodes=3 (CLI: --nats-nodes 3) runs a NATS cluster instead of one server:
nodes n1..n3 with their own client, route and monitor ports (CLI: the given
ones and the two above each), JetStream store and server_name, one cluster
name, routes on loopback (with a generated route password), and the same
authorization block on every node. start() returns once every node has its
routes and JetStream a meta leader; env() then lists every node's URL and asks
for EVENTS with 3 replicas (MOONPORT_NATS_STREAM_REPLICAS).

Layout under root: nats/ (nats.conf, nats.log, js/; a cluster has nats1/ .. nats3/), secrets/nats/<user>, pg/ (data/, sock/, postgres.log;
may be a symlink into /var/tmp, see Stack._pg_area), redis/ (redis.conf, redis.log, AOF),
pids/{nats,redis}.pid (postgres has data/postmaster.pid), stack.json, stack.env.  CLI
ports: command line, else stack.json of the previous ``up``, else DEFAULT_PORTS.
"""
from __future__ import annotations

import argparse, atexit, contextlib, glob, hashlib, json, os, shutil, signal, socket
import subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nats_auth  # noqa: E402

DEFAULT_PORTS = {"nats_port": 4222, "nats_http_port": 8222, "pg_port": 5433, "redis_port": 6380}
DEFAULT_ROUTE_PORT = 6222  # a cluster's first route port (persistent stacks); the nodes after it count up
CLUSTER_NAME = "moonport"
ROUTE_USER = "cluster-route"  # the password nodes use on each other's route ports (secrets/nats/cluster-route)
STOP_GRACE = 10.0     # seconds between SIGTERM / pg_ctl stop and SIGKILL
START_TIMEOUT = 30.0  # per server, until it answers
PG_OS_USER = "postgres"  # OS user running postgres when we are root; also the superuser role
DB_NAME = DB_USER = "moonport"
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A server failed to start or stop; the message carries the relevant log tail."""


# ----------------------------------------------------------------- helpers ---

_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice per process."""
    with _port_lock:
        for _ in range(200):
            with socket.socket() as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise StackError("could not find a free port")

def _port_in_use(port: int) -> bool:
    """True if something listens on 127.0.0.1:port (or a wildcard address) or accepts there."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return _tcp_ok(port)

def _tcp_ok(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False

_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore http_proxy

def _http_ok(url: str) -> bool:
    with contextlib.suppress(Exception), _no_proxy.open(url, timeout=1) as r:
        return r.status == 200
    return False

def _http_json(url: str) -> dict | None:
    """GET url and parse its JSON body; None when it does not answer 200 with JSON."""
    with contextlib.suppress(Exception), _no_proxy.open(url, timeout=1) as r:
        return json.loads(r.read())
    return None

def redis_ping(port: int) -> bool:
    """Send a RESP PING; True only on +PONG (not e.g. -LOADING while the AOF loads)."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64).startswith(b"+PONG")
    return False

def nats_info(port: int) -> str:
    """Connect to NATS and return the INFO line the server sends first."""
    buf = b""
    with socket.create_connection((HOST, port), timeout=2) as s:
        while b"\r\n" not in buf and (chunk := s.recv(4096)):
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode()

def _find_exe(name: str, *fallbacks: str) -> str:
    for cand in (shutil.which(name), *fallbacks):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise StackError(f"{name} not found (install the Debian package)")

def pg_bindir() -> str:
    """Newest /usr/lib/postgresql/<version>/bin that holds a postgres binary."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(d + "/postgres")]
    if not dirs:
        raise StackError("no PostgreSQL found under /usr/lib/postgresql/*/bin")
    return max(dirs, key=lambda d: [int(x) if x.isdigit() else 0 for x in d.split("/")[-2].split(".")])

def _as_pg_user(cmd: list) -> list:
    """Prefix cmd with runuser -u postgres when we are root (postgres refuses to run as root)."""
    runuser = [_find_exe("runuser", "/usr/sbin/runuser"), "-u", PG_OS_USER, "--"] if os.geteuid() == 0 else []
    return runuser + cmd

def _tail(path: str, offset: int = 0, lines: int = 30) -> str:
    """Last lines of a log, counting only what was written after byte offset (this start)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return f"--- {path} (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

def _alive(pid: int) -> bool:
    """Process exists and is no zombie (a container's PID 1 may not reap orphans)."""
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False

def _is_ours(pid: int, program: str, cwd: str) -> bool:
    """pid is alive, runs `program`, and its cwd is `cwd` (each server chdirs to its own dir)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        return (program.encode() in f.read() and os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(cwd)
                and _alive(pid))
    return False

def _pids_in(cwd: str) -> list[int]:
    """Live pids whose cwd is `cwd` (a postmaster and all its children chdir to the data dir)."""
    real, found = os.path.realpath(cwd), []
    for d in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{d}/cwd") == real and _alive(int(d)):
                found.append(int(d))
    return found

def _read_pid(path: str) -> int | None:
    with contextlib.suppress(OSError, ValueError), open(path) as f:
        return int(f.readline())
    return None

def _terminate(pid: int, proc: subprocess.Popen | None = None, grace: float = STOP_GRACE) -> None:
    """SIGTERM pid (unless grace is 0), wait up to grace seconds, then SIGKILL its process
    group (all three servers lead their own session) and wait for it to be gone."""
    def gone(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (proc.poll() is not None) if proc is not None else not _alive(pid):
                return True
            time.sleep(0.05)
        return False
    with contextlib.suppress(OSError):
        if grace:
            os.kill(pid, signal.SIGTERM)
    if not gone(grace):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        gone(5)

def _clean_env() -> dict:
    """os.environ without PG* variables that could redirect our clients and tools."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"PGCONNECT_TIMEOUT": "5"}

def _has_c_utf8() -> bool:
    """Is the C.UTF-8 locale installed (on Debian, libc-bin ships it)?"""
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout if shutil.which("locale") else ""
    return "c.utf8" in out.lower().replace("-", "").split()


# ------------------------------------------------------------------- stack ---

class Stack:
    """nats-server + PostgreSQL + Redis rooted at one directory.

    persistent=False is test mode: fsync=off, no Redis persistence, NATS
    monitoring on a free port, and stop() deletes root.  persistent=True keeps
    and reuses data across runs (monitoring on 8222).  Nothing touches the
    disk before start*(), so a Stack built in a fresh process can stop() what
    another process started (via the pid files).
    """

    def __init__(self, root: str, nats_port: int, pg_port: int, redis_port: int,
                 persistent: bool, nats_http_port: int | None = None, nats_auth: bool = True,
                 nats_nodes: int = 1, nats_route_port: int | None = None):
        self.root = os.path.abspath(root)
        self.nats_port, self.pg_port, self.redis_port = nats_port, pg_port, redis_port
        self.persistent = persistent
        self.nats_http_port = nats_http_port or (DEFAULT_PORTS["nats_http_port"] if persistent else free_port())
        self.nats_extra_conf = ""  # appended verbatim to nats.conf (accounts, ...)
        self.nats_auth = nats_auth  # per-role users and permissions (nats_auth.py)
        self.nats_nodes = nats_nodes
        # node i's client, monitor and route ports: persistent stacks count up from the first, test stacks take free ones
        nxt = (lambda first, i: first + i) if persistent else (lambda first, i: free_port())
        route = nats_route_port or (DEFAULT_ROUTE_PORT if persistent else free_port())
        self.nats_ports = [nats_port] + [nxt(nats_port, i) for i in range(1, nats_nodes)]
        self.nats_http_ports = [self.nats_http_port] + [nxt(self.nats_http_port, i) for i in range(1, nats_nodes)]
        self.nats_route_ports = [route] + [nxt(route, i) for i in range(1, nats_nodes)] if nats_nodes > 1 else []
        self._procs: dict[str, subprocess.Popen] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def env(self) -> dict:
        """Connection settings for tests (MP_TEST_*) and services (MOONPORT_*).

        MOONPORT_NATS_* name the all-in-one `moonport` user; MP_TEST_NATS_URL carries the
        `test` user's credentials (throwaway stacks only) for integration tests."""
        nats, redis = ",".join(f"nats://{HOST}:{p}" for p in self.nats_ports), f"redis://{HOST}:{self.redis_port}"
        pg = f"host={HOST} port={self.pg_port} dbname={DB_NAME} user={DB_USER}"
        test_nats = f"nats://{HOST}:{self.nats_port}"  # one node: a test client needs one, the cluster routes the rest
        if self.nats_auth and not self.persistent:
            user, pw = nats_auth.TEST_USER, self.nats_password(nats_auth.TEST_USER)
            test_nats = f"nats://{user}:{urllib.parse.quote(pw, safe='')}@{HOST}:{self.nats_port}"
        # a cluster keeps every event on three nodes, so losing one loses none
        replicas = {"MOONPORT_NATS_STREAM_REPLICAS": str(min(self.nats_nodes, 3))} if self.nats_nodes > 1 else {}
        return {"MP_TEST_NATS_URL": test_nats, "MP_TEST_PG_DSN": pg, "MP_TEST_REDIS_URL": redis,
                "MOONPORT_NATS_URL": nats, "MOONPORT_POSTGRES_DSN": pg, "MOONPORT_REDIS_URL": redis,
                **replicas, **self.nats_env(None)}

    def nats_secrets_dir(self) -> str:
        return self.path("secrets", "nats")

    def nats_password(self, user: str) -> str:
        """The password of a NATS user of this stack (generated on first use)."""
        return nats_auth.password(self.nats_secrets_dir(), user)

    def nats_env(self, roles: str | None) -> dict:
        """MOONPORT_NATS_USER / MOONPORT_NATS_PASSWORD_FILE for `moonport serve --roles <roles>`."""
        if not self.nats_auth:
            return {}
        user = nats_auth.user_for(roles)
        self.nats_password(user)  # make sure the file exists
        return {"MOONPORT_NATS_USER": user,
                "MOONPORT_NATS_PASSWORD_FILE": os.path.join(self.nats_secrets_dir(), user)}

    # -- whole stack ---------------------------------------------------------
    def start(self) -> None:
        """Start nats, postgres, redis (adopting ones already running) and wait until each answers.

        On failure, what this call started is stopped again (non-persistent:
        the whole stack including root) and StackError is raised.
        """
        if not self.persistent:  # no orphans if the harness dies with an exception
            atexit.unregister(self.stop)
            atexit.register(self.stop)
        started = []
        try:
            for start, stop in ((self.start_nats, self.stop_nats), (self.start_postgres, self.stop_postgres),
                                (self.start_redis, self.stop_redis)):
                if start():
                    started.append(stop)
            with open(self.path("stack.json"), "w") as f:
                json.dump({k: getattr(self, k) for k in DEFAULT_PORTS} | {"persistent": self.persistent}
                          | ({"nats_nodes": self.nats_nodes, "nats_route_port": self.nats_route_ports[0]}
                             if self.nats_nodes > 1 else {}), f, indent=1)
            with open(self.path("stack.env"), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in self.env().items())
        except BaseException:  # includes KeyboardInterrupt
            if not self.persistent:
                self.stop()
            else:
                for stop in reversed(started):
                    stop()
            raise

    def stop(self) -> None:
        """Stop every server recorded under root; idempotent, works from a fresh process.

        Non-persistent: also removes root and the /var/tmp postgres area if one was used.
        """
        errors = []
        for stop in (self.stop_redis, self.stop_postgres, self.stop_nats):
            try:
                stop()
            except Exception as e:  # keep stopping the others
                errors.append(str(e))
        if not self.persistent and os.path.isdir(self.root) and self.root.count("/") > 1:
            area = os.path.realpath(self.path("pg"))
            if os.path.islink(self.path("pg")) and area.startswith("/var/tmp/moonport-pg-"):
                shutil.rmtree(area, ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise StackError("; ".join(errors))

    def status(self) -> list[tuple[str, int | None, bool, str]]:
        """[(server, pid or None, answering?, url)] for nats-server, postgres, redis."""
        e, redis, pg = self.env(), self._pid("redis"), self._pg_pid()
        nats = [(name if self.nats_nodes > 1 else "nats-server", pid, bool(pid) and _tcp_ok(port), f"nats://{HOST}:{port}")
                for name, port in zip(self.nats_names(), self.nats_ports) for pid in [self._pid(name)]]
        return nats + [("postgres", pg, bool(pg) and self._pg_ready(), e["MOONPORT_POSTGRES_DSN"]),
                       ("redis", redis, bool(redis) and redis_ping(self.redis_port), e["MOONPORT_REDIS_URL"])]

    # -- nats and redis: plain child processes with our pid files ----------
    def _pid(self, name: str) -> int | None:
        """Pid of our running `name` server: own child, else the pid file if /proc confirms it."""
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            return proc.pid
        pid = _read_pid(self.path("pids", f"{name}.pid"))
        program = "nats-server" if name.startswith("nats") else f"{name}-server"  # nats1..nats3 are nodes
        return pid if pid and _is_ours(pid, program, self.path(name)) else None

    def _running(self, what: str, pid: int | None, answering, *ports: int) -> bool:
        """True if `what` already runs (pid) and answers on our port; else ensure our ports are free."""
        if pid:
            if not answering():
                raise StackError(f"{what} already runs (pid {pid}) but not on port {ports[0]}; stop it first")
            return True
        for port in ports:
            if _port_in_use(port):
                raise StackError(f"port {port} on {HOST} is already in use (stack {self.root})")
        return False

    def _launch(self, name: str, argv: list, log: str, ready) -> None:
        """Popen argv detached (own session, cwd root/name, output to log), record pid, wait for ready()."""
        os.makedirs(self.path("pids"), exist_ok=True)
        offset = os.path.getsize(log) if os.path.exists(log) else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=self.path(name), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._procs[name] = proc
        with open(self.path("pids", f"{name}.pid"), "w") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = f"did not answer within {START_TIMEOUT:.0f}s" if proc.returncode is None \
                        else f"exited with code {proc.returncode} during startup"
                    raise StackError(f"{name} {why}\n" + _tail(log, offset))
                time.sleep(0.05)
        except BaseException:
            self._stop(name)
            raise

    def _stop(self, name: str) -> None:
        pid = self._pid(name)
        if pid:
            _terminate(pid, self._procs.get(name))
        self._procs.pop(name, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path("pids", f"{name}.pid"))

    def nats_names(self) -> list[str]:
        """Each NATS node's directory and pid-file name: `nats` alone, `nats1` .. `natsN` in a cluster."""
        return ["nats"] if self.nats_nodes == 1 else [f"nats{i + 1}" for i in range(self.nats_nodes)]

    def start_nats(self) -> bool:
        """Start nats-server with JetStream (every node of a cluster, then wait until it has formed);
        False if every node already ran."""
        started = [self.start_nats_node(i) for i in range(self.nats_nodes)]
        if self.nats_nodes > 1:
            try:
                self.wait_nats_cluster()
            except BaseException:
                if any(started):
                    self.stop_nats()
                raise
        return any(started)

    def start_nats_node(self, i: int) -> bool:
        """Start NATS node i (config root/<name>/nats.conf); False if it already runs. A cluster node
        only waits for its own ports: JetStream needs a quorum of the others (wait_nats_cluster)."""
        name, port, http = self.nats_names()[i], self.nats_ports[i], self.nats_http_ports[i]
        d = self.path(name)
        os.makedirs(os.path.join(d, "js"), exist_ok=True)
        if self._running(f"nats-server {name}", self._pid(name), lambda: _tcp_ok(port), port, http,
                         *self.nats_route_ports[i:i + 1]):
            return False
        conf, log = os.path.join(d, "nats.conf"), os.path.join(d, "nats.log")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds passwords
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._nats_conf(i, log))
        exe = _find_exe("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
        health = f"http://{HOST}:{http}/healthz?js-enabled-only=true"
        self._launch(name, [exe, "-c", conf], log,
                     lambda: _tcp_ok(port) and (self.nats_nodes > 1 or _http_ok(health)))
        return True

    def _nats_conf(self, i: int, log: str) -> str:
        """nats.conf of node i: listeners, JetStream, the cluster block (cluster only), the users."""
        js = os.path.join(self.path(self.nats_names()[i]), "js")
        auth = nats_auth.authorization_block(self.nats_secrets_dir(), not self.persistent) if self.nats_auth else ""
        cluster = ""
        if self.nats_nodes > 1:
            # routes carry every client's messages unchecked, so even on loopback they need a password
            pw = self.nats_password(ROUTE_USER)
            routes = ", ".join(f'"nats-route://{ROUTE_USER}:{pw}@{HOST}:{p}"'
                               for j, p in enumerate(self.nats_route_ports) if j != i)
            cluster = (f"server_name: n{i + 1}\ncluster {{\n  name: {CLUSTER_NAME}\n"
                       f"  listen: {HOST}:{self.nats_route_ports[i]}\n"
                       f"  authorization {{\n    user: {ROUTE_USER}\n    password: {json.dumps(pw)}\n  }}\n"
                       f"  routes: [{routes}]\n}}\n")
        return (f"# generated by infra/local/stack.py on every start; extend via Stack.nats_extra_conf\n"
                f"listen: {HOST}:{self.nats_ports[i]}\nhttp: {HOST}:{self.nats_http_ports[i]}\n"
                f"max_payload: 8MB\nlog_file: {json.dumps(log)}\n{cluster}"
                f"jetstream {{\n  store_dir: {json.dumps(js)}\n"
                f"  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n{auth}{self.nats_extra_conf}\n")

    def nats_cluster_formed(self) -> bool:
        """Every node routes to every other, knows the JetStream meta leader and is healthy (/healthz:
        JetStream current with the meta leader and its streams)."""
        for http in self.nats_http_ports:
            routez, jsz = _http_json(f"http://{HOST}:{http}/routez"), _http_json(f"http://{HOST}:{http}/jsz")
            if (routez or {}).get("num_routes", 0) < self.nats_nodes - 1 \
                    or not ((jsz or {}).get("meta_cluster") or {}).get("leader") \
                    or not _http_ok(f"http://{HOST}:{http}/healthz"):
                return False
        return True

    def wait_nats_cluster(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until nats_cluster_formed(); StackError with every node's log tail if not within timeout."""
        deadline = time.monotonic() + timeout
        while not self.nats_cluster_formed():
            if time.monotonic() > deadline:
                raise StackError(f"the NATS cluster did not form within {timeout:.0f}s\n" + "\n".join(
                    _tail(self.path(n, "nats.log"), lines=10) for n in self.nats_names()))
            time.sleep(0.1)

    def kill_nats_node(self, i: int) -> None:
        """SIGKILL NATS node i, as a crash would end it (no lame duck, no flush), and wait until it is gone."""
        name = self.nats_names()[i]
        pid = self._pid(name)
        if pid:
            _terminate(pid, self._procs.get(name), grace=0)
        self._procs.pop(name, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path("pids", f"{name}.pid"))

    def pause_nats_node(self, i: int) -> None:
        """SIGSTOP NATS node i: it keeps its sockets open but answers nothing, as a node stalled by its host does."""
        os.kill(self._pid(self.nats_names()[i]), signal.SIGSTOP)

    def resume_nats_node(self, i: int) -> None:
        """SIGCONT NATS node i after pause_nats_node()."""
        os.kill(self._pid(self.nats_names()[i]), signal.SIGCONT)

    def stop_nats(self) -> None:
        """SIGTERM every NATS node (SIGKILL after STOP_GRACE); no-op for those not running."""
        for name in self.nats_names():
            self._stop(name)

    def start_redis(self) -> bool:
        """Start redis-server (config root/redis/redis.conf); False if already running."""
        d = self.path("redis")
        os.makedirs(d, exist_ok=True)
        if self._running("redis-server", self._pid("redis"), lambda: redis_ping(self.redis_port), self.redis_port):
            return False
        conf, log = os.path.join(d, "redis.conf"), os.path.join(d, "redis.log")
        with open(conf, "w") as f:
            f.write(f"# generated by infra/local/stack.py on every start\n"
                    f"bind {HOST}\nport {self.redis_port}\ndir {json.dumps(d)}\ndaemonize no\n"
                    f"logfile {json.dumps(log)}\n"
                    + ("appendonly yes\n" if self.persistent else 'save ""\nappendonly no\n'))
        exe = _find_exe("redis-server", "/usr/bin/redis-server")
        self._launch("redis", [exe, conf], log, lambda: redis_ping(self.redis_port))
        return True

    def stop_redis(self) -> None:
        """SIGTERM redis-server (SIGKILL after STOP_GRACE); no-op if not running."""
        self._stop("redis")

    # -- PostgreSQL: managed by pg_ctl -----------------------------------------
    def _pg_area(self, create: bool = False) -> str:
        """Real path of the postgres area holding data/, sock/ and postgres.log.

        Normally root/pg.  When we are root and the postgres user cannot
        traverse root (e.g. it is under /root), the area is
        /var/tmp/moonport-pg-<sha1(root)[:12]> and root/pg a symlink to it.
        """
        link = self.path("pg")
        if create:
            os.makedirs(self.root, exist_ok=True)  # `test -x` below needs it
        if os.path.lexists(link) or not create:
            area = os.path.realpath(link)
        elif os.geteuid() == 0 and subprocess.run(_as_pg_user(["test", "-x", self.root]), cwd="/").returncode:
            area = "/var/tmp/moonport-pg-" + hashlib.sha1(self.root.encode()).hexdigest()[:12]
            print(f"stack: {PG_OS_USER} cannot access {self.root}; postgres data in {area} "
                  f"(symlinked from {link})", file=sys.stderr)
            os.makedirs(area, exist_ok=True)
            os.symlink(area, link)
        else:
            area = link
        if create:
            os.makedirs(os.path.join(area, "sock"), exist_ok=True)
            for p in (area, os.path.join(area, "sock")):
                os.chmod(p, 0o700)
                if os.geteuid() == 0:
                    shutil.chown(p, PG_OS_USER, PG_OS_USER)
        return area

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL server tool (initdb, pg_ctl), as the postgres OS user when we are root."""
        return subprocess.run(_as_pg_user([os.path.join(pg_bindir(), tool), *args]), cwd="/", env=_clean_env(),
                              capture_output=True, text=True, timeout=timeout, start_new_session=True)

    def _pg_pid(self) -> int | None:
        """Postmaster pid from data/postmaster.pid if that process is really our postgres."""
        data = os.path.join(self._pg_area(), "data")
        pid = _read_pid(os.path.join(data, "postmaster.pid"))
        return pid if pid and _is_ours(pid, "postgres", data) else None

    def _pg_ready(self) -> bool:
        return subprocess.run([os.path.join(pg_bindir(), "pg_isready"), "-q", "-h", HOST, "-p", str(self.pg_port),
                               "-U", PG_OS_USER, "-d", "postgres", "-t", "2"], env=_clean_env()).returncode == 0

    def start_postgres(self) -> bool:
        """initdb on first use, pg_ctl start, ensure role/db moonport + pg_trgm; False if already running."""
        area = self._pg_area(create=True)
        data, log, sock = (os.path.join(area, x) for x in ("data", "postgres.log", "sock"))
        if self._running("postgres", self._pg_pid(), self._pg_ready, self.pg_port):
            return False
        if not os.path.exists(os.path.join(data, "PG_VERSION")):
            shutil.rmtree(data, ignore_errors=True)  # leftover of an interrupted initdb
            r = self._pg("initdb", "-D", data, "-U", PG_OS_USER, "--auth=trust", "-E", "UTF8",
                         "--locale=" + ("C.UTF-8" if _has_c_utf8() else "C"),
                         *([] if self.persistent else ["--no-sync"]))
            if r.returncode:
                raise StackError(f"initdb failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
            with open(os.path.join(data, "postgresql.conf"), "a") as f:
                f.write("\ninclude_if_exists = 'moonport.conf'  # written by infra/local/stack.py\n")
        conf = os.path.join(data, "moonport.conf")
        with open(conf, "w") as f:  # rewritten on every start: the port may change
            f.write(f"# generated by infra/local/stack.py on every start\n"
                    f"listen_addresses = '{HOST}'\nport = {self.pg_port}\n"
                    # unix socket paths are limited to 107 bytes; we only need TCP anyway
                    f"unix_socket_directories = '{sock if len(sock) < 90 else ''}'\n"
                    f"max_connections = 200\nshared_buffers = 128MB\n"
                    f"fsync = {'on' if self.persistent else 'off'}\n")
        if os.geteuid() == 0:
            shutil.chown(conf, PG_OS_USER, PG_OS_USER)
        if not _pids_in(data):  # lock files are stale (postmaster killed, maybe an unreaped zombie)
            for lock in glob.glob(data + "/postmaster.pid") + glob.glob(sock + "/.s.PGSQL.*"):
                os.unlink(lock)
        offset = os.path.getsize(log) if os.path.exists(log) else 0
        r = self._pg("pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", str(int(START_TIMEOUT)))
        try:
            if r.returncode:
                raise StackError(f"pg_ctl start failed ({r.returncode}): {r.stdout.strip()} "
                                 f"{r.stderr.strip()}\n" + _tail(log, offset))
            deadline = time.monotonic() + START_TIMEOUT
            while not self._pg_ready():
                if time.monotonic() > deadline:
                    raise StackError(f"postgres not ready on port {self.pg_port}\n" + _tail(log, offset))
                time.sleep(0.1)
            self.psql(f"""
SELECT 'CREATE ROLE {DB_USER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}')\\gexec
SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_USER}'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DB_NAME}')\\gexec
\\connect {DB_NAME}
CREATE EXTENSION IF NOT EXISTS pg_trgm;""", superuser=True, dbname="postgres")
        except BaseException:
            self.stop_postgres()
            raise
        return True

    def stop_postgres(self) -> None:
        """pg_ctl stop -m fast; if that fails within STOP_GRACE, SIGKILL postmaster and backends."""
        pid = self._pg_pid()
        if pid:
            self._pg("pg_ctl", "stop", "-D", os.path.join(self._pg_area(), "data"), "-m", "fast",
                     "-w", "-t", str(int(STOP_GRACE)), timeout=STOP_GRACE + 10)
            for p in _pids_in(os.path.join(self._pg_area(), "data")) if _alive(pid) else []:
                _terminate(p, grace=0)  # postmaster and backends (each in its own session)

    def restart_postgres(self) -> None:
        """pg_ctl restart -m fast: every session is ended at once, the server starts again on the same port and data;
        returns once it accepts connections."""
        data = os.path.join(self._pg_area(), "data")
        log = os.path.join(self._pg_area(), "postgres.log")
        r = self._pg("pg_ctl", "restart", "-D", data, "-l", log, "-m", "fast", "-w", "-t", str(int(START_TIMEOUT)))
        if r.returncode:
            raise StackError(f"pg_ctl restart failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}\n"
                             + _tail(log))
        deadline = time.monotonic() + START_TIMEOUT
        while not self._pg_ready():
            if time.monotonic() > deadline:
                raise StackError(f"postgres not ready on port {self.pg_port} after its restart\n" + _tail(log))
            time.sleep(0.1)

    def psql(self, sql: str, superuser: bool = False, dbname: str = DB_NAME) -> str:
        """Run sql (may be several statements) via psql as role moonport; return stdout.

        psql runs with -X -q -A -t -v ON_ERROR_STOP=1, so "select 1" returns
        "1\\n".  superuser=True connects as postgres.  Raises StackError on error.
        """
        cmd = [os.path.join(pg_bindir(), "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", HOST, "-p", str(self.pg_port), "-U", PG_OS_USER if superuser else DB_USER,
               "-d", dbname, "-f", "-"]
        r = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=_clean_env(), timeout=120)
        if r.returncode:
            raise StackError(f"psql failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout


def temp_stack(nats_nodes: int = 1) -> Stack:
    """Non-persistent Stack in a new temp dir with free ports (a NATS cluster with nats_nodes=3); stop() removes it.

    The dir is made 0755 (mkdtemp creates 0700) so the postgres user can use
    root/pg directly instead of the /var/tmp fallback.
    """
    root = tempfile.mkdtemp(prefix="moonport-test-")
    os.chmod(root, 0o755)
    return Stack(root, free_port(), free_port(), free_port(), persistent=False, nats_nodes=nats_nodes)


# ---------------------------------------------------------------- selftest ---

def selftest() -> int:
    """Start a temp stack, probe all three servers, restart each, check port clash and cleanup."""
    def check(cond: bool, what: str) -> None:
        print(("ok    " if cond else "FAIL  ") + what, flush=True)
        if not cond:
            raise SystemExit(1)

    def timed(fn) -> float:
        t0 = time.monotonic()
        fn()
        return time.monotonic() - t0

    s = temp_stack()
    check(True, f"start() took {timed(s.start):.2f}s (root {s.root})")
    try:
        check(s.psql("select 1") == "1\n", "postgres: select 1 as moonport")
        check(s.psql("select similarity('moon', 'moon'), rolsuper from pg_roles where rolname = current_user")
              == "1|f\n", "postgres: pg_trgm usable, moonport is no superuser")
        check(redis_ping(s.redis_port), "redis: PING -> PONG")
        info = nats_info(s.nats_port)
        check(info.startswith("INFO ") and '"jetstream":true' in info, "nats: INFO line has jetstream:true")
        s.psql("create table survivor(x int); insert into survivor values (42);")
        for name, stop, start, up in (("postgres", s.stop_postgres, s.start_postgres, s._pg_ready),
                                      ("nats", s.stop_nats, s.start_nats, lambda: _tcp_ok(s.nats_port)),
                                      ("redis", s.stop_redis, s.start_redis, lambda: redis_ping(s.redis_port))):
            t1, down, t2 = timed(stop), not up(), timed(start)
            check(down and up(), f"{name}: stopped in {t1:.2f}s, restarted on the same port in {t2:.2f}s")
        check(s.psql("select x from survivor") == "42\n" and '"jetstream":true' in nats_info(s.nats_port),
              "postgres table survived the restart, nats came back with JetStream")
        clash = temp_stack()
        clash.redis_port = s.redis_port  # nats and postgres start, then redis must fail
        try:
            clash.start()
            check(False, "port clash detected")
        except StackError as e:
            check(str(s.redis_port) in str(e) and not os.path.exists(clash.root)
                  and not _tcp_ok(clash.nats_port) and not _tcp_ok(clash.pg_port),
                  f"port clash -> StackError '{e}'; half-started stack cleaned up")
        pids = [pid for _, pid, _, _ in s.status()]
        t = timed(Stack(s.root, s.nats_port, s.pg_port, s.redis_port, persistent=False).stop)  # pid files only
        check(all(pids) and not any(map(_alive, pids)) and not os.path.exists(s.root),
              f"stop() by a fresh Stack (pid files only) in {t:.2f}s: pids {pids} gone, temp dir removed")
    finally:
        s.stop()
    c = temp_stack(nats_nodes=3)
    try:
        t = timed(c.start_nats)
        check(c.nats_cluster_formed() and c.env()["MOONPORT_NATS_URL"].count(",") == 2,
              f"nats cluster of 3 formed (routes, meta leader, healthy) in {t:.2f}s")
        c.kill_nats_node(1)
        check(not _tcp_ok(c.nats_ports[1]) and not c.nats_cluster_formed(), "nats node 2 killed (SIGKILL)")
        t = timed(lambda: (c.start_nats_node(1), c.wait_nats_cluster()))
        check(c.nats_cluster_formed(), f"nats node 2 restarted and rejoined in {t:.2f}s")
    finally:
        c.stop()
    if os.geteuid() == 0:  # /var/tmp fallback when postgres cannot traverse root
        hidden = tempfile.mkdtemp(prefix="moonport-test-")  # mode 0700
        h = Stack(os.path.join(hidden, "stack"), free_port(), free_port(), free_port(), persistent=False)
        try:
            h.start_postgres()
            area = os.path.realpath(h.path("pg"))
            check(os.path.islink(h.path("pg")) and area.startswith("/var/tmp/moonport-pg-")
                  and h.psql("select 1") == "1\n", f"postgres in {area} via symlink")
        finally:
            h.stop()
            os.rmdir(hidden)
        check(not os.path.exists(area), "/var/tmp area removed")
    print("selftest passed")
    return 0


# --------------------------------------------------------------------- CLI ---

def saved_stack(root: str, nats_nodes: int | None = None, **ports) -> Stack:
    """The persistent Stack at root: each setting as given, else as the previous ``up`` left it in
    stack.json, else the default (so `down` from a fresh process stops a cluster too)."""
    try:
        with open(os.path.join(root, "stack.json")) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = {}
    nodes = nats_nodes or saved.get("nats_nodes") or 1
    return Stack(root, persistent=True, nats_nodes=nodes,
                 nats_route_port=saved.get("nats_route_port") if nodes > 1 else None,
                 **{k: ports.get(k) or saved.get(k) or v for k, v in DEFAULT_PORTS.items()})


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring.  `status` exits 3 unless all three answer."""
    ap = argparse.ArgumentParser(description="moonport local infrastructure (nats, postgres, redis)")
    ap.add_argument("cmd", choices=["up", "down", "status", "env", "psql", "selftest"])
    ap.add_argument("--dir", default=".run", help="persistent stack directory (default .run)")
    for key, default in DEFAULT_PORTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, dest=key,
                        help=f"default: previous up's, else {default}")
    ap.add_argument("--nats-nodes", type=int, choices=[1, 3], help="3: a NATS cluster; default: previous up's, else 1")
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        return selftest()
    s = saved_stack(args.dir, args.nats_nodes, **{k: getattr(args, k) for k in DEFAULT_PORTS})
    show = lambda *parts: os.path.join(args.dir, *parts)  # noqa: E731 -- paths as the user wrote --dir
    if args.cmd == "up":
        try:
            s.start()
        except StackError as e:
            print(f"stack: {e}", file=sys.stderr)
            return 1
        e = s.env()
        for name, port, http in zip(s.nats_names(), s.nats_ports, s.nats_http_ports):
            print(f"nats-server  nats://{HOST}:{port}  (JetStream, monitoring http://{HOST}:{http}, "
                  f"logs: {show(name, 'nats.log')})")
        print(f"postgres     {e['MOONPORT_POSTGRES_DSN']}  (PostgreSQL {pg_bindir().split('/')[-2]}, "
              f"logs: {show('pg', 'postgres.log')})")
        print(f"redis        {e['MOONPORT_REDIS_URL']}  (appendonly, logs: {show('redis', 'redis.log')})")
        print(f"env          {show('stack.env')}")
    elif args.cmd == "down":
        s.stop()
        print(f"stack in {args.dir} stopped")
    elif args.cmd == "status":
        rows = s.status()
        for name, pid, ok, url in rows:
            state = f"running  pid {pid:<7}" if pid else "stopped" + " " * 13
            print(f"{name:<12} {state} {url}" + ("  (NOT ANSWERING)" if pid and not ok else ""))
        return 0 if all(pid and ok for _, pid, ok, _ in rows) else 3
    elif args.cmd == "env":
        print("".join(f"{k}={v}\n" for k, v in s.env().items()), end="")
    elif args.cmd == "psql":
        psql = os.path.join(pg_bindir(), "psql")
        os.execve(psql, [psql, "-h", HOST, "-p", str(s.pg_port), "-U", DB_USER, "-d", DB_NAME], _clean_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
