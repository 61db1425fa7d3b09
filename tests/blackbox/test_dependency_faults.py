"""Faults of a dependency that the process must see and report sensibly
(issue 11), each on a platform of its own so that the fault disturbs no other
test:

  * nats-server frozen (SIGSTOP): the TCP connection stays up, so only a real
    round trip notices; /readyz must say 503 with the nats check down, answer
    every poll promptly, and come back to 200 after SIGCONT.
  * Redis stopped while stock changes: every change still succeeds, and the
    failed cache invalidations are logged now and then, not once each.
"""
from __future__ import annotations

import json, os, shutil, signal, tempfile, time, unittest, urllib.error, urllib.request

import context
import stack as stacklib
from catalog import Catalog
from isolated import Isolated

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def readyz(mp) -> tuple[int, dict | None, float]:
    """(status, body, seconds taken) of one /readyz poll; status 0 when it did not answer within 5 s."""
    t0 = time.monotonic()
    try:
        with _opener.open(mp.admin_url + "/readyz", timeout=5) as r:
            status, body = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read() or b"null")
    except Exception:
        status, body = 0, None
    return status, body, time.monotonic() - t0


class NatsFrozenReadinessTest(unittest.TestCase):
    def setUp(self):
        self.iso = Isolated().start()
        self.mp = self.iso.moonport(roles="user").start()

    def tearDown(self):
        pid = self.iso.nats._pid("nats")
        if pid:
            os.kill(pid, signal.SIGCONT)  # never leave a stopped server behind, whatever failed
        self.iso.stop()

    def test_sigstop_of_nats_makes_ready_503_within_3s_then_200_after_sigcont(self):
        status, body, _ = readyz(self.mp)
        self.assertEqual((status, body["checks"]["nats"]), (200, "ok"), body)
        pid = self.iso.nats._pid("nats")
        self.assertIsNotNone(pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen_at, polls = time.monotonic(), []
            while time.monotonic() - frozen_at < 3:
                polls.append(readyz(self.mp))
                if polls[-1][0] == 503:
                    break
                time.sleep(0.1)
            status, body, _ = polls[-1]
            self.assertEqual(status, 503, f"still {status} {time.monotonic() - frozen_at:.1f} s after SIGSTOP: {body}")
            self.assertTrue(body["checks"]["nats"].startswith("down"), body)
            # every poll answered promptly: the check is bounded, it does not hang on the frozen server
            for _ in range(3):
                polls.append(readyz(self.mp))
                self.assertEqual(polls[-1][0], 503, polls[-1])
            self.assertLess(max(p[2] for p in polls), 2.0, [(p[0], round(p[2], 2)) for p in polls])
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and readyz(self.mp)[0] != 200:
            time.sleep(0.2)
        status, body, _ = readyz(self.mp)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["checks"]["nats"], "ok")


class RedisDownStockLogTest(unittest.TestCase):
    CHANGES = 20

    def setUp(self):
        self.iso = Isolated().start()
        # a Redis of its own, so that stopping it disturbs no other test
        self.redis_root = tempfile.mkdtemp(prefix="moonport-redis-")
        os.chmod(self.redis_root, 0o755)
        shared = context.STACK
        self.redis = stacklib.Stack(self.redis_root, stacklib.free_port(), shared.pg_port, stacklib.free_port(),
                                    persistent=False)
        self.redis.start_redis()
        url = f"redis://{stacklib.HOST}:{self.redis.redis_port}"
        self.mp = self.iso.moonport(roles="gateway,auth,user,product", env={"MOONPORT_REDIS_URL": url}).start()

    def tearDown(self):
        self.iso.stop()
        self.redis.stop_redis()
        shutil.rmtree(self.redis_root, ignore_errors=True)

    def redis_lines(self) -> list[dict]:
        """The warn and error lines about Redis or the cache in it."""
        return [ln for ln in self.mp.log_lines() if ln.get("level") in ("warn", "error")
                and ("redis" in json.dumps(ln).lower() or "cache" in ln.get("msg", ""))]

    def test_stock_changes_with_redis_down_log_a_bounded_number_of_lines(self):
        products = Catalog(self.mp)
        pid = products.add("Moon mug", 1250, 100)
        path = f"/v1/products/{pid}"
        r = products.c.get(path)
        self.assertEqual(r.status, 200, r.body)
        etag = r.header("etag")
        before = len(self.redis_lines())
        self.redis.stop_redis()
        for i in range(self.CHANGES):
            r = products.c.patch(path, {"stock": 50 + i}, token=products.token, headers={"If-Match": etag})
            self.assertEqual(r.status, 200, r.body)
            etag = r.header("etag")
        self.assertEqual(products.c.get(path).json["stock"], 50 + self.CHANGES - 1)
        time.sleep(0.5)  # lines written as the last answers left
        lines = self.redis_lines()[before:]
        failed = self.mp.metric("moonport_product_cache_total", result="invalidate_failed")
        self.assertGreaterEqual(failed or 0, self.CHANGES, "every failed invalidation is still counted")
        # the first failure of each kind is logged, the rest only now and then (at most one per 10 s each)
        self.assertLessEqual(len(lines), 4, "\n".join(json.dumps(ln) for ln in lines))


if __name__ == "__main__":
    unittest.main()
