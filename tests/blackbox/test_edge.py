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


def raw_exchange(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Sends a request as raw bytes and reads one response: (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(rest) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), headers, rest


class BodyLimitTest(unittest.TestCase):
    """Past the 1 MiB default (CONVENTIONS.md): 413 as a problem, from the REST routes, the BFFs and h2o itself."""

    def assert_problem(self, status, headers, body, want):
        self.assertEqual(status, want, body)
        self.assertEqual(headers.get("content-type"), "application/problem+json")
        self.assertEqual(json.loads(body)["status"], want)
        self.assertEqual(json.loads(body)["request_id"], headers.get("x-request-id"))
        self.assertEqual(headers.get("x-content-type-options"), "nosniff")

    def test_a_body_just_over_the_limit_is_a_413_problem_and_the_connection_lives_on(self):
        c = client()
        big = {"email": "a" * (1024 * 1024), "password": "x"}
        for path in ("/v1/auth/login", "/bff/web/checkout"):
            r = c.post(path, big, headers={"Idempotency-Key": "k"})
            self.assertEqual(r.status, 413, (path, r.body))
            self.assertEqual(r.header("content-type"), "application/problem+json")
            self.assertEqual(r.json["status"], 413)
            self.assertEqual(r.json["request_id"], r.header("x-request-id"))
        self.assertEqual(c.get("/.well-known/jwks.json").status, 200)

    def test_a_huge_body_is_refused_by_h2o_as_a_problem_too(self):
        port = int(context.MOONPORT.url.rsplit(":", 1)[1])
        head = (b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Request-Id: huge-1\r\nContent-Length: 50000000\r\n\r\n")
        status, headers, body = raw_exchange(port, head)
        self.assert_problem(status, headers, body, 413)
        self.assertEqual(headers.get("x-request-id"), "huge-1")


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
