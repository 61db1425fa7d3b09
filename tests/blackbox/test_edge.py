"""Transport and headers, black-box: TLS with HTTP/2 negotiated by ALPN
(curl --http2 against a certificate made here with openssl), HSTS only
under TLS, the certificate reloaded on SIGHUP, CORS preflights answered per
origin, 431 past the header limit, gzip for JSON when the client accepts
it, and the security headers every response carries."""
from __future__ import annotations

import gzip, json, os, shutil, signal, socket, ssl, subprocess, tempfile, time, unittest

import context
from contract import Contract
from helpers import client
from httpc import Client
from natsc import Responder

ORIGIN = "http://localhost:5173"


def make_cert(directory: str, cn: str) -> tuple[str, str]:
    cert, key = os.path.join(directory, f"{cn}.crt"), os.path.join(directory, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", f"/CN={cn}", "-keyout", key, "-out", cert], check=True,
                   capture_output=True)
    return cert, key


def served_cn(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem, capture_output=True, text=True)
    return out.stdout.strip().rsplit("=", 1)[-1].strip()


@unittest.skipUnless(shutil.which("curl") and shutil.which("openssl"), "needs curl and openssl")
class TlsTest(unittest.TestCase):
    def test_tls_http2_hsts_and_reload_on_sighup(self):
        d = tempfile.mkdtemp(prefix="moonport-tls-")
        try:
            cert, key = make_cert(d, "first")
            live_cert, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
            shutil.copy(cert, live_cert)
            shutil.copy(key, live_key)
            mp = context.new_moonport(roles="gateway", gateway_extra=f"  tls:\n    cert_file: {live_cert}\n"
                                                                      f"    key_file: {live_key}\n").start()
            try:
                url = f"https://127.0.0.1:{mp.http_port}/.well-known/jwks.json"
                for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
                    r = subprocess.run(["curl", "-sSk", flag, "-D", "-", "-o", "/dev/null", "-w",
                                        "\n%{http_version} %{http_code}", url], capture_output=True, text=True,
                                       timeout=20)
                    self.assertEqual(r.stdout.strip().splitlines()[-1], f"{want} 200", r.stdout + r.stderr)
                    headers = r.stdout.lower()
                    self.assertIn("strict-transport-security: max-age=31536000; includesubdomains", headers)
                    self.assertIn("x-content-type-options: nosniff", headers)
                    # a header the service set travels too (upper case in a name would break HTTP/2)
                    self.assertIn("cache-control: public, max-age=300", headers)
                # HTTP/1.1 keeps the connection for the next request
                r = subprocess.run(["curl", "-sk", "--http1.1", "-o", "/dev/null", "-o", "/dev/null", "-w",
                                    "%{num_connects} ", url, url], capture_output=True, text=True, timeout=20)
                self.assertEqual(r.stdout.split(), ["1", "0"])
                # TLS 1.2 at least
                r = subprocess.run(["curl", "-sk", "--tls-max", "1.1", url], capture_output=True, timeout=20)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(served_cn(mp.http_port), "first")
                cert2, key2 = make_cert(d, "second")
                shutil.copy(cert2, live_cert)
                shutil.copy(key2, live_key)
                mp.signal(signal.SIGHUP)
                deadline = time.time() + 5
                while served_cn(mp.http_port) != "second" and time.time() < deadline:
                    time.sleep(0.1)
                self.assertEqual(served_cn(mp.http_port), "second")
            finally:
                self.assertEqual(mp.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_plain_http_has_no_hsts(self):
        r = client().get("/.well-known/jwks.json")
        self.assertIsNone(r.header("strict-transport-security"))


class CorsTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def preflight(self, path: str, origin: str, method: str = "POST"):
        return self.c.request("OPTIONS", path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                        "Access-Control-Request-Headers": "content-type,authorization"})

    def test_preflight_for_a_known_route_and_origin(self):
        r = self.preflight("/v1/auth/login", ORIGIN)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("access-control-allow-origin"), ORIGIN)
        self.assertIn("Origin", r.header("vary"))
        self.assertEqual(r.header("access-control-allow-methods"), "POST")
        allowed = [h.strip().lower() for h in r.header("access-control-allow-headers").split(",")]
        for h in ("authorization", "content-type", "idempotency-key", "if-match", "if-none-match", "x-request-id"):
            self.assertIn(h, allowed)
        self.assertEqual(r.header("access-control-max-age"), "600")
        r = self.preflight("/v1/auth/sessions/3f1c6a40-93a1-4a61-9a86-6e1a2b3c4d5e", "http://127.0.0.1:5173", "DELETE")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("access-control-allow-methods"), "DELETE")

    def test_unknown_origin_gets_403_and_no_cors_headers(self):
        r = self.preflight("/v1/auth/login", "https://evil.example.net")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.header("content-type"), "application/problem+json")
        self.assertIsNone(r.header("access-control-allow-origin"))
        self.assertIsNone(r.header("access-control-allow-methods"))

    def test_preflight_for_an_unknown_path_is_404(self):
        self.assertEqual(self.preflight("/v1/nowhere", ORIGIN).status, 404)

    def test_actual_requests_echo_only_allowed_origins(self):
        r = self.c.get("/.well-known/jwks.json", headers={"Origin": ORIGIN})
        self.assertEqual(r.header("access-control-allow-origin"), ORIGIN)
        self.assertIn("X-Request-Id", r.header("access-control-expose-headers"))
        self.assertIn("Origin", r.header("vary"))
        r = self.c.get("/.well-known/jwks.json", headers={"Origin": "https://evil.example.net"})
        self.assertIsNone(r.header("access-control-allow-origin"))
        self.assertNotEqual(r.header("access-control-allow-origin"), "*")


