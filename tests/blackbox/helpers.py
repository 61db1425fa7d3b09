"""Shared steps for black-box tests: fresh accounts, logins, the shared
moonport's client."""
from __future__ import annotations

import time, uuid

import context
from httpc import Client  # tests/harness/httpc.py

PASSWORD = "correct horse battery staple"


def client() -> Client:
    return Client(context.MOONPORT.url)


def register(c: Client, email: str | None = None, password: str = PASSWORD, name: str = "Test User") -> dict:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    r = c.post("/v1/auth/register", {"email": email, "password": password, "display_name": name})
    assert r.status == 201, (r.status, r.body)
    return {"email": email, "password": password, **r.json}


def login(c: Client, email: str, password: str = PASSWORD) -> dict:
    r = c.post("/v1/auth/login", {"email": email, "password": password})
    assert r.status == 200, (r.status, r.body)
    return r.json


def new_user(c: Client) -> tuple[dict, dict]:
    """Registers and logs in a fresh account: (account, tokens)."""
    acct = register(c)
    return acct, login(c, acct["email"])


def new_admin(c: Client) -> tuple[dict, dict]:
    """Creates an admin with `moonport user create --role admin` (as operators do) and logs in: (account, tokens)."""
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    r = context.MOONPORT.run("user", "create", "--email", email, "--role", "admin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, (r.returncode, r.stderr)
    return {"email": email, "user_id": r.stdout.strip()}, login(c, email)


def wait_for(pred, timeout: float, what: str) -> None:
    """Polls `pred` until it is true; fails the test naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")
