"""Faults under load (issue 11), black-box, on the 3-node NATS cluster with
two processes of every role (tests/cluster/replicas.py).

A few clients (tests/cluster/load.py, loopback) place orders with
Idempotency-Keys, read products and open the web home screen, steadily,
while one fault at a time is done to the platform. Each test is one row:

  1. a NATS node stopped (SIGSTOP) for a few seconds, then SIGCONT;
  2. a NATS node killed (SIGKILL), started again after CHAOS_SECONDS;
  3. an order process killed, restarted, then a product process;
  4. a gateway killed (the other serves on the same SO_REUSEPORT port),
     restarted after;
  5. Postgres restarted (pg_ctl restart -m fast);
  6. Redis down for CHAOS_SECONDS, then back;
  7. a rolling restart of every role: SIGTERM one process, start its
     replacement, wait until that is ready on /readyz, the next; every
     old process drains and exits 0.

Each row records the outcomes, the time to the first success of each kind
of request after the fault, and then the ledger (tests/cluster/ledger.py:
every order confirmed or cancelled, one per key, stock conserved, one
confirmation delivered per confirmed order), and asserts what the row
allows to fail (see each test). No process may crash.

CHAOS_SECONDS (default 10) is how long an outage lasts; CI runs with 4.
CHAOS_WRITE_DOCS=1 writes the table into docs/reliability.md.
"""
from __future__ import annotations

import os, signal, time, unittest

import context
from ledger import open_shop
from load import Answer, Load
from order_helpers import wait_for
from replicas import Platform, events_copies_current, events_leader, monitor
from report import Row, table, write_docs

SECONDS = float(os.environ.get("CHAOS_SECONDS", "10"))  # an outage's length
WRITE_DOCS = os.environ.get("CHAOS_WRITE_DOCS") == "1"
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "reliability.md")
THREADS, PAUSE = 3, 0.05  # clients, and seconds between one client's rounds: bounded load on a shared machine
STOCK, PRODUCTS = 100000, 4
LEAD = 2.0  # steady load before the fault
TAIL = max(3.0, SECONDS / 2)  # load after the fault is over: failures there are never allowed
SLACK = 0.2  # a request sent this long after a kill may still have been on its way before anyone noticed
SETTLE = 1.0  # after an outage ends, clients' connections and pools may take this long to be used again
ROLES = ("auth", "user", "product", "order", "payment", "notification", "gateway")


def outage(times: dict, down, up, seconds: float) -> None:
    """down(), `seconds` later up(): times["fault"] when it went down, times["over"] once it is up again."""
    times["fault"] = time.monotonic()
    down()
    time.sleep(seconds)
    up()
    times["over"] = time.monotonic()


def in_flight(a: Answer, at: float) -> bool:
    """Was `a` on its way when something happened at `at` (sent before it, or just after, and answered after)?"""
    return a.start <= at + SLACK and a.end >= at


