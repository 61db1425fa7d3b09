"""The saga survives what production does to it, black-box:

  * nats-server stopped for 10 s in the middle of a stream of orders, then
    started again: no order, payment or notification is lost, none doubled;
  * the payment consumer killed mid-stream (SIGKILL, like a crashed pod) and
    started again: every order is charged and confirmed exactly once.

"Lost" and "doubled" are checked where they would show: one order per
Idempotency-Key, one payment row and one payment.succeeded event per order,
one confirmation notification per order (in the database and delivered).

Needs the Product service (issue 4), as test_orders.py does (catalog.py).
"""
from __future__ import annotations

import signal, threading, time, unittest

import catalog
import context
from catalog import Catalog, FakeProduct
from helpers import client, new_user
from httpc import Client
from isolated import Isolated, roles_except
from order_helpers import place_until_answered, wait_for, wait_status


def one_row_each(psql, ids: list[str], query: str) -> dict[str, int]:
    """Runs `query` (grouped counts, "id|count" rows) and returns the counts for `ids` (0 when missing)."""
    rows = dict(line.split("|") for line in psql(query).split())
    return {i: int(rows.get(i, 0)) for i in ids}


class NatsOutageTest(unittest.TestCase):
    ORDERS = 24

    def test_nats_down_for_10s_mid_stream_loses_and_doubles_nothing(self):
        c = client()
        products = Catalog()
        mug = products.add("Moon mug", 1250, 1000)
        acct, tokens = new_user(c)
        token, user = tokens["access_token"], acct["user_id"]
        order_ids: list[str] = []
        outage = threading.Thread(target=self.outage)

        # a steady stream of orders; the outage starts after the fifth and lasts 10 s
        for n in range(self.ORDERS):
            if n == 5:
                outage.start()
            r = place_until_answered(c, token, [(mug, 1)], "tok_ok", give_up_after=60)
            self.assertEqual(r.status, 201, r.body)
            order_ids.append(r.json["id"])
            time.sleep(0.4)
        outage.join()
        self.assertEqual(self.outage_error, None)
        self.assertEqual(len(set(order_ids)), self.ORDERS)

        for oid in order_ids:
            wait_status(c, token, oid, "confirmed", timeout=60)
        psql = context.STACK.psql
        ids = "','".join(order_ids)
        self.assertEqual(int(psql(f"SELECT count(*) FROM \"order\".orders WHERE user_id = '{user}'")), self.ORDERS)
        self.assertEqual(one_row_each(psql, order_ids, f"SELECT order_id, count(*) FROM payment.payments "
                                      f"WHERE order_id IN ('{ids}') AND status = 'succeeded' GROUP BY 1"),
                         {i: 1 for i in order_ids})
        self.assertEqual(one_row_each(psql, order_ids, "SELECT data->>'order_id', count(*) FROM payment.outbox "
                                      f"WHERE type = 'payment.succeeded' AND data->>'order_id' IN ('{ids}') GROUP BY 1"),
                         {i: 1 for i in order_ids})
        self.assertEqual(one_row_each(psql, order_ids, "SELECT data->>'order_id', count(*) FROM "
                                      "notification.notifications WHERE template = 'order_confirmed' AND "
                                      f"data->>'order_id' IN ('{ids}') GROUP BY 1"),
                         {i: 1 for i in order_ids})
        notes = wait_for("every confirmation is delivered", lambda: (
            lambda got: got if len(got) >= self.ORDERS else None)(
                [n for n in context.MOONPORT.notifications() if n["user_id"] == user]), timeout=60)
        self.assertEqual(sorted(n["data"]["order_id"] for n in notes), sorted(order_ids))
        self.assertEqual(products.stock(mug), 1000 - self.ORDERS)

    outage_error = None

    def outage(self):
        try:
            context.STACK.stop_nats()
            time.sleep(10)
        except Exception as e:  # reported by the test thread
            self.outage_error = e
        finally:
            context.STACK.start_nats()


class PaymentConsumerRestartTest(unittest.TestCase):
    """On a platform of its own, so that the payment role of the shared moonport cannot take the events."""

    ORDERS = 12

    def setUp(self):
        self.iso = Isolated().start()
        self.fake = FakeProduct(self.iso.nats_url) if catalog.FAKE else None
        # the payment role in a process of its own; a short ack wait so a crashed consumer's events come back soon
        self.payment_config = "payment:\n  ack_wait: 3s\n  consumer_workers: 4\n"
        self.rest = self.iso.moonport(roles=roles_except("payment")).start()
        self.payments = self.iso.moonport(roles="payment", extra_config=self.payment_config).start()

    def tearDown(self):
        if self.fake:
            self.fake.close()
        self.iso.stop()

    def test_payment_consumer_killed_mid_stream_charges_every_order_once(self):
        c = Client(self.rest.url)
        products = Catalog(self.rest, self.fake)
        mug = products.add("Moon mug", 1250, 100)
        acct, tokens = new_user(c)
        token = tokens["access_token"]
        # tok_slow: each charge takes 2 s, so the kill lands while charges are in flight
        order_ids = [place_until_answered(c, token, [(mug, 1)], "tok_slow").json["id"] for _ in range(self.ORDERS)]
        wait_for("a first order is confirmed", lambda: self.count("status = 'succeeded'") >= 1, timeout=30)
        self.payments.proc.send_signal(signal.SIGKILL)
        self.payments.proc.wait()
        done_before_kill = self.count("status = 'succeeded'")
        self.payments = self.iso.moonport(roles="payment", extra_config=self.payment_config).start()

        for oid in order_ids:
            wait_status(c, token, oid, "confirmed", timeout=90)
        ids = "','".join(order_ids)
        self.assertEqual(one_row_each(self.iso.psql, order_ids, "SELECT order_id, count(*) FROM payment.payments "
                                      f"WHERE order_id IN ('{ids}') AND status = 'succeeded' GROUP BY 1"),
                         {i: 1 for i in order_ids})
        self.assertEqual(one_row_each(self.iso.psql, order_ids, "SELECT data->>'order_id', count(*) FROM "
                                      f"payment.outbox WHERE type = 'payment.succeeded' AND data->>'order_id' IN "
                                      f"('{ids}') GROUP BY 1"),
                         {i: 1 for i in order_ids})
        self.assertEqual(one_row_each(self.iso.psql, order_ids, "SELECT data->>'order_id', count(*) FROM "
                                      "notification.notifications WHERE template = 'order_confirmed' AND "
                                      f"data->>'order_id' IN ('{ids}') GROUP BY 1"),
                         {i: 1 for i in order_ids})
        # the kill interrupted the stream: orders were left for the restarted consumer
        self.assertLess(done_before_kill, self.ORDERS, "the kill came too late to test anything")

    def count(self, where: str) -> int:
        return int(self.iso.psql(f"SELECT count(*) FROM payment.payments WHERE {where}") or 0)


if __name__ == "__main__":
    unittest.main()
