"""Steps the order black-box tests share: placing an order as a client
would (with an Idempotency-Key, retrying on 5xx with the same key), waiting
for the saga, and reading what was delivered."""
from __future__ import annotations

import time, uuid

from httpc import Client, Response


def place(c: Client, token: str, items: list[tuple[str, int]], payment_token: str = "tok_ok",
          key: str | None = None) -> Response:
    """POST /v1/orders once."""
    body = {"items": [{"product_id": pid, "quantity": q} for pid, q in items], "payment_token": payment_token}
    return c.post("/v1/orders", body, token=token, headers={"Idempotency-Key": key or str(uuid.uuid4())})


def place_until_answered(c: Client, token: str, items, payment_token: str = "tok_ok", key: str | None = None,
                         give_up_after: float = 60) -> Response:
    """Places an order like a careful client: on a 5xx or a broken connection, the same request again with the
    same key, until a definite answer (2xx or 4xx other than 409 "in progress")."""
    key = key or str(uuid.uuid4())
    deadline = time.time() + give_up_after
    while True:
        try:
            r = place(c, token, items, payment_token, key)
            if r.status < 500 and r.status != 409:
                return r
        except OSError:
            r = None
        if time.time() > deadline:
            raise AssertionError(f"no definite answer for key {key}: {r and (r.status, r.body)}")
        time.sleep(0.25)


def wait_status(c: Client, token: str, order_id: str, status: str, timeout: float = 30) -> dict:
    """Polls GET /v1/orders/{id} until the order has `status`; returns it."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = c.get(f"/v1/orders/{order_id}", token=token)
        last = (r.status, r.json)
        if r.status == 200 and r.json["status"] == status:
            return r.json
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} did not become {status} within {timeout}s: {last}")


def wait_for(what: str, fn, timeout: float = 30, every: float = 0.1):
    """Polls fn() until it returns something truthy; returns that."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s")


def delivered(mp, user_id: str, template: str | None = None) -> list[dict]:
    """Notifications the file adapter of moonport `mp` wrote for `user_id`."""
    return [n for n in mp.notifications() if n["user_id"] == user_id and (template is None or n["template"] == template)]
