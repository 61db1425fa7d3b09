"""The ledger of a load run, read back from the services' own schemas and
the notification replicas' deliveries, for the cluster and chaos tests.

What the clients were answered (Tally.orders: Idempotency-Key -> order ids)
is held against what the platform recorded:
  * no key answered two orders, and the test users have exactly the orders
    the clients were answered (a retry that made a second order shows here);
  * once the saga is through (a bounded poll: no order pending), every order
    is confirmed, or cancelled where the caller allows it;
  * one succeeded payment and one payment.succeeded event per confirmed
    order, none for a cancelled one;
  * one order_confirmed notification per confirmed order, stored and
    delivered once over every notification process that ran;
  * per product, the initial stock minus what confirmed orders hold is the
    stock left.

    ledger = Ledger(psql, user_ids, {product_id: initial_stock}, platform)
    problems = ledger.check(keys, allow_cancelled=True)  # [] when it holds (polled until it does, bounded)

open_shop() makes what a load run needs: products with stock, signed-in
users (their tokens for the load's clients) and the ledger over them.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import context
from catalog import Catalog
from helpers import new_user
from httpc import Client
from replicas import Platform


class Ledger:
    def __init__(self, psql, user_ids: list[str], stock: dict[str, int], platform: Platform):
        self.psql, self.users, self.initial, self.platform = psql, "','".join(user_ids), dict(stock), platform
        self.summary: dict[str, int] = {}  # of the last check: orders, confirmed, cancelled

    def pending(self) -> int:
        return int(self.psql(f"SELECT count(*) FROM \"order\".orders WHERE user_id IN ('{self.users}') "
                             "AND status = 'pending'"))

    def wait_saga_done(self, timeout: float = 90) -> bool:
        """Polls until no order of the test users is pending (the saga has drained); False if `timeout` passed."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def check(self, keys: dict[str, set[str]], allow_cancelled: bool = False, saga_timeout: float = 90,
              settle_timeout: float = 60) -> list[str]:
        """Waits for the saga (bounded), then looks until everything holds or `settle_timeout` passed (the
        notifications and their deliveries follow a confirmation by a moment); returns what does not hold, one line
        each."""
        problems = []
        if not self.wait_saga_done(saga_timeout):
            problems.append(f"{self.pending()} orders still pending after {saga_timeout:.0f}s")
        deadline = time.monotonic() + settle_timeout
        while True:
            found = self._look(keys, allow_cancelled)
            if not found or time.monotonic() > deadline:
                return problems + found
            time.sleep(0.5)

    def _look(self, keys: dict[str, set[str]], allow_cancelled: bool) -> list[str]:
        problems = []
        doubled = {k: sorted(ids) for k, ids in keys.items() if len(ids) != 1}
        if doubled:
            problems.append(f"keys answered with more than one order: {doubled}")
        answered = {i for ids in keys.values() for i in ids}
        rows = dict(line.split("|") for line in self.psql(
            f"SELECT id, status FROM \"order\".orders WHERE user_id IN ('{self.users}')").split())
        if set(rows) != answered:
            problems.append(f"orders the clients were not answered: {sorted(set(rows) - answered)[:5]}; answered but "
                            f"missing: {sorted(answered - set(rows))[:5]}")
        confirmed = sorted(i for i, s in rows.items() if s == "confirmed")
        cancelled = sorted(i for i, s in rows.items() if s == "cancelled")
        self.summary = {"orders": len(rows), "confirmed": len(confirmed), "cancelled": len(cancelled)}
        if cancelled and not allow_cancelled:
            problems.append(f"{len(cancelled)} orders cancelled: {cancelled[:5]}")
        return problems + self._once_each(confirmed, cancelled) + self._delivered_once(confirmed) + \
            self._stock_conserved()

    def _counts(self, sql: str) -> dict[str, int]:
        return {k: int(v) for k, v in (line.split("|") for line in self.psql(sql).split())}

    def _once_each(self, confirmed: list[str], cancelled: list[str]) -> list[str]:
        ids = "','".join(confirmed + cancelled)
        problems = []
        for what, sql in (("succeeded payment", "SELECT order_id, count(*) FROM payment.payments WHERE status = "
                                                f"'succeeded' AND order_id IN ('{ids}') GROUP BY 1"),
                          ("payment.succeeded event", "SELECT data->>'order_id', count(*) FROM payment.outbox WHERE "
                                                      f"type = 'payment.succeeded' AND data->>'order_id' IN ('{ids}') "
                                                      "GROUP BY 1"),
                          ("order_confirmed notification", "SELECT data->>'order_id', count(*) FROM "
                                                           "notification.notifications WHERE template = "
                                                           f"'order_confirmed' AND data->>'order_id' IN ('{ids}') "
                                                           "GROUP BY 1")):
            got = self._counts(sql)
            wrong = {i: got.get(i, 0) for i in confirmed if got.get(i, 0) != 1}
            wrong |= {i: got[i] for i in cancelled if got.get(i, 0)}
            if wrong:
                problems.append(f"orders with other than one {what} (none when cancelled): "
                                f"{dict(list(wrong.items())[:5])}")
        return problems

    def _delivered_once(self, confirmed: list[str]) -> list[str]:
        want = set(confirmed)
        got = [n["data"]["order_id"] for n in self.platform.notifications()
               if n["template"] == "order_confirmed" and n["data"].get("order_id") in want]
        missing, twice = want - set(got), sorted(i for i, n in Counter(got).items() if n > 1)
        return ([f"{len(missing)} confirmations never delivered: {sorted(missing)[:5]}"] if missing else []) + \
            ([f"{len(twice)} confirmations delivered more than once: {twice[:5]}"] if twice else [])

    def _stock_conserved(self) -> list[str]:
        pids = "','".join(self.initial)
        stock = self._counts(f"SELECT id, stock FROM product.products WHERE id IN ('{pids}')")
        held = self._counts("SELECT i.product_id, sum(i.quantity) FROM \"order\".order_items i JOIN \"order\".orders "
                            f"o ON o.id = i.order_id WHERE o.status = 'confirmed' AND i.product_id IN ('{pids}') "
                            "GROUP BY 1")
        want = {p: n - held.get(p, 0) for p, n in self.initial.items()}
        return [] if want == stock else [f"initial stock - confirmed != stock left: expected {want}, found {stock}"]


@dataclass
class Shop:
    products: list[str]
    users: list[tuple[dict, dict]]  # (account, tokens) each
    ledger: Ledger

    @property
    def tokens(self) -> list[str]:
        return [tokens["access_token"] for _, tokens in self.users]


def open_shop(platform: Platform, name: str, products: int, stock: int, users: int) -> Shop:
    """`products` products named after `name` with `stock` each, `users` fresh signed-in users, and their ledger."""
    catalog = Catalog(platform.gateway())
    pids = [catalog.add(f"{name} {i}", 1000 + i, stock) for i in range(products)]
    c = Client(platform.url)
    accounts = [new_user(c) for _ in range(users)]
    return Shop(pids, accounts, Ledger(context.STACK.psql, [acct["user_id"] for acct, _ in accounts],
                                       dict.fromkeys(pids, stock), platform))
