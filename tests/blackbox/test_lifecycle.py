"""Start-up, outages and shutdown, black-box: a config error stops start-up
with file:line; Postgres stopped under a running service turns readiness and
requests into 503 and recovers; SIGTERM drains in-flight requests; a gateway
that is ready serves its first requests as well as any later ones, and one
that drains serves the connections it accepted (issue 11: a rolling restart
fails nothing)."""
from __future__ import annotations

import concurrent.futures, http.client, os, re, signal, subprocess, tempfile, threading, time, unittest

import context
from helpers import PASSWORD, client, new_user, register
from httpc import Client
from moonport import ROOT


class ConfigErrorTest(unittest.TestCase):
    def serve(self, text: str) -> subprocess.CompletedProcess:
        fd, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            r = subprocess.run([context.BINARY, "serve", "--config", path], cwd=ROOT, capture_output=True, text=True,
                               timeout=20, env={**os.environ, **context.STACK.env()})
        finally:
            os.unlink(path)
        return r, os.path.basename(path)

    def test_unknown_key_and_bad_value_stop_start_up_with_file_and_line(self):
        r, name = self.serve("log:\n  level: info\ngateway:\n  lisen: 0.0.0.0:1\n  threads: lots\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, re.escape(name) + r':4: unknown key "gateway.lisen"')
        self.assertRegex(r.stderr, re.escape(name) + r":5: gateway.threads: expected an integer")

    def test_yaml_syntax_error_names_the_line(self):
        r, name = self.serve("log:\n  level: [info\n")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, re.escape(name) + r":\d+:")

    def test_secret_written_in_the_file_is_refused(self):
        r, name = self.serve("postgres:\n  password: hunter2hunter2\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("secrets may not be written in the file", r.stderr)
        self.assertNotIn("hunter2hunter2", r.stderr)


class PostgresOutageTest(unittest.TestCase):
    def test_postgres_down_makes_ready_503_and_requests_503_then_recovers(self):
        c = client()
        admin = Client(context.MOONPORT.admin_url)
        acct = register(c)
        context.STACK.stop_postgres()
        try:
            deadline = time.time() + 10
            while time.time() < deadline:
                r = admin.get("/readyz")
                if r.status == 503:
                    break
                time.sleep(0.2)
            self.assertEqual(r.status, 503)
            self.assertTrue(r.json["checks"]["postgres:auth"].startswith("down"), r.json)
            self.assertEqual(r.json["checks"]["nats"], "ok")
            r = c.post("/v1/auth/login", {"email": acct["email"], "password": PASSWORD})
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.header("content-type"), "application/problem+json")
            self.assertNotIn("sql", r.json["detail"].lower())
        finally:
            context.STACK.start_postgres()
        deadline = time.time() + 20
        while time.time() < deadline and admin.get("/readyz").status != 200:
            time.sleep(0.2)
        self.assertEqual(admin.get("/readyz").status, 200)
        r = c.post("/v1/auth/login", {"email": acct["email"], "password": PASSWORD})
        self.assertEqual(r.status, 200, r.body)


class DrainTest(unittest.TestCase):
    def test_sigterm_finishes_the_request_in_flight_and_exits_0(self):
        # an expensive password hash makes the login take a few hundred milliseconds
        mp = context.new_moonport()
        with open(mp.config_path) as f:
            cfg = f.read().replace("log_n: 12", "log_n: 16")
        with open(mp.config_path, "w") as f:
            f.write(cfg)
        mp.start()
        c = Client(mp.url)
        result = {}

        def slow_register():
            result["r"] = c.post("/v1/auth/register", {"email": f"drain-{time.time_ns()}@example.com",
                                                        "password": PASSWORD, "display_name": "D"})

        t = threading.Thread(target=slow_register)
        t.start()
        time.sleep(0.1)
        mp.signal(signal.SIGTERM)
        t.join(15)
        self.assertEqual(result["r"].status, 201)
        self.assertEqual(mp.proc.wait(15), 0)


class GatewayTurnoverTest(unittest.TestCase):
    """A gateway started beside the shared one, as a rolling restart starts a replacement."""

    def test_first_requests_after_ready_find_the_keys_and_the_bus(self):
        _, tokens = new_user(client())
        gw = context.new_moonport(roles="gateway").start(wait_ready=False)
        try:
            gw.wait_ready(30)
            # at once, on every loop thread: before, a thread other than the one fetching Auth's keys answered 401,
            # and a thread whose NATS connection was still coming up answered 503
            c = Client(gw.url)
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                got = list(pool.map(lambda _: c.get("/v1/users/me", token=tokens["access_token"]).status, range(32)))
            self.assertEqual(got, [200] * 32)
            msgs = [line.get("msg", "") for line in gw.log_lines()]
            keys = next(i for i, m in enumerate(msgs) if "signing keys from auth" in m)
            self.assertLess(keys, msgs.index("gateway listening"), "the listener opened before the keys were there")
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_connections_accepted_just_before_sigterm_are_served(self):
        gw = context.new_moonport(roles="gateway").start()
        conns = [http.client.HTTPConnection("127.0.0.1", gw.http_port, timeout=5) for _ in range(8)]
        try:
            for c in conns:
                c.connect()
            time.sleep(0.05)  # accepted by the gateway, no request sent yet
            gw.signal(signal.SIGTERM)
            time.sleep(0.05)  # the drain has begun: before, it ended at once (nothing in flight) and reset these
            for c in conns:
                c.request("GET", "/v1/products?limit=1")
            self.assertEqual([c.getresponse().status for c in conns], [200] * 8)
        finally:
            for c in conns:
                c.close()
        self.assertEqual(gw.proc.wait(15), 0)
        gw.stop()


if __name__ == "__main__":
    unittest.main()
