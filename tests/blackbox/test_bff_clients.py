"""The shipped web and mobile BFFs (scripts/lua/web, scripts/lua/mobile),
black-box through the gateway against the real Auth, User, Product, Order,
Payment and Notification services: what each app's screens really get."""
from __future__ import annotations

import gzip, json, unittest, uuid

import context
from catalog import Catalog
from helpers import client, new_user
from order_helpers import wait_for, wait_status


class WebAndMobileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = client()
        cls.catalog = Catalog()
        cls.lamp = cls.catalog.add("Desk lamp", 2500, stock=50)
        cls.mug = cls.catalog.add("Mug", 900, stock=50)
        cls.acct, tokens = new_user(cls.c)
        cls.t = tokens["access_token"]

    def checkout(self, token: str, key: str | None, items=None):
        headers = {"Idempotency-Key": key} if key else {}
        body = {"items": items or [{"product_id": self.lamp, "quantity": 1}, {"product_id": self.mug, "quantity": 2}],
                "payment_token": "tok_ok"}
        return self.c.post("/bff/web/checkout", body, token=token, headers=headers)

    def test_web_checkout_is_idempotent_and_the_order_page_names_the_products(self):
        self.assertEqual(self.checkout(self.t, None).status, 400)
        key = str(uuid.uuid4())
        first = self.checkout(self.t, key)
        self.assertEqual(first.status, 201, first.body)
        again = self.checkout(self.t, key)
        self.assertEqual(again.status, 201, again.body)
        self.assertEqual(again.json["id"], first.json["id"], "a retried checkout must not order twice")
        self.assertIsNone(first.header("idempotent-replayed"))
        self.assertEqual(again.header("idempotent-replayed"), "true")  # as the REST route says it (CONVENTIONS.md)
        self.assertEqual(first.json["total"]["amount"], 2500 + 2 * 900)

        wait_status(self.c, self.t, first.json["id"], "confirmed")
        page = self.c.get(f"/bff/web/orders/{first.json['id']}", token=self.t)
        self.assertEqual(page.status, 200, page.body)
        self.assertEqual(page.json["status"], "confirmed")
        names = {line["product_id"]: (line["name"], line["quantity"]) for line in page.json["items"]}
        self.assertEqual(names, {self.lamp: ("Desk lamp", 1), self.mug: ("Mug", 2)})

        # someone else's order is not found; a malformed id is a 400 that never reaches a service
        _, other = new_user(self.c)
        self.assertEqual(self.c.get(f"/bff/web/orders/{first.json['id']}", token=other["access_token"]).status, 404)
        self.assertEqual(self.c.get("/bff/web/orders/not-a-uuid", token=self.t).status, 400)

    def test_checkout_refusals_keep_the_services_pointers(self):
        r = self.checkout(self.t, str(uuid.uuid4()), items=[{"product_id": self.lamp, "quantity": 0}])
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.header("content-type"), "application/problem+json")
        self.assertIn("/items/0/quantity", [e["pointer"] for e in r.json.get("errors", [])])

    def test_home_on_web_and_mobile_shows_the_same_user_in_two_shapes(self):
        acct, tokens = new_user(self.c)
        t = tokens["access_token"]
        r = self.checkout(t, str(uuid.uuid4()))
        self.assertEqual(r.status, 201, r.body)
        wait_status(self.c, t, r.json["id"], "confirmed")
        # the confirmation notification arrives asynchronously (events.order.confirmed -> notification)
        web = wait_for("the web home counts the order's notification",
                       lambda: (lambda h: h if h.status == 200 and h.json["unread_notifications"] >= 1 else None)(
                           self.c.get("/bff/web/home", token=t)))
        self.assertEqual(web.json["user"]["id"], acct["user_id"])
        self.assertEqual(web.json["user"]["name"], "Test User")
        self.assertEqual([o["id"] for o in web.json["recent_orders"]], [r.json["id"]])
        self.assertEqual(web.json["recent_orders"][0]["item_count"], 2)
        self.assertNotIn("degraded", web.json)

        mobile = self.c.get("/bff/mobile/home", token=t)
        self.assertEqual(mobile.status, 200, mobile.body)
        self.assertEqual(mobile.json["name"], "Test User")
        self.assertEqual(mobile.json["recent_orders"], 1)  # a count, not the list
        self.assertGreaterEqual(mobile.json["unread"], 1)
        self.assertLess(len(json.dumps(mobile.json)), len(json.dumps(web.json)))
        # this stack features nothing, so the mobile home is tiny: under gateway.gzip.min_size it goes as it is
        self.assertLess(len(mobile.body), 256)
        plain = self.c.get("/bff/mobile/home", token=t, headers={"Accept-Encoding": "gzip"})
        self.assertIsNone(plain.header("content-encoding"))
        self.assertEqual(plain.json, mobile.json)
        # the web home is over it: a client that accepts gzip gets it compressed
        self.assertGreater(len(web.body), 256)
        zipped = self.c.get("/bff/web/home", token=t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(zipped.header("content-encoding"), "gzip")
        self.assertEqual(json.loads(gzip.decompress(zipped.body))["user"], web.json["user"])

    def test_home_needs_a_caller(self):
        for app in ("web", "mobile"):
            r = self.c.get(f"/bff/{app}/home")
            self.assertEqual(r.status, 401, (app, r.body))
            self.assertEqual(r.header("content-type"), "application/problem+json")

    def test_product_pages_are_public_and_smaller_on_mobile(self):
        web = self.c.get(f"/bff/web/products/{self.lamp}")
        self.assertEqual(web.status, 200, web.body)
        self.assertEqual(web.json["product"]["name"], "Desk lamp")
        self.assertNotIn(self.lamp, [p["id"] for p in web.json["related"]])
        self.assertIn(self.mug, [p["id"] for p in web.json["related"]])  # same category, "test"
        mobile = self.c.get(f"/bff/mobile/products/{self.lamp}")
        self.assertEqual(mobile.status, 200, mobile.body)
        self.assertEqual((mobile.json["name"], mobile.json["in_stock"]), ("Desk lamp", True))
        self.assertGreaterEqual(mobile.json["related"], 1)
        self.assertLess(len(mobile.body), len(web.body))
        self.assertEqual(self.c.get(f"/bff/web/products/{uuid.uuid4()}").status, 404)

    def test_search_validates_its_query(self):
        r = self.c.get("/bff/web/search")
        self.assertEqual(r.status, 400)
        self.assertEqual([e["pointer"] for e in r.json["errors"]], ["/q"])
        r = self.c.get("/bff/web/search?q=" + "x" * 101)
        self.assertEqual(r.status, 400)
        r = self.c.get("/bff/web/search?q=lamp")
        self.assertEqual(r.status, 200, r.body)
        self.assertIn("items", r.json)


if __name__ == "__main__":
    unittest.main()
