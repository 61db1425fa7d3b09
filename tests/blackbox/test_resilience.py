"""Resilience policies, black-box: a service stopped under load opens its
circuit within the window (503 with Retry-After at once, the service not
even asked) and the circuit closes once the service is back; a slow service
runs into its deadline (504) while the gateway keeps serving other routes;
a route's in-flight cap sheds load with 503; idempotent reads are retried
once and writes only with an Idempotency-Key.

The services are stand-ins speaking NATS from the test (natsc.Responder),
so a test controls exactly when they answer, slowly, or not at all."""
from __future__ import annotations

import threading, time, unittest, uuid

import context
from contract import Contract
from helpers import wait_for
from httpc import Client
from natsc import Responder


def responder(subject: str, **kw) -> Responder:
    st = context.STACK
    return Responder(st.nats_port, "test", st.nats_password("test"), subject, **kw)




class BreakerTest(unittest.TestCase):
    def test_stopped_service_opens_the_circuit_and_it_closes_when_back(self):
        contract = Contract([({"method": "GET", "path": "/v1/zz/ping", "subject": "payment.v1.zz_ping",
                               "auth": "none", "retry": False}, None)])
        gw = context.new_moonport(roles="gateway", routes_file=contract.routes_file, specs_dir=contract.specs_dir,
                                  gateway_extra="  circuit_breakers:\n    payment: {min_requests: 5, "
                                                "failure_ratio: 0.5, window: 10s, cooldown: 4s, probes: 2}\n").start()
        svc = responder("payment.v1.zz_ping").start()
        c = Client(gw.url)
        try:
            for _ in range(5):
                self.assertEqual(c.get("/v1/zz/ping").status, 200)
            self.assertEqual(gw.metric("moonport_circuit_state", service="payment"), 0)
            svc.stop()  # the service goes away under load
            statuses, details = [], []
            for _ in range(12):
                r = c.get("/v1/zz/ping")
                statuses.append(r.status)
                details.append(r.json["detail"])
            self.assertEqual(set(statuses), {503})
            # five failures in the window (the minimum, all failed) open it; the rest are refused by the breaker
            self.assertEqual(sum("circuit is open" in d for d in details), 7, details)
            self.assertEqual(gw.metric("moonport_circuit_state", service="payment"), 1)
            self.assertEqual(gw.metric("moonport_circuit_transitions_total", service="payment", to="open"), 1)
            r = c.get("/v1/zz/ping")
            self.assertEqual(r.status, 503)
            self.assertIn(r.header("retry-after"), ("1", "2", "3", "4"))
            # back, but the circuit is open: the gateway does not ask it until the cool-down is over
            svc.start()
            served = svc.served
            self.assertEqual(c.get("/v1/zz/ping").status, 503)
            self.assertEqual(svc.served, served)
            # after the cool-down two probes succeed and close it
            wait_for(lambda: c.get("/v1/zz/ping").status == 200, 10, "a probe gets through")
            self.assertEqual(c.get("/v1/zz/ping").status, 200)
            wait_for(lambda: gw.metric("moonport_circuit_state", service="payment") == 0, 5, "the circuit closes")
            self.assertEqual(gw.metric("moonport_circuit_transitions_total", service="payment", to="half_open"), 1)
            self.assertEqual(gw.metric("moonport_circuit_transitions_total", service="payment", to="closed"), 1)
            changes = [(l.get("from"), l.get("to")) for l in gw.log_lines() if l["msg"] == "circuit state changed"]
            self.assertEqual(changes, [("closed", "open"), ("open", "half-open"), ("half-open", "closed")])
        finally:
            svc.stop()
            gw.stop()
            contract.close()


ROUTES = [
    ({"method": "GET", "path": "/v1/zz/slow", "subject": "order.v1.zz_slow", "auth": "none", "timeout": "300ms",
      "retry": False}, None),
    ({"method": "GET", "path": "/v1/zz/fast", "subject": "user.v1.zz_fast", "auth": "none"}, None),
    ({"method": "GET", "path": "/v1/zz/capped", "subject": "user.v1.zz_capped", "auth": "none", "max_inflight": 2,
      "timeout": "5s"}, None),
    ({"method": "GET", "path": "/v1/zz/flaky", "subject": "product.v1.zz_flaky", "auth": "none", "timeout": "3s",
      "attempt_timeout": "400ms"}, None),
    ({"method": "POST", "path": "/v1/zz/flaky", "subject": "product.v1.zz_flaky_write", "auth": "none",
      "timeout": "3s", "attempt_timeout": "400ms", "retry": True}, None),
]


class DeadlineSheddingRetryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.contract = Contract(ROUTES)
        # every request earns a whole retry here, so the test does not depend on which loop thread it lands on
        cls.gw = context.new_moonport(roles="gateway", routes_file=cls.contract.routes_file,
                                      specs_dir=cls.contract.specs_dir,
                                      gateway_extra="  retry: {budget: 1.0, backoff: 20ms}\n").start()
        cls.slow = responder("order.v1.zz_slow", delay=3.0).start()
        cls.fast = responder("user.v1.zz_fast").start()
        cls.capped = responder("user.v1.zz_capped", delay=3.0).start()
        cls.c = Client(cls.gw.url)

    @classmethod
    def tearDownClass(cls):
        for r in (cls.slow, cls.fast, cls.capped):
            r.stop()
        cls.gw.stop()
        cls.contract.close()

    def test_slow_service_hits_the_deadline_while_others_are_served(self):
        result = {}
        t0 = time.time()
        t = threading.Thread(target=lambda: result.update(r=self.c.get("/v1/zz/slow")))
        t.start()
        wait_for(lambda: len(self.slow.requests) > 0, 5, "the slow service got the request")
        # the slow call is in flight: another route answers at once
        self.assertEqual(self.c.get("/v1/zz/fast").status, 200)
        t.join(5)
        r = result["r"]
        self.assertEqual(r.status, 504, r.body)
        self.assertEqual(r.json["status"], 504)
        self.assertLess(time.time() - t0, 2.5)  # it did not wait for the service's 3 s answer
        # the service was told when its answer stops mattering: the route's 300 ms budget
        deadline = int(self.slow.requests[-1][0]["Deadline"])
        self.assertAlmostEqual(deadline / 1000, t0 + 0.3, delta=0.25)
        self.assertEqual(self.c.get("/v1/zz/fast").status, 200)

    def test_in_flight_cap_sheds_with_503(self):
        results = []
        lock = threading.Lock()

        def one():
            r = self.c.get("/v1/zz/capped")
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200, 200, 503, 503, 503])
        shed = [r for r in results if r.status == 503]
        for r in shed:
            self.assertIn("limit of requests in flight", r.json["detail"])
            self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(self.gw.metric("moonport_gateway_rejected_total", route="/v1/zz/capped", reason="shed"), 3)

    def test_reads_are_retried_writes_only_with_an_idempotency_key(self):
        # the first attempt of each call runs past its 400 ms share; a second attempt is answered at once
        svc = responder("product.v1.zz_flaky", delays=[1.0]).start()
        try:
            r = self.c.get("/v1/zz/flaky")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(len(svc.requests), 2)
            # both attempts carry the request's whole deadline, not the attempt's
            self.assertEqual(svc.requests[0][0]["Deadline"], svc.requests[1][0]["Deadline"])
        finally:
            svc.stop()
        self.assertGreaterEqual(self.gw.metric("moonport_gateway_retries_total", route="/v1/zz/flaky",
                                               outcome="sent"), 1)
        writes = responder("product.v1.zz_flaky_write", delays=[4.0, 1.0]).start()
        try:
            # without a key a write gets one attempt with the whole 3 s budget, and is never sent twice
            r = self.c.post("/v1/zz/flaky", {"a": 1})
            self.assertEqual(r.status, 504)
            self.assertEqual(len(writes.requests), 1)
            # with one, its first attempt gets its 400 ms share and a second attempt follows
            key = str(uuid.uuid4())
            r = self.c.post("/v1/zz/flaky", {"a": 2}, headers={"Idempotency-Key": key})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(len(writes.requests), 3)
            self.assertEqual([h.get("idempotency-key") for h, _ in writes.requests[1:]], [key, key])
        finally:
            writes.stop()


if __name__ == "__main__":
    unittest.main()
