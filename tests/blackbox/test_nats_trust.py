"""Service-to-service trust on the bus, black-box against the real nats-server:
services believe Auth-Sub / Auth-Roles, so only the gateway may call the
public operations, each service may publish only its own events, nobody may
read another role's replies, and a client without credentials gets nowhere.
The clients speak the NATS protocol over a socket (tests/harness/natsc.py)."""
from __future__ import annotations

import json, time, unittest, urllib.request, uuid

import context
from helpers import client
from natsc import Conn, NatsError

VIOLATION = "Permissions Violation"


class NatsPermissionTest(unittest.TestCase):
    def conn(self, user: str | None) -> Conn:
        c = Conn(context.STACK.nats_port, user, context.STACK.nats_password(user) if user else None)
        self.addCleanup(c.close)
        return c

    def assert_pub(self, c: Conn, subject: str, allowed: bool, reply: str | None = None):
        c.pub(subject, b"{}", reply=reply)
        err = c.ack()
        if allowed:
            self.assertIsNone(err, f"{subject}: {err}")
        else:
            self.assertIsNotNone(err, f"{subject} was allowed")
            self.assertIn(VIOLATION, err)
            self.assertIn(subject, err)

    def assert_sub(self, c: Conn, subject: str, allowed: bool, queue: str | None = None):
        c.sub(subject, queue)
        err = c.ack()
        if allowed:
            self.assertIsNone(err, f"sub {subject}: {err}")
        else:
            self.assertIsNotNone(err, f"sub {subject} was allowed")
            self.assertIn(VIOLATION, err)

    def test_no_credentials_no_connection(self):
        with self.assertRaises(NatsError) as e:
            self.conn(None)
        self.assertIn("Authorization Violation", str(e.exception))
        with self.assertRaises(NatsError):
            Conn(context.STACK.nats_port, "gateway", "not-the-password")

    def test_another_role_cannot_call_user_get_or_publish_order_events(self):
        for role in ("auth", "notification", "product", "payment"):
            c = self.conn(role)
            self.assert_pub(c, "user.v1.get", allowed=False, reply=f"_INBOX.{role}.x")
            self.assert_pub(c, "events.order.created", allowed=False)
        # Order calls User as the caller, for the owner's locale (nats_auth.CALLS), and requests notifications
        order = self.conn("order")
        self.assert_pub(order, "user.v1.get", allowed=True, reply="_INBOX.order.x")
        self.assert_pub(order, "user.v1.update", allowed=False, reply="_INBOX.order.y")
        self.assert_pub(order, "events.notification.requested", allowed=True)
        self.assert_pub(order, "events.notification.sent", allowed=False)

    def test_each_service_publishes_only_its_own_events(self):
        order = self.conn("order")
        self.assert_pub(order, "events.order.created", allowed=True)  # the control: its own events pass
        self.assert_pub(order, "events.payment.succeeded", allowed=False)
        auth = self.conn("auth")
        self.assert_pub(auth, "events.auth.session_revoked", allowed=True)

    def test_only_the_gateway_calls_public_operations(self):
        gw = self.conn("gateway")
        self.assert_pub(gw, "user.v1.get", allowed=True, reply="_INBOX.gateway.x")
        self.assert_pub(gw, "order.v1.create", allowed=True, reply="_INBOX.gateway.y")
        self.assert_pub(gw, "events.order.created", allowed=False)  # the gateway emits no domain events

    def test_services_serve_only_their_own_operations_in_their_queue_group(self):
        user = self.conn("user")
        self.assert_sub(user, "user.v1.>", allowed=True, queue="user")
        self.assert_sub(user, "user.v1.>", allowed=False)  # outside the queue group: could skim a replica's share
        self.assert_sub(user, "order.v1.>", allowed=False, queue="order")

    def test_nobody_reads_another_roles_replies(self):
        for role in ("auth", "order", "gateway"):
            c = self.conn(role)
            self.assert_sub(c, "_INBOX.>", allowed=False)
            self.assert_sub(c, f"_INBOX.{role}.>", allowed=True)
        self.assert_sub(self.conn("order"), "_INBOX.gateway.>", allowed=False)

    def test_split_roles_connect_as_their_own_users(self):
        mp = context.new_moonport(roles="auth").start()
        try:
            url = f"http://127.0.0.1:{context.STACK.nats_http_port}/connz?auth=true&limit=1024"
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            deadline = time.time() + 5
            users = set()
            while time.time() < deadline and "auth" not in users:
                with opener.open(url, timeout=2) as r:
                    users = {c.get("authorized_user") for c in json.load(r)["connections"]}
                time.sleep(0.1)
            self.assertIn("auth", users)      # the split auth role
            self.assertIn("moonport", users)  # the shared all-in-one process
            # and the split role serves: a request through the shared gateway may land on either replica
            self.assertEqual(mp.ready()[0], 200)
            # a registration on the split replica creates the profile through user.v1.provision, which its NATS
            # user must be allowed to call: twelve registrations land on it all but once in 4,096 runs
            c = client()
            for _ in range(12):
                r = c.post("/v1/auth/register", {"email": f"split-{uuid.uuid4().hex[:12]}@example.com",
                                                 "password": "correct horse battery", "display_name": "Split"})
                self.assertEqual(r.status, 201, r.body)
        finally:
            self.assertEqual(mp.stop(), 0)


if __name__ == "__main__":
    unittest.main()
