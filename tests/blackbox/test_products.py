"""The product catalogue through the gateway, black-box: the seeded
catalogue, admin-only writes with validation pointers, ETags (304, 428,
412), reads that never show a stale product after a write answered (Redis
read-through) and keep working without Redis, keyset pagination without
repeats or gaps while products are added, and search that ranks name over
tags over description and forgives a typo."""
from __future__ import annotations

import threading, time, unittest, urllib.parse, uuid

import context
from helpers import client, new_admin, new_user
from httpc import Client

_admin_token = None


def admin_token(c) -> str:
    global _admin_token
    if _admin_token is None:
        _admin_token = new_admin(c)[1]["access_token"]
    return _admin_token


def product_body(**kw) -> dict:
    body = {"sku": f"T-{uuid.uuid4().hex[:16]}", "name": "Plain Test Product", "price": {"amount": 1999,
            "currency": "EUR"}, "stock": 5, "category": "tests"}
    body.update(kw)
    return body


def create(c, **kw) -> dict:
    r = c.post("/v1/products", product_body(**kw), token=admin_token(c))
    assert r.status == 201, (r.status, r.body)
    return r.json


def all_pages(c, query: str, limit: int) -> list:
    items, cursor = [], None
    while True:
        r = c.get(f"/v1/products?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, (r.status, r.body)
        items += r.json["items"]
        cursor = r.json["next_cursor"]
        if cursor is None:
            return items


class SeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = context.MOONPORT.run("seed", timeout=300)
        assert r.returncode == 0, r.stderr
        cls.first = r.stdout

    def setUp(self):
        self.c = client()

    def test_catalogue_has_2000_products_in_10_categories(self):
        items = all_pages(self.c, "sort=price_asc", 100)
        seeded = [p for p in items if p["sku"].startswith("MP-")]
        self.assertGreaterEqual(len(seeded), 2000)
        self.assertEqual(len({p["id"] for p in items}), len(items), "a product appeared on two pages")
        self.assertGreaterEqual(len({p["category"] for p in seeded}), 10)
        prices = [p["price"]["amount"] for p in items]
        self.assertEqual(prices, sorted(prices))
        for p in seeded[:50]:
            self.assertEqual(p["price"]["currency"], "EUR")
            self.assertIsInstance(p["price"]["amount"], int)
            uuid.UUID(p["id"])
        featured = all_pages(self.c, "tag=featured", 100)
        self.assertGreater(len(featured), 10)
        self.assertTrue(all("featured" in p["tags"] for p in featured))

    def test_seeding_again_changes_nothing(self):
        before = self.c.get("/v1/products?sort=name&limit=50").json["items"]
        r = context.MOONPORT.run("seed", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(" 0 new, 0 updated", r.stdout)
        after = self.c.get("/v1/products?sort=name&limit=50").json["items"]
        self.assertEqual([(p["id"], p["version"], p["price"]) for p in before],
                         [(p["id"], p["version"], p["price"]) for p in after])

    def test_seed_takes_a_product_count_and_refuses_a_bad_one(self):
        # the first 100 of the same deterministic catalogue: all there already, nothing new or changed
        r = context.MOONPORT.run("seed", "--products", "100", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("seeded 100 products", r.stdout)
        self.assertIn(" 0 new, 0 updated", r.stdout)
        for bad in ("0", "10k", "1000001"):
            r = context.MOONPORT.run("seed", "--products", bad, timeout=60)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--products must be from 1 to 1000000", r.stderr)


class WriteTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_writes_need_the_admin_role(self):
        _, tok = new_user(self.c)
        self.assertEqual(self.c.post("/v1/products", product_body()).status, 401)
        self.assertEqual(self.c.post("/v1/products", product_body(), token=tok["access_token"]).status, 403)
        p = create(self.c)
        r = self.c.patch(f"/v1/products/{p['id']}", {"stock": 1}, token=tok["access_token"],
                         headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 403)
        self.assertEqual(self.c.delete(f"/v1/products/{p['id']}", token=tok["access_token"]).status, 403)

    def test_create_validates_with_pointers_and_answers_location_and_etag(self):
        r = self.c.post("/v1/products", product_body(price={"amount": 5, "currency": "USD", "cents": 1},
                                                     tags=["ok", "Not Ok"], category="Bad Category", bogus=True,
                                                     image_url="http://x.example/a.jpg"),
                        token=admin_token(self.c))
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(sorted(e["pointer"] for e in r.json["errors"]),
                         ["/bogus", "/category", "/image_url", "/price/cents", "/price/currency", "/tags/1"])
        body = product_body(tags=["b", "a", "b"], description="Line one\nline two")
        r = self.c.post("/v1/products", body, token=admin_token(self.c))
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.header("etag"), '"1"')
        self.assertEqual(r.header("location"), f"/v1/products/{r.json['id']}")
        self.assertEqual(r.json["tags"], ["a", "b"])
        self.assertEqual(r.json["price"], {"amount": 1999, "currency": "EUR"})
        r = self.c.post("/v1/products", product_body(sku=body["sku"]), token=admin_token(self.c))
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json["errors"][0]["pointer"], "/sku")

    def test_etags_304_428_412(self):
        p = create(self.c)
        path = f"/v1/products/{p['id']}"
        r = self.c.get(path)
        self.assertEqual((r.status, r.header("etag")), (200, '"1"'))
        r = self.c.get(path, headers={"If-None-Match": '"1"'})
        self.assertEqual((r.status, r.header("etag"), r.body), (304, '"1"', b""))
        tok = admin_token(self.c)
        r = self.c.patch(path, {"stock": 9}, token=tok)
        self.assertEqual(r.status, 428, r.body)
        r = self.c.patch(path, {"stock": 9}, token=tok, headers={"If-Match": '"1"'})
        self.assertEqual((r.status, r.header("etag")), (200, '"2"'))
        r = self.c.patch(path, {"stock": 8}, token=tok, headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 412, r.body)
        self.assertEqual(self.c.get(path).json["stock"], 9)
        self.assertEqual(self.c.get(path, headers={"If-None-Match": '"1"'}).status, 200)

    def test_a_read_after_a_write_never_sees_the_old_product(self):
        p = create(self.c)
        path, tok = f"/v1/products/{p['id']}", admin_token(self.c)
        for i in range(1, 8):
            before = self.c.get(path)  # fills the cache
            self.assertEqual(before.status, 200)
            r = self.c.patch(path, {"price": {"amount": 1000 + i, "currency": "EUR"}, "name": f"Renamed {i}"},
                             token=tok, headers={"If-Match": before.header("etag")})
            self.assertEqual(r.status, 200, r.body)
            after = self.c.get(path)
            self.assertEqual(after.json["price"]["amount"], 1000 + i)
            self.assertEqual(after.json["name"], f"Renamed {i}")
            self.assertEqual(after.header("etag"), r.header("etag"))
        r = self.c.delete(path, token=tok)
        self.assertEqual(r.status, 204)
        self.assertEqual(self.c.get(path).status, 404)

    def test_reads_fall_back_to_postgres_without_redis(self):
        p = create(self.c)
        path = f"/v1/products/{p['id']}"
        self.assertEqual(self.c.get(path).status, 200)
        admin = Client(context.MOONPORT.admin_url)
        context.STACK.stop_redis()
        try:
            r = self.c.get(path)
            self.assertEqual(r.status, 200, r.body)
            r = self.c.patch(path, {"stock": 42}, token=admin_token(self.c), headers={"If-Match": '"1"'})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(self.c.get(path).json["stock"], 42)
        finally:
            context.STACK.start_redis()
        deadline = time.time() + 20
        while time.time() < deadline and admin.get("/readyz").status != 200:
            time.sleep(0.2)
        self.assertEqual(self.c.get(path).json["stock"], 42)
        metrics = admin.get("/metrics").body.decode()
        self.assertRegex(metrics, r'moonport_product_cache_total\{result="unavailable"\} [1-9]')

    def test_bad_ids_and_parameters(self):
        self.assertEqual(self.c.get("/v1/products/not-a-uuid").status, 400)
        self.assertEqual(self.c.get(f"/v1/products/{uuid.uuid4()}").status, 404)
        for q in ("limit=0", "limit=abc", "limit=101", "sort=cheapest", "sort=relevance", "cursor=garbage%21",
                  "category=Not%20A%20Slug", "color=red"):
            r = self.c.get(f"/v1/products?{q}")
            self.assertEqual(r.status, 400, (q, r.body))  # an unknown query parameter is a parameter error
        # a cursor belongs to its listing: same filters, same sort
        cursor = self.c.get("/v1/products?sort=name&limit=1").json["next_cursor"]
        self.assertEqual(self.c.get(f"/v1/products?sort=price_asc&cursor={cursor}").status, 400)
        self.assertEqual(self.c.get(f"/v1/products?sort=name&category=books&cursor={cursor}").status, 400)
        self.assertEqual(self.c.get(f"/v1/products?sort=name&cursor={cursor}").status, 200)


class PaginationTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_no_repeats_or_gaps_while_products_are_added(self):
        for sort in ("newest", "name", "price_asc", "price_desc"):
            category = f"pages-{uuid.uuid4().hex[:10]}"
            original = {create(self.c, category=category, name=f"Item {i:02d}",
                               price={"amount": 100 * (i % 7), "currency": "EUR"})["id"] for i in range(30)}
            stop, added = threading.Event(), []

            def add_more():
                c = client()
                for i in range(25):
                    if stop.is_set():
                        break
                    added.append(create(c, category=category, name=f"Added {i:02d}",
                                        price={"amount": 50 * (i % 9), "currency": "EUR"})["id"])

            writer = threading.Thread(target=add_more)
            writer.start()
            seen, cursor = [], None
            try:
                while True:
                    r = self.c.get(f"/v1/products?category={category}&sort={sort}&limit=4"
                                   + (f"&cursor={cursor}" if cursor else ""))
                    self.assertEqual(r.status, 200, r.body)
                    seen += [p["id"] for p in r.json["items"]]
                    cursor = r.json["next_cursor"]
                    if cursor is None:
                        break
                    time.sleep(0.01)  # let the writer interleave
            finally:
                stop.set()
                writer.join()
            self.assertEqual(len(seen), len(set(seen)), f"{sort}: a product appeared twice")
            self.assertEqual(original - set(seen), set(), f"{sort}: a product that was there all along was skipped")
            self.assertTrue(set(seen) <= original | set(added))


class SearchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = context.MOONPORT.run("seed", timeout=300)
        assert r.returncode == 0, r.stderr

    def setUp(self):
        self.c = client()

    def test_one_typo_still_finds_the_product(self):
        word = "Quasarine" + uuid.uuid4().hex[:4].upper()
        p = create(self.c, name=f"{word} Keyboard", category="computers")
        r = self.c.get("/v1/products?q=keybaord&limit=20")
        self.assertEqual(r.status, 200, r.body)
        self.assertGreater(len(r.json["items"]), 0)
        for item in r.json["items"]:
            self.assertIn("keyboard", item["name"].lower())
        for q in (f"{word.lower()} keybaord", word[:5] + word[6:]):  # a swap in the phrase; a letter dropped
            r = self.c.get(f"/v1/products?q={urllib.parse.quote(q)}&limit=5")
            self.assertEqual(r.status, 200, r.body)
            ids = [i["id"] for i in r.json["items"]]
            self.assertIn(p["id"], ids, q)

    def test_name_ranks_above_tags_above_description(self):
        token = "zorb" + uuid.uuid4().hex[:6]
        in_desc = create(self.c, name="Ordinary Lamp", description=f"Works well with {token} sockets.")
        in_tags = create(self.c, name="Ordinary Chair", tags=[token, "furniture"])
        in_name = create(self.c, name=f"The {token} Kettle")
        ids = [i["id"] for i in self.c.get(f"/v1/products?q={token}").json["items"]]
        self.assertEqual(ids[:3], [in_name["id"], in_tags["id"], in_desc["id"]])

    def test_search_pages_are_stable(self):
        whole = [p["id"] for p in self.c.get("/v1/products?q=wireless&limit=100").json["items"]]
        self.assertGreater(len(whole), 10)
        paged = [p["id"] for p in all_pages(self.c, "q=wireless", 7)][:len(whole)]
        self.assertEqual(paged, whole)

    def test_a_relevance_search_pages_through_its_best_candidates_and_ends(self):
        # relevance ranks a bounded candidate set (services/product/list.c): paging it ends, nothing repeats, and
        # a filter is applied before the candidates are chosen, so a category keeps its own matches
        items = all_pages(self.c, "q=wireless", 9)
        ids = [p["id"] for p in items]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertLessEqual(len(ids), 120)
        category = items[0]["category"]
        inside = all_pages(self.c, f"q=wireless&category={category}", 9)
        self.assertGreater(len(inside), 0)
        self.assertTrue(all(p["category"] == category for p in inside))
        newest = all_pages(self.c, "q=wireless&sort=newest", 50)  # the other sorts still see every match
        self.assertGreaterEqual(len(newest), len(ids))


if __name__ == "__main__":
    unittest.main()