class HeaderLimitTest(unittest.TestCase):
    def test_headers_past_16_kib_are_431(self):
        c = client()
        big = {f"X-Pad-{i}": "x" * 1000 for i in range(17)}
        for path in ("/.well-known/jwks.json", "/bff/web/search?q=lamp"):  # the BFF mount too
            r = c.get(path, headers=big)
            self.assertEqual(r.status, 431, path)
            self.assertEqual(r.header("content-type"), "application/problem+json")
            self.assertEqual(r.json["status"], 431)
        ok = {f"X-Pad-{i}": "x" * 1000 for i in range(12)}
        self.assertEqual(c.get("/.well-known/jwks.json", headers=ok).status, 200)

    def test_security_headers_on_every_response(self):
        c = client()
        for r in (c.get("/.well-known/jwks.json"), c.get("/v1/nowhere"), c.post("/v1/auth/login", {}),
                  c.get("/bff/web/search?q=lamp"), c.get("/bff/web/home"), c.get("/bff/nowhere")):
            self.assertEqual(r.header("x-content-type-options"), "nosniff")
            self.assertEqual(r.header("x-frame-options"), "DENY")
            self.assertEqual(r.header("referrer-policy"), "no-referrer")
            self.assertNotRegex(r.header("server") or "", r"\d")


class GzipTest(unittest.TestCase):
    def test_json_is_gzipped_when_accepted(self):
        contract = Contract([({"method": "GET", "path": "/v1/zz/big", "subject": "notification.v1.zz_big",
                               "auth": "none"}, None),
                             ({"method": "GET", "path": "/v1/zz/small", "subject": "notification.v1.zz_small",
                               "auth": "none"}, None)])
        big = json.dumps({"items": [{"id": i, "text": "moonport " * 8} for i in range(100)]}).encode()
        small = json.dumps({"items": [{"id": i} for i in range(20)]}).encode()
        assert len(small) < 256
        st = context.STACK
        svc = Responder(st.nats_port, "test", st.nats_password("test"), "notification.v1.zz_big", body=big).start()
        svc_small = Responder(st.nats_port, "test", st.nats_password("test"), "notification.v1.zz_small",
                              body=small).start()
        gw = context.new_moonport(roles="gateway", routes_file=contract.routes_file,
                                  specs_dir=contract.specs_dir).start()
        try:
            c = Client(gw.url)
            r = c.get("/v1/zz/big", headers={"Accept-Encoding": "gzip"})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("content-encoding"), "gzip")
            self.assertIn("accept-encoding", r.header("vary").lower())
            self.assertLess(len(r.body), len(big) // 4)
            self.assertEqual(json.loads(gzip.decompress(r.body)), json.loads(big))
            r = c.get("/v1/zz/big")
            self.assertIsNone(r.header("content-encoding"))
            self.assertEqual(r.body, big)
            # small bodies (under gateway.gzip.min_size, 256 B) are not worth it
            r = c.get("/v1/zz/small", headers={"Accept-Encoding": "gzip"})
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("content-encoding"))
            self.assertEqual(r.body, small)
        finally:
            svc.stop()
            svc_small.stop()
            gw.stop()
            contract.close()


if __name__ == "__main__":
    unittest.main()
