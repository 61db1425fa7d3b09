"""Rate limits, black-box against real gateways and a real Redis: two
gateway processes share one limit through Redis, every response of a
limited route carries the RateLimit-* headers and a refusal is 429 with
Retry-After, and with Redis killed mid-test the gateways keep serving on
local buckets (and say so in logs and metrics) until Redis is back."""
from __future__ import annotations

import os, threading, time, unittest

import context
from contract import Contract
from helpers import wait_for
from httpc import Client

# a cheap route answered by the shared moonport's Auth
ROUTES = [({"method": "GET", "path": "/.well-known/jwks.json", "subject": "auth.v1.jwks", "auth": "none",
            "group": "tight"}, None)]




class SharedLimitTest(unittest.TestCase):
    RATE, BURST = 2.0, 6

    @classmethod
    def setUpClass(cls):
        cls.contract = Contract(ROUTES)
        # the same key prefix: two replicas of one deployment
        # a generous Redis timeout: this test is about sharing; a busy machine must not push it onto local buckets
        env = {"MOONPORT_GATEWAY_RATE_LIMIT_KEY_PREFIX": f"mp:rl:shared-{os.getpid()}-{time.time_ns()}:",
               "MOONPORT_GATEWAY_RATE_LIMIT_REDIS_TIMEOUT": "2s"}
        limits = {"tight": {"rate": f"{cls.RATE:g}/s", "burst": cls.BURST, "key": "ip"}}
        cls.gws = [context.new_moonport(roles="gateway", routes_file=cls.contract.routes_file,
                                        specs_dir=cls.contract.specs_dir, rate_limits=limits, env=env).start()
                   for _ in range(2)]
        for gw in cls.gws:
            wait_for(lambda: gw.metric("moonport_ratelimit_backend", backend="redis") == 1, 10,
                     "the gateway decides rate limits in redis")

    @classmethod
    def tearDownClass(cls):
        for gw in cls.gws:
            gw.stop()
        cls.contract.close()

    def hammer(self, seconds: float) -> tuple[int, int, list, float]:
        """Requests from two threads per gateway for `seconds`: (allowed, refused, 429 responses, elapsed)."""
        counts = {"ok": 0, "limited": 0, "other": []}
        limited = []
        lock = threading.Lock()
        t0 = time.monotonic()

        def worker(gw):
            c = Client(gw.url)
            while time.monotonic() - t0 < seconds:
                r = c.get("/.well-known/jwks.json")
                with lock:
                    if r.status == 200:
                        counts["ok"] += 1
                    elif r.status == 429:
                        counts["limited"] += 1
                        limited.append(r)
                    else:
                        counts["other"].append(r.status)
                time.sleep(0.01)

        threads = [threading.Thread(target=worker, args=(gw,)) for gw in self.gws for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(counts["other"], [])
        return counts["ok"], counts["limited"], limited, time.monotonic() - t0

    def test_two_gateways_share_one_limit(self):
        allowed, refused, limited, elapsed = self.hammer(2.0)
        # one bucket for both: the burst plus what refilled while we hammered (one token of slack for the edges)
        self.assertLessEqual(allowed, self.BURST + self.RATE * elapsed + 1, (allowed, refused, elapsed))
        self.assertGreaterEqual(allowed, self.BURST)
        self.assertGreater(refused, 0)
        # each gateway refused some: neither had a bucket of its own
        for gw in self.gws:
            self.assertGreater(gw.metric("moonport_ratelimit_decisions_total", group="tight", result="limited") or 0, 0)
        r = limited[-1]
        self.assertEqual(r.header("content-type"), "application/problem+json")
        self.assertGreaterEqual(int(r.header("retry-after")), 1)
        self.assertEqual(r.header("ratelimit-limit"), str(self.BURST))
        self.assertEqual(r.header("ratelimit-remaining"), "0")
        self.assertGreaterEqual(int(r.header("ratelimit-reset")), 1)

    def test_every_response_of_a_limited_route_carries_the_headers(self):
        time.sleep(self.BURST / self.RATE + 0.5)  # let the bucket refill
        r = Client(self.gws[0].url).get("/.well-known/jwks.json")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("ratelimit-limit"), str(self.BURST))
        self.assertLess(int(r.header("ratelimit-remaining")), self.BURST)
        self.assertIsNotNone(r.header("ratelimit-reset"))
        self.assertIsNone(r.header("retry-after"))


