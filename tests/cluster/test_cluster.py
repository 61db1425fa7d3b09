"""Scale-out, black-box, on a 3-node NATS cluster (issue 11): replicas of
every role share the work, no event is handled twice, and kill -9 of a NATS
node under load costs the clients nothing but the requests in flight on it.

The steps build on each other and run in order (their names are numbered):
  1. one process of every role: the rate of a few closed-loop clients;
  2. a second process of every role: the rate again, and every replica's
     counters rise (gateways: HTTP requests; user, product, order: NATS
     requests served; payment, notification: events handled);
  3. steady load while the node leading the EVENTS stream is killed (SIGKILL)
     and started again: the only failed requests are ones in flight at the
     kill, and the node rejoins (routes, meta leader, its copy of EVENTS);
  4. the ledger of all three steps: one order per Idempotency-Key, one
     payment, one payment.succeeded event and one confirmation notification
     (stored and delivered) per order, and per product the initial stock
     minus what confirmed orders hold is the stock left;
  5. a session revoked through one gateway is refused by both within a
     second (each new connection lands on either, SO_REUSEPORT).

The rates are printed ("cluster rate: ..."); docs/reliability.md has them.
"""
from __future__ import annotations

import os, time, unittest

import context
from helpers import login, new_user
from httpc import Client
from ledger import open_shop
from load import Load, Tally
from order_helpers import wait_for
from replicas import Platform, events_copies_current, events_leader, metric_total, monitor

THREADS = 4
STOCK = 100000
MEASURE_S = 6.0  # each rate measurement
KILL_AFTER_S, DOWN_FOR_S, KILL_LOAD_S = 5.0, 6.0, 20.0
IN_FLIGHT_SLACK_S = 0.2  # a request sent within this of the kill may still have gone out before the node noticed


