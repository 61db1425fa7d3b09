"""Steady client load for the cluster and chaos tests: a few threads, each a
signed-in user who places an order (one product, quantity 1, a fresh
Idempotency-Key), reads a product and, with `home=True`, opens the web
app's home screen (GET /bff/web/home), over and over.

An order is placed as a careful client places it: a 5xx, a 409 "in
progress" or a broken connection is tried again with the same key until a
definite answer, so every key ends in exactly one order, and every answer is
recorded as the client saw it (what, when it started and ended, status), for
the test to judge the errors and count the rates. An answer a client cannot
go on from (a 4xx other than 409 for an order, no definite answer within
GIVE_UP_AFTER) is a problem: recorded, and the client goes on with the next
round.
"""
from __future__ import annotations

import http.client, random, threading, time, uuid
from dataclasses import dataclass, field

from httpc import Client

GIVE_UP_AFTER = 60.0  # seconds one order key is tried for before the load fails


@dataclass
class Answer:
    """One HTTP request as the client saw it; status 0: the connection broke."""
    what: str  # "order", "read" or "home"
    start: float  # time.monotonic()
    end: float
    status: int
    key: str | None = None
    degraded: bool = False  # a home screen answered with an optional part missing (its `degraded` list)
    detail: str = ""  # of an error answer: its problem's detail and request id, to find it in the logs

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500

    @property
    def outcome(self) -> str:
        """"2xx", "4xx", "5xx" or "error" (the connection broke or timed out: no status)."""
        return "error" if self.status == 0 else f"{self.status // 100}xx"


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    orders: dict[str, set[str]] = field(default_factory=dict)  # Idempotency-Key -> every order id answered for it
    product_of: dict[str, str] = field(default_factory=dict)  # order id -> product id
    problems: list[str] = field(default_factory=list)  # a thread that could not go on

    def rate(self, what: str, seconds: float) -> float:
        return sum(1 for a in self.answers if a.what == what and not a.failed) / seconds

    def outcomes(self) -> dict[str, int]:
        """How many answers of each outcome ("2xx", "3xx", "4xx", "5xx", "error") the clients saw."""
        out = {"2xx": 0, "4xx": 0, "5xx": 0, "error": 0}
        for a in self.answers:
            out[a.outcome] = out.get(a.outcome, 0) + 1
        return out

    def latency_ms(self, what: str, q: float) -> float:
        """The q-quantile (0.5, 0.99) of the answered requests' time in milliseconds, as the client saw it."""
        took = sorted(a.end - a.start for a in self.answers if a.what == what and not a.failed)
        return 1000 * took[min(len(took) - 1, int(q * len(took)))] if took else 0.0


class Load:
    def __init__(self, url: str, tokens: list[str], products: list[str], pause: float = 0.0, home: bool = False):
        """One thread per token; `pause` seconds between one thread's rounds (0: as fast as answers come); `home`:
        each round also opens the web home screen."""
        self.url, self.tokens, self.products, self.pause, self.home = url, tokens, products, pause, home
        self.lock = threading.Lock()

    def run(self, seconds: float = 0.0, during=None, tail: float | None = None) -> Tally:
        """Runs the load for `seconds` (rounds started by then finish); `during(t0)`, when given, runs on this
        thread meanwhile (a fault to inject). With `tail` instead of `seconds`, the load goes on until `tail`
        seconds after `during` returned, however long that took. Returns what the clients saw; what `during`
        raised is raised once the clients have stopped."""
        tally = Tally()
        t0 = time.monotonic()
        self.until = t0 + seconds if tail is None else float("inf")
        threads = [threading.Thread(target=self._client, args=(t, tally), daemon=True) for t in self.tokens]
        for t in threads:
            t.start()
        try:
            if during:
                during(t0)
            if tail is not None:
                self.until = time.monotonic() + tail
        except BaseException:
            self.until = 0.0
            raise
        finally:
            for t in threads:
                t.join()
        return tally

    def _client(self, token: str, tally: Tally) -> None:
        c = Client(self.url)
        try:
            while time.monotonic() < self.until:
                pid = random.choice(self.products)
                self._order(c, token, pid, tally)
                self._ask(c, tally, "read", "GET", f"/v1/products/{pid}")
                if self.home:
                    self._ask(c, tally, "home", "GET", "/bff/web/home", token=token)
                time.sleep(self.pause)
        except Exception as e:  # the test reports it
            with self.lock:
                tally.problems.append(f"{type(e).__name__}: {e}")

    def _order(self, c: Client, token: str, pid: str, tally: Tally) -> None:
        key = str(uuid.uuid4())
        body = {"items": [{"product_id": pid, "quantity": 1}], "payment_token": "tok_ok"}
        give_up = time.monotonic() + GIVE_UP_AFTER
        while True:
            r = self._ask(c, tally, "order", "POST", "/v1/orders", body, token=token,
                          headers={"Idempotency-Key": key}, key=key)
            if r is not None and r.status == 201:
                with self.lock:
                    tally.orders.setdefault(key, set()).add(r.json["id"])
                    tally.product_of[r.json["id"]] = pid
            if r is not None and r.status < 500 and r.status != 409:
                if r.status != 201:
                    self._problem(tally, f"order {key}: {r.status} {r.body[:300]!r}")
                return
            if time.monotonic() > give_up:
                self._problem(tally, f"no definite answer for order key {key} within {GIVE_UP_AFTER:.0f}s")
                return
            time.sleep(0.05)

    def _problem(self, tally: Tally, what: str) -> None:
        with self.lock:
            tally.problems.append(what)

    def _ask(self, c: Client, tally: Tally, what: str, method: str, path: str, body=None, key: str | None = None,
             **kw):
        t0 = time.monotonic()
        try:
            r = c.request(method, path, body, timeout=15, **kw)
        except (OSError, http.client.HTTPException, ValueError):  # reset, cut short, a body that is no JSON
            r = None
        degraded = bool(what == "home" and r is not None and isinstance(r.json, dict) and r.json.get("degraded"))
        detail = ""
        if r is not None and r.status >= 400:
            problem = r.json if isinstance(r.json, dict) else {}
            detail = f"{problem.get('detail', r.body[:120])} ({r.header('x-request-id')})"
        with self.lock:
            tally.answers.append(Answer(what, t0, time.monotonic(), r.status if r else 0, key, degraded, detail))
        return r
