"""The gateway spine, black-box: problem+json for every error, request ids,
503 when nobody serves a route, 504 past its deadline, metrics and health."""
from __future__ import annotations

import os, re, tempfile, unittest

import context
from contract import Contract
from helpers import client
from httpc import Client, request


class SpineTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_unknown_path_and_method(self):
        r = self.c.get("/v1/nowhere")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("content-type"), "application/problem+json")
        self.assertEqual(set(r.json), {"type", "title", "status", "detail", "request_id"})
        r = self.c.put("/v1/auth/login", {})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("allow"), "POST")

    def test_request_id_is_echoed_or_made(self):
        r = self.c.get("/v1/nowhere", headers={"X-Request-Id": "client-id.42_x"})
        self.assertEqual(r.header("x-request-id"), "client-id.42_x")
        self.assertEqual(r.json["request_id"], "client-id.42_x")
        for bad in ("has space", "x" * 129, "semi;colon"):
            r = self.c.get("/v1/nowhere", headers={"X-Request-Id": bad})
            self.assertRegex(r.header("x-request-id"), r"^[0-9a-f]{32}$")

    def test_security_headers_and_no_server_version(self):
        r = self.c.get("/.well-known/jwks.json")
        self.assertEqual(r.header("x-content-type-options"), "nosniff")
        self.assertNotRegex(r.header("server") or "", r"\d")

    def test_bad_path_parameter_is_400(self):
        acct_token = None
        r = self.c.delete("/v1/auth/sessions/%00abc")
        self.assertIn(r.status, (400, 401))  # malformed before auth, or auth first: never a 5xx
        self.assertLess(r.status, 500)

    def test_health_readiness_and_metrics(self):
        admin = Client(context.MOONPORT.admin_url)
        self.assertEqual(admin.get("/healthz").status, 200)
        r = admin.get("/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["checks"], {"nats": "ok", "postgres:auth": "ok", "postgres:user": "ok",
                                            "postgres:product": "ok", "redis:product": "ok", "postgres:order": "ok",
                                            "postgres:payment": "ok", "postgres:notification": "ok"})
        self.c.get("/v1/nowhere")
        m = admin.get("/metrics")
        self.assertEqual(m.status, 200)
        text = m.body.decode()
        self.assertIn("# TYPE moonport_http_requests_total counter", text)
        self.assertRegex(text, r'moonport_http_requests_total\{route="\(none\)",method="-",status="404"\} \d+')
        self.assertIn("moonport_nats_request_duration_seconds_bucket", text)


ROUTES = [
    # no service answers product.v1.zz_nothing (the gateway may call product.v1.>, nobody serves this one)
    ({"method": "GET", "path": "/v1/void", "subject": "product.v1.zz_nothing", "auth": "none"}, None),
    ({"method": "POST", "path": "/v1/slow", "subject": "auth.v1.login", "auth": "none", "timeout": "1ms"}, None),
    ({"method": "GET", "path": "/.well-known/jwks.json", "subject": "auth.v1.jwks", "auth": "none"}, None),
]


class UpstreamFailureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.contract = Contract(ROUTES)
        cls.mp = context.new_moonport(roles="gateway", routes_file=cls.contract.routes_file,
                                      specs_dir=cls.contract.specs_dir).start()
        cls.c = Client(cls.mp.url)

    @classmethod
    def tearDownClass(cls):
        cls.assert_rc = cls.mp.stop()
        cls.contract.close()

    def test_no_responder_is_503_at_once(self):
        r = self.c.get("/v1/void")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(r.json["status"], 503)

    def test_past_the_deadline_is_504(self):
        r = self.c.post("/v1/slow", {"email": "x@example.com", "password": "whatever-password"})
        self.assertEqual(r.status, 504)
        # and the gateway keeps serving
        self.assertEqual(self.c.get("/.well-known/jwks.json").status, 200)


if __name__ == "__main__":
    unittest.main()
