"""Faults of a dependency that the process must see and report sensibly
(issue 11), each on a platform of its own so that the fault disturbs no other
test:

  * Redis stopped while stock changes: every change still succeeds, and the
    failed cache invalidations are logged now and then, not once each.
"""
from __future__ import annotations

import json, os, shutil, tempfile, time, unittest

import context
import stack as stacklib
from catalog import Catalog
from isolated import Isolated


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