class ChaosTest(unittest.TestCase):
    rows: list[Row] = []
    keys: dict[str, set[str]] = {}

    @classmethod
    def setUpClass(cls):
        cls.platform = Platform()
        cls.platform.start_wave()
        cls.platform.start_wave()
        shop = open_shop(cls.platform, "Chaos mug", PRODUCTS, STOCK, THREADS)
        cls.products, cls.tokens, cls.ledger = shop.products, shop.tokens, shop.ledger

    @classmethod
    def tearDownClass(cls):
        text = table(cls.rows, f"CHAOS_SECONDS={SECONDS:g}: {THREADS} clients, {PAUSE * 1000:.0f} ms between a "
                               f"client's rounds (an order, a product read, the home screen); load average "
                               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end.")
        print("\n" + text, flush=True)
        if WRITE_DOCS:
            write_docs(DOCS, text)
            print(f"chaos: table written to {os.path.normpath(DOCS)}", flush=True)
        bad = cls.platform.stop()
        assert not bad, f"processes that did not drain and exit 0 on SIGTERM: {bad}"

    # ---- one row -------------------------------------------------------------------------------------

    def row(self, name: str, allows: str, fault, allowed) -> Row:
        """Runs the load around `fault(times)` (which sets times["fault"] and times["over"]), then judges it:
        `allowed(row, answer)` says whether a failed request may fail."""
        times: dict[str, float] = {}

        def during(t0: float) -> None:
            time.sleep(LEAD)
            fault(times)

        tally = Load(self.platform.url, self.tokens, self.products, pause=PAUSE, home=True).run(
            during=during, tail=TAIL)
        row = Row(name, allows, tally, times["fault"], times.get("over", times["fault"]), lambda a: False,
                  notes=times.get("notes", ""))
        row.allowed = lambda a: allowed(row, a)
        row.trouble += times.get("trouble", []) + self.crashed()
        for k, ids in tally.orders.items():
            self.keys.setdefault(k, set()).update(ids)
        row.ledger = self.ledger.check(self.keys, allow_cancelled=True)
        row.summary = dict(self.ledger.summary)
        self.rows.append(row)
        print("\n" + row.line(), flush=True)
        return row

    def verdict(self, row: Row) -> None:
        self.assertEqual(row.trouble, [], "a process crashed or did not exit as it should")
        self.assertEqual(row.tally.problems, [], "a client could not go on")
        self.assertEqual(row.describe_failures(row.unexpected) if row.unexpected else "none", "none",
                         f"failures the row does not allow ({row.allows})")
        self.assertEqual(row.ledger, [], "the ledger does not hold")

    def crashed(self) -> list[str]:
        """Every process of the platform that is not running (it should all be)."""
        return [f"{role} (wave {i + 1}) exited {mp.proc.returncode}: {mp.log_tail(5)}"
                for i, wave in enumerate(self.platform.waves) for role, mp in wave.items()
                if mp.proc.poll() is not None]

    # ---- the rows ------------------------------------------------------------------------------------

    def test_1_nats_node_stopped(self):
        """A node that stops answering keeps its sockets: requests routed through it wait for their deadline
        (the gateway answers 504) or fail when a loop connection's pings go unanswered (503). Only requests sent
        while it was stopped, or in flight then, may fail; none sent once it has resumed."""
        st = context.STACK
        node = int(events_leader(st.nats_http_ports[0])[1:]) - 1
        stop_s = SECONDS / 2

        def fault(times):
            outage(times, lambda: st.pause_nats_node(node), lambda: st.resume_nats_node(node), stop_s)
            st.wait_nats_cluster(60)
            times["notes"] = f"n{node + 1} led EVENTS; cluster whole again {time.monotonic() - times['over']:.1f} s " \
                             "after SIGCONT"

        row = self.row(f"NATS node stopped (SIGSTOP) {stop_s:g} s, then SIGCONT",
                       "requests sent while it was stopped or in flight then (5xx); none after it resumed", fault,
                       lambda r, a: a.status in (0, 502, 503, 504) and a.end >= r.fault and a.start <= r.over + SETTLE)
        self.verdict(row)

    def test_2_nats_node_killed(self):
        """kill -9 of the node with the most client connections: its connections close, so processes move to
        another node at once. Only requests in flight on it at the kill may fail."""
        st = context.STACK
        conns = [monitor(p, "/connz")["num_connections"] for p in st.nats_http_ports]
        node = conns.index(max(conns))

        def fault(times):
            outage(times, lambda: st.kill_nats_node(node), lambda: st.start_nats_node(node), SECONDS)
            st.wait_nats_cluster(60)
            wait_for("EVENTS with 3 current copies", lambda: events_copies_current(st.nats_http_ports), 30, every=0.5)
            times["notes"] = f"n{node + 1} held {max(conns)} of {sum(conns)} client connections"

        row = self.row(f"NATS node killed (SIGKILL), restarted after {SECONDS:g} s",
                       "requests in flight on it at the kill", fault, lambda r, a: in_flight(a, r.fault))
        self.verdict(row)
        self.assertLessEqual(len(row.failures), THREADS, "more failures than requests can be in flight")

    def test_3_service_replica_killed(self):
        """kill -9 of an order process, its replacement started a second later; then the same for a product
        process. Only the requests that process held may fail, and the retries of an order key whose first
        attempt it held (its claim is taken over after 30 s, services/order/idempotency.c)."""
        kills: list[float] = []

        def fault(times):
            for role, wave in (("order", 0), ("product", 1)):
                kills.append(time.monotonic())
                times.setdefault("fault", kills[-1])
                self.platform.kill(role, wave)
                time.sleep(1.0)
                _, ready = self.platform.replace(role, wave)
                times["over"] = time.monotonic()
                note = f"{role} replacement ready in {ready:.1f} s"
                times["notes"] = f"{times['notes']}; {note}" if "notes" in times else note
                time.sleep(LEAD)

        def allowed(r: Row, a: Answer) -> bool:
            held = {f.key for f in r.failures if f.key and any(in_flight(f, k) for k in kills)}
            return any(in_flight(a, k) for k in kills) or (a.key in held and a.start < kills[-1] + 45)

        row = self.row("an order process killed (SIGKILL), then a product process; each restarted 1 s after",
                       "requests the killed process held, and retries of an order key it held", fault, allowed)
        self.verdict(row)

    def test_4_gateway_killed(self):
        """kill -9 of one gateway: the kernel drops its listeners from the SO_REUSEPORT group, so new connections
        go to the other. Only requests on its connections at the kill may fail (no status: the connection broke);
        it is restarted 1 s later."""
        def fault(times):
            times["fault"] = time.monotonic()
            self.platform.kill("gateway", 0)
            time.sleep(1.0)
            _, ready = self.platform.replace("gateway", 0)
            times["over"] = time.monotonic()
            times["notes"] = f"replacement ready in {ready:.1f} s"

        row = self.row("a gateway killed (SIGKILL), restarted 1 s after", "requests on its connections at the kill",
                       fault, lambda r, a: in_flight(a, r.fault))
        self.verdict(row)

    def test_5_postgres_restarted(self):
        """pg_ctl restart -m fast ends every session at once. While it is down, what needs Postgres answers 503;
        once it accepts connections again nothing may fail."""
        def fault(times):
            times["fault"] = time.monotonic()
            context.STACK.restart_postgres()
            times["over"] = time.monotonic()
            times["notes"] = f"down {times['over'] - times['fault']:.1f} s"

        row = self.row("Postgres restarted (pg_ctl restart -m fast)", "503 while it restarts; nothing after", fault,
                       lambda r, a: a.status == 503 and a.end >= r.fault and a.start <= r.over + SETTLE)
        self.verdict(row)

    def test_6_redis_down(self):
        """Redis holds caches and rate-limit buckets only: with it down, reads go to Postgres and limits are kept
        per process. 503 is allowed while it is down; nothing after it is back."""
        st = context.STACK

        def fault(times):
            outage(times, st.stop_redis, st.start_redis, SECONDS)

        row = self.row(f"Redis down {SECONDS:g} s, then back", "503 while it is down; nothing after", fault,
                       lambda r, a: a.status == 503 and a.end >= r.fault and a.start <= r.over + SETTLE)
        self.verdict(row)

    def test_7_rolling_restart(self):
        """Every process, one at a time: SIGTERM, its replacement started at once and waited for on /readyz,
        then the next. The old one drains (stops taking work, finishes what it has) and exits 0. Nothing may
        fail."""
        def fault(times):
            exits = times["trouble"] = []
            times["fault"] = time.monotonic()
            slowest = 0.0
            for role in ROLES:
                for wave in (0, 1):
                    sent = time.monotonic() - times["fault"]
                    old, ready = self.platform.replace(role, wave, signal.SIGTERM)
                    slowest = max(slowest, ready)
                    print(f"rolling restart: {role} (wave {wave + 1}) SIGTERM at {sent:+.2f} s, replacement ready "
                          f"{ready:.2f} s later", flush=True)
                    try:
                        rc = old.proc.wait(15)
                    except Exception:  # noqa: BLE001 -- a drain that hangs is reported, then ended
                        rc = "still running 15 s after SIGTERM"
                    if rc != 0:
                        exits.append(f"{role} (wave {wave + 1}): {rc}: {old.log_tail(5)}")
            times["over"] = time.monotonic()
            times["notes"] = (f"{len(ROLES) * 2} processes in {times['over'] - times['fault']:.1f} s, the slowest "
                              f"ready in {slowest:.1f} s")

        row = self.row("rolling restart of every role (SIGTERM, replacement ready, next)", "nothing", fault,
                       lambda r, a: False)
        self.verdict(row)


if __name__ == "__main__":
    unittest.main()
