"""The platform scaled out, for the cluster tests: every role in processes
of its own, in replicas, on the harness's 3-node NATS cluster.

Replicas come in waves: wave 1 is one process of every service role and one
gateway, wave 2 a second of each. Every gateway listens on the same port
(SO_REUSEPORT: the kernel spreads connections over them), every service
replica subscribes in its role's queue group and shares its role's durable
consumers, and each process connects as its role's own NATS user. Starting
wave by wave is also how `make run CLUSTER=1` starts (infra/local/run.py):
the first Auth makes the signing key the others then load.

    p = Platform(); p.start_wave(); ...; p.start_wave(); ...; p.stop()

A process can be replaced in its slot (`replace`: after it was killed, or
while it drains after SIGTERM), as an orchestrator replaces a pod; the
processes replaced are kept (`retired`), so that what they delivered still
counts.
"""
from __future__ import annotations

import json, re, signal, time, urllib.request

import context
import nats_auth
import stack as stacklib
from moonport import Moonport

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# generous: the load tests are about replicas, not about being rate limited from one address
LIMITS = {g: {"rate": "100000/s", "burst": 100000} for g in ("default", "login", "auth")}


class Platform:
    def __init__(self):
        self.http_port = stacklib.free_port()
        self.services = sorted(nats_auth.discovered())
        self.waves: list[dict[str, Moonport]] = []
        self.retired: list[tuple[str, Moonport]] = []  # (role, process) replaced by another

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start_wave(self) -> dict[str, Moonport]:
        """Starts one more process of every role (services first, then the gateway) and waits until each is
        ready; returns them by role."""
        wave: dict[str, Moonport] = {}
        self.waves.append(wave)
        for role in [*self.services, "gateway"]:
            wave[role] = self._new(role).start(wait_ready=False)
        for mp in wave.values():
            mp.wait_ready(60)
        return wave

    def _new(self, role: str) -> Moonport:
        return Moonport(context.STACK, context.BINARY, roles=role, http_port=self.http_port, rate_limits=LIMITS,
                        log_level="warn")

    def replace(self, role: str, wave: int, sig: int | None = None,
                ready_timeout: float = 60) -> tuple[Moonport, float]:
        """Sends `sig` (none: it is already dead) to the process of `role` in wave `wave`, starts its replacement at
        once and waits until that is ready on /readyz. Returns (the old process, seconds until the replacement was
        ready); the old one may still be draining (its `proc.wait()` tells)."""
        old = self.waves[wave][role]
        if sig is not None:
            old.signal(sig)
        t0 = time.monotonic()
        new = self._new(role).start(wait_ready=False)
        self.waves[wave][role] = new
        self.retired.append((role, old))
        new.wait_ready(ready_timeout)
        return old, time.monotonic() - t0

    def kill(self, role: str, wave: int) -> Moonport:
        """SIGKILL the process of `role` in wave `wave`, as a crash ends it, and waits until it is gone."""
        mp = self.waves[wave][role]
        mp.signal(signal.SIGKILL)
        mp.proc.wait()
        return mp

    def replicas(self, role: str) -> list[Moonport]:
        return [w[role] for w in self.waves]

    def gateway(self) -> Moonport:
        """A gateway process, for the commands a test runs with its configuration (user create)."""
        return self.waves[0]["gateway"]

    def notifications(self) -> list[dict]:
        """Every notification any notification replica delivered (each writes to its own directory)."""
        return [n for mp in [*self.replicas("notification"), *(m for r, m in self.retired if r == "notification")]
                for n in mp.notifications()]

    def stop(self) -> list[tuple[str, int | None]]:
        """SIGTERM every process, gateways first; returns (name, exit code) of each that did not exit 0."""
        bad = []
        for wave in self.waves:
            for role in ["gateway", *self.services]:
                rc = wave[role].stop()
                if rc != 0:
                    bad.append((f"{role} (wave {self.waves.index(wave) + 1})", rc))
        for _, mp in self.retired:  # gone already, or killed by the test: their exits were the test's to judge
            mp.stop()
        return bad


def metric_total(mp: Moonport, name: str, **labels) -> float:
    """The sum of every series of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for line in mp.metrics().splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        head, _, value = line.rpartition(" ")
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            total += float(value)
    return total


def monitor(port: int, path: str) -> dict:
    """A NATS node's monitoring endpoint (/jsz, /connz, ...) as JSON."""
    with _opener.open(f"http://{stacklib.HOST}:{port}{path}", timeout=2) as r:
        return json.load(r)


def events_stream(port: int) -> dict:
    """The EVENTS stream's detail as the node on monitoring port `port` reports it (config, cluster)."""
    jsz = monitor(port, "/jsz?streams=true&config=true")
    for acct in jsz.get("account_details") or []:
        for s in acct.get("stream_detail") or []:
            if s["name"] == "EVENTS":
                return s
    return {}


def events_leader(port: int, timeout: float = 15) -> str:
    """The server name leading EVENTS ("n2"), as the node on monitoring port `port` reports it; waits (bounded) while
    the stream has no leader yet, as right after the cluster forms or a node left."""
    until = time.monotonic() + timeout
    while True:
        leader = (events_stream(port).get("cluster") or {}).get("leader")
        if leader or time.monotonic() >= until:
            assert leader, f"EVENTS has no leader after {timeout:.0f} s"
            return leader
        time.sleep(0.1)


def events_copies_current(http_ports: list[int]) -> bool:
    """EVENTS has a copy on every node and the leader sees each other copy current (only the leader's view of its
    followers is kept up to date; node i is server n<i+1>)."""
    leader = events_stream(http_ports[0]).get("cluster", {}).get("leader")
    if not leader:
        return False
    view = events_stream(http_ports[int(leader[1:]) - 1])
    followers = view.get("cluster", {}).get("replicas") or []
    return (view.get("config", {}).get("num_replicas") == len(http_ports) and len(followers) == len(http_ports) - 1
            and all(f.get("current") for f in followers))
