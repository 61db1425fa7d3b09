"""Notification delivery by webhook, black-box: a moonport running the
notification role with the webhook adapter, on a platform of its own
(isolated.py) so the shared moonport's notification consumer never takes
these events. A tiny http.server here receives the POSTs: it checks the
HMAC-SHA256 signature of each body with the shared secret, answers 500 to
the first attempts to make the adapter retry, and with 500 forever to make
it give up and write a dead letter.

Events are published straight into JetStream as the order service's outbox
would publish them (no Product needed).
"""
from __future__ import annotations

import hashlib, hmac, http.server, json, threading, time, unittest, uuid

from isolated import Isolated
from natsraw import Nats
from order_helpers import wait_for

SECRET = "webhook-test-secret-" + uuid.uuid4().hex


class Sink(http.server.ThreadingHTTPServer):
    """Records every POST; answers 500 to the first `failures` of them (all of them when None)."""

    def __init__(self, failures: int | None):
        self.failures = failures
        self.received: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), SinkHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/moonport?src=test"


class SinkHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv: Sink = self.server
        with srv.lock:
            srv.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            fail = srv.failures is None or len(srv.received) <= srv.failures
        self.send_response(500 if fail else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def signature_ok(body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(header, expected)


class WebhookTest(unittest.TestCase):
    def start(self, failures: int | None, max_attempts: int) -> None:
        self.sink = Sink(failures)
        self.iso = Isolated().start()
        self.mp = self.iso.moonport(roles="notification", env={
            "MOONPORT_NOTIFICATION_ADAPTER": "webhook", "MOONPORT_NOTIFICATION_WEBHOOK_URL": self.sink.url,
            "MOONPORT_NOTIFICATION_WEBHOOK_SECRET": SECRET, "MOONPORT_NOTIFICATION_RETRY_BASE": "100ms",
            "MOONPORT_NOTIFICATION_MAX_ATTEMPTS": str(max_attempts)})
        self.mp.start()
        self.nc = Nats(self.iso.nats_url)

    def tearDown(self):
        self.nc.close()
        self.iso.stop()
        self.sink.shutdown()

    def request_notification(self, user: str, template: str, locale: str, data: dict) -> str:
        """Publishes events.notification.requested into JetStream, retrying until the stream acknowledges it."""
        event_id = str(uuid.uuid4())
        body = json.dumps({"id": event_id, "type": "notification.requested", "occurred_at": "2026-11-23T21:07:08Z",
                           "data": {"user_id": user, "template": template, "locale": locale, "data": data}}).encode()

        def published():
            try:
                status, _, reply = self.nc.request("events.notification.requested", body, {"Nats-Msg-Id": event_id})
                return status == 200 and b'"stream":"EVENTS"' in reply.replace(b" ", b"")
            except (TimeoutError, ConnectionError):
                return False
        wait_for("the EVENTS stream takes the event", published, timeout=30, every=0.2)
        return event_id

    def test_webhook_is_signed_and_retried_until_delivered(self):
        self.start(failures=2, max_attempts=5)
        user, order_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.request_notification(user, "order_confirmed", "de", {"order_id": order_id,
                                                                  "total": {"amount": 2899, "currency": "EUR"}})
        wait_for("three attempts, the third answered 204", lambda: len(self.sink.received) >= 3)
        time.sleep(1)  # and no fourth
        got = self.sink.received
        self.assertEqual(len(got), 3)
        self.assertEqual({g["body"] for g in got}, {got[0]["body"]})  # the same bytes each time ...
        self.assertEqual({g["headers"]["X-Moonport-Notification-Id"] for g in got}, {json.loads(got[0]["body"])["id"]})
        for g in got:  # ... each signed
            self.assertTrue(signature_ok(g["body"], g["headers"].get("X-Moonport-Signature")), g["headers"])
            self.assertEqual(g["headers"]["Content-Type"], "application/json")
            self.assertEqual(g["path"], "/hooks/moonport?src=test")
        self.assertFalse(signature_ok(got[0]["body"].replace(b"2899", b"1"), got[0]["headers"]["X-Moonport-Signature"]))
        message = json.loads(got[0]["body"])
        self.assertEqual((message["user_id"], message["template"], message["locale"]), (user, "order_confirmed", "de"))
        self.assertEqual(message["title"], "Bestellung bestätigt")
        self.assertIn("28,99 EUR", message["body"])
        self.assertIn(order_id, message["body"])
        row = self.iso.psql(f"SELECT status, attempts FROM notification.deliveries WHERE notification_id = "
                            f"'{message['id']}'").strip()
        self.assertEqual(row, "delivered|3")

        # the user sees it through the service, whatever happened to the delivery
        status, _, body = self.nc.request("notification.v1.list", b"{}", {"Auth-Sub": user})
        self.assertEqual(status, 200)
        self.assertEqual([n["id"] for n in json.loads(body)["items"]], [message["id"]])

    def test_webhook_that_keeps_failing_ends_in_a_dead_letter(self):
        self.start(failures=None, max_attempts=3)
        user = str(uuid.uuid4())
        self.request_notification(user, "order_payment_failed", "fr", {"order_id": str(uuid.uuid4()),
                                                                       "total": {"amount": 500, "currency": "EUR"}})
        wait_for("a dead letter after the last try",
                 lambda: self.iso.psql("SELECT count(*) FROM notification.dead_letters").strip() == "1")
        time.sleep(1)
        self.assertEqual(len(self.sink.received), 3)
        row = self.iso.psql("SELECT d.status, d.attempts, l.attempts, l.last_error, l.payload->>'user_id', "
                            "l.payload->>'title' FROM notification.deliveries d JOIN notification.dead_letters l "
                            "ON l.notification_id = d.notification_id").strip()
        self.assertEqual(row, f"dead|3|3|the webhook answered HTTP 500|{user}|Payment failed")  # no French: English
        dead = [line for line in self.mp.log_lines() if line.get("msg", "").startswith("notification not delivered")]
        self.assertEqual(len(dead), 1)
        self.assertNotIn(SECRET, open(self.mp.log_path).read())

    def test_webhook_adapter_refuses_to_start_without_its_settings(self):
        self.sink = Sink(0)
        self.iso = Isolated().start()
        self.nc = Nats(self.iso.nats_url)
        mp = self.iso.moonport(roles="notification", env={"MOONPORT_NOTIFICATION_ADAPTER": "webhook"})
        r = mp.run("serve", timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("notification.webhook_url is required", r.stderr)
        self.assertIn("MOONPORT_NOTIFICATION_WEBHOOK_SECRET", r.stderr)


if __name__ == "__main__":
    unittest.main()