class LeasedSharedLimitTest(SharedLimitTest):
    """The same with a limit loose enough for leases (docs/gateway.md): each loop thread takes its tokens from Redis
    in batches of up to min(rate x 100 ms, burst / 10) = 5. Tokens are taken out of the shared bucket before they are
    spent, so the two gateways together still never let more through than the one bucket gives out, and a 429 carries
    the same headers."""
    RATE, BURST = 50.0, 100


class RedisOutageTest(unittest.TestCase):
    def test_redis_killed_mid_test_the_gateway_keeps_serving_and_recovers(self):
        contract = Contract(ROUTES)
        gw = context.new_moonport(roles="gateway", routes_file=contract.routes_file, specs_dir=contract.specs_dir,
                                  rate_limits={"tight": {"rate": "1000/s", "burst": 1000}}).start()
        c = Client(gw.url)
        try:
            wait_for(lambda: gw.metric("moonport_ratelimit_backend", backend="redis") == 1, 10, "redis in use")
            self.assertEqual(c.get("/.well-known/jwks.json").status, 200)
            context.STACK.stop_redis()
            try:
                # never a 5xx because of Redis: every request is answered, rate-limited locally
                for _ in range(30):
                    r = c.get("/.well-known/jwks.json")
                    self.assertEqual(r.status, 200, r.body)
                    self.assertIsNotNone(r.header("ratelimit-remaining"))
                wait_for(lambda: gw.metric("moonport_ratelimit_backend", backend="local") == 1, 10,
                         "the backend gauge shows the local fallback")
                self.assertEqual(gw.metric("moonport_ratelimit_backend", backend="redis"), 0)
                msgs = [l["msg"] for l in gw.log_lines()]
                self.assertIn("rate limiting falls back to local buckets: redis is unavailable or slow", msgs)
            finally:
                context.STACK.start_redis()
            wait_for(lambda: gw.metric("moonport_ratelimit_backend", backend="redis") == 1, 15,
                     "back on redis after it restarted")
            self.assertEqual(c.get("/.well-known/jwks.json").status, 200)
            msgs = [l["msg"] for l in gw.log_lines()]
            self.assertEqual(msgs.count("rate limits are shared through redis"), 2)  # at start and after the outage
        finally:
            self.assertEqual(gw.stop(), 0)
            contract.close()


class BffLimitTest(unittest.TestCase):
    """Every BFF request takes a token from the group `bff`, by caller or (anonymous) by address."""

    def test_bff_requests_are_limited_with_the_same_answers_as_rest(self):
        import shutil, tempfile
        scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "lua", "engine"), scripts, dirs_exist_ok=True)
        env = {"MOONPORT_GATEWAY_RATE_LIMIT_KEY_PREFIX": f"mp:rl:bff-{os.getpid()}-{time.time_ns()}:"}
        gw = context.new_moonport(roles="gateway", extra_config=f"bff:\n  scripts_dir: {scripts}\n",
                                  rate_limits={"bff": {"rate": "1/m", "burst": 3, "key": "ip"}}, env=env).start()
        try:
            c = Client(gw.url)
            answers = [c.get("/bff/lab/version") for _ in range(5)]
            self.assertEqual([r.status for r in answers], [200, 200, 200, 429, 429])
            self.assertEqual(answers[0].json, {"version": "v1"})
            self.assertEqual(answers[0].header("ratelimit-limit"), "3")
            self.assertEqual(answers[2].header("ratelimit-remaining"), "0")
            refused = answers[3]
            self.assertEqual(refused.header("content-type"), "application/problem+json")
            self.assertEqual(refused.json["status"], 429)
            self.assertGreaterEqual(int(refused.header("retry-after")), 1)
            self.assertGreaterEqual(gw.metric("moonport_gateway_rejected_total", route="/bff/",
                                              reason="rate_limited"), 2)
        finally:
            gw.stop()
            shutil.rmtree(scripts, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