class ClusterTest(unittest.TestCase):
    tallies: list[Tally] = []
    rates: dict[int, tuple[float, float]] = {}  # processes of every role -> (orders/s, reads/s)

    @classmethod
    def setUpClass(cls):
        cls.platform = Platform()
        cls.platform.start_wave()
        shop = open_shop(cls.platform, "Cluster mug", 4, STOCK, THREADS)
        cls.products, cls.tokens, cls.ledger = shop.products, shop.tokens, shop.ledger

    @classmethod
    def tearDownClass(cls):
        bad = cls.platform.stop()
        assert not bad, f"processes that did not drain and exit 0 on SIGTERM: {bad}"

    # ---- helpers -------------------------------------------------------------------------------------

    def measure(self, replicas: int) -> Tally:
        load = Load(self.platform.url, self.tokens, self.products)
        tally = load.run(MEASURE_S)
        self.tallies.append(tally)
        self.assertEqual(tally.problems, [])
        self.assertEqual([a for a in tally.answers if a.failed], [], "no request may fail without a fault")
        orders, reads = tally.rate("order", MEASURE_S), tally.rate("read", MEASURE_S)
        self.rates[replicas] = (orders, reads)
        print(f"\ncluster rate: {replicas} process(es) of every role, {THREADS} closed-loop clients, {MEASURE_S:.0f}s: "
              f"{orders:.1f} orders/s (p50 {tally.latency_ms('order', 0.5):.1f} ms, p99 "
              f"{tally.latency_ms('order', 0.99):.1f} ms) and as many product reads/s (p50 "
              f"{tally.latency_ms('read', 0.5):.1f} ms, p99 {tally.latency_ms('read', 0.99):.1f} ms); load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
        self.assertTrue(self.ledger.wait_saga_done(), "orders left pending")  # the next step starts from a quiet platform
        return tally

    def counters(self) -> dict[str, list[float]]:
        """Per role, each replica's counter of the work it did."""
        p = self.platform
        out = {"gateway": [metric_total(mp, "moonport_http_requests_total") for mp in p.replicas("gateway")]}
        for role in ("user", "product", "order"):
            out[role] = [metric_total(mp, "moonport_nats_requests_total") for mp in p.replicas(role)]
        for role in ("payment", "notification"):
            out[role] = [metric_total(mp, "moonport_events_consumed_total", outcome="handled")
                         for mp in p.replicas(role)]
        return out

    # ---- the steps -------------------------------------------------------------------------------------

    def test_1_one_replica_of_every_role(self):
        self.measure(1)

    def test_2_two_replicas_share_the_work(self):
        self.platform.start_wave()
        before = self.counters()
        self.measure(2)
        after = self.counters()
        spread = {role: [round(a - b) for a, b in zip(after[role], before[role])] for role in after}
        print(f"cluster spread (work per replica while both ran): {spread}", flush=True)
        for role, deltas in spread.items():
            self.assertEqual(len(deltas), 2, role)
            self.assertTrue(all(d > 0 for d in deltas), f"{role}: a replica did no work: {deltas}")
        if 1 in self.rates:
            print(f"cluster rate: two processes of every role beside one: x{self.rates[2][0] / self.rates[1][0]:.2f}",
                  flush=True)

    def test_3_nats_node_killed_under_load(self):
        st = context.STACK
        leader = events_leader(st.nats_http_ports[0])  # "n2"
        node = int(leader[1:]) - 1
        port = st.nats_http_ports[node]
        clients_there = sorted(c.get("authorized_user", "?") for c in monitor(port, "/connz?auth=true")["connections"])
        self.assertGreater(len(clients_there), 0, "no process was connected to the node about to be killed")
        times = {}

        def fault(t0: float) -> None:
            time.sleep(max(0.0, t0 + KILL_AFTER_S - time.monotonic()))
            times["kill"] = time.monotonic()
            st.kill_nats_node(node)
            time.sleep(DOWN_FOR_S)
            times["restart"] = time.monotonic()
            st.start_nats_node(node)
            st.wait_nats_cluster(60)
            times["formed"] = time.monotonic()

        tally = Load(self.platform.url, self.tokens, self.products, pause=0.02).run(KILL_LOAD_S, during=fault)
        self.tallies.append(tally)
        self.assertEqual(tally.problems, [])
        kill = times["kill"]
        failed = [a for a in tally.answers if a.failed]
        late = [a for a in failed if not (a.start <= kill + IN_FLIGHT_SLACK_S and a.end >= kill)]
        print(f"\ncluster kill: node {leader} (EVENTS leader; connected there: {' '.join(clients_there)}) killed after "
              f"{KILL_AFTER_S:.0f}s of load; {len(tally.answers)} requests, {len(failed)} failed "
              f"({[(a.what, a.status, round(a.start - kill, 3), round(a.end - kill, 3)) for a in failed]}); "
              f"the cluster formed again {times['formed'] - times['restart']:.1f}s after the restart", flush=True)
        self.assertEqual(late, [], "requests that were not in flight at the kill failed")
        self.assertLessEqual(len(failed), THREADS, "more failures than requests can be in flight")
        # the restarted node holds its copy of EVENTS again, caught up
        wait_for("EVENTS with 3 current copies", lambda: events_copies_current(st.nats_http_ports), 30, every=0.5)

    def test_4_ledger_holds(self):
        keys = {k: ids for t in self.tallies for k, ids in t.orders.items()}
        self.assertGreater(len(keys), 0)
        self.assertEqual(self.ledger.check(keys), [])
        dups = sum(metric_total(mp, "moonport_events_consumed_total", outcome="duplicate")
                   for role in ("payment", "notification", "order") for mp in self.platform.replicas(role))
        print(f"\ncluster ledger: {self.ledger.summary['orders']} orders, each confirmed, paid, notified and delivered "
              f"once; {dups:.0f} redelivered events recognised as handled", flush=True)

    def test_5_a_revoked_session_is_refused_by_every_gateway_within_a_second(self):
        c = Client(self.platform.url)
        gateways = self.platform.replicas("gateway")
        self.assertEqual(len(gateways), 2)
        acct, keep = new_user(c)
        doomed = login(c, acct["email"])
        sid = next(s["id"] for s in c.get("/v1/auth/sessions", token=doomed["access_token"]).json["items"]
                   if s["id"] != self._sid(keep))

        def refusals():
            return [metric_total(g, "moonport_http_requests_total", status="401") for g in gateways]

        for _ in range(20):  # both gateways accept it first (each request is a new connection)
            self.assertEqual(c.get("/v1/auth/sessions", token=doomed["access_token"]).status, 200)
        self.assertEqual(c.delete(f"/v1/auth/sessions/{sid}", token=keep["access_token"]).status, 204)
        revoked_at = time.monotonic()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - revoked_at)))
        before = refusals()
        statuses = [c.get("/v1/auth/sessions", token=doomed["access_token"]).status for _ in range(40)]
        self.assertEqual(set(statuses), {401}, "a gateway still took the revoked session a second later")
        refused = [a - b for a, b in zip(refusals(), before)]
        print(f"\ncluster revocation: 40 of 40 refused 1 s after the revoke, by gateway: {refused}", flush=True)
        self.assertTrue(all(n > 0 for n in refused), f"the requests did not reach both gateways: {refused}")
        self.assertEqual(c.get("/v1/auth/sessions", token=keep["access_token"]).status, 200)

    @staticmethod
    def _sid(tokens: dict) -> str:
        import base64, json
        payload = tokens["access_token"].split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


if __name__ == "__main__":
    unittest.main()
