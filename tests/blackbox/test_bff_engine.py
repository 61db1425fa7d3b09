"""The Lua BFF engine, black-box against a real gateway, real NATS and
mp-echo (tests/tools/echo.c): parallel calls really overlap, fallbacks and
deadlines, the sandbox, CPU and memory kills that leave everyone else
served, errors without tracebacks, hot reload under load, a broken reload,
Server-Timing, caching and coalescing, metrics, CORS, and the offline
runner and checker."""
from __future__ import annotations

import concurrent.futures, json, os, re, shutil, subprocess, tempfile, threading, time, unittest

import context
from helpers import client, new_user
from httpc import Client
from moonport import ROOT

ENGINE_SCRIPTS = os.path.join(ROOT, "tests", "lua", "engine")


def start_echo(prefix: str = "echo") -> subprocess.Popen:
    binary = os.path.join(os.path.dirname(context.BINARY), "tests", "mp-echo")
    p = subprocess.Popen([binary, "--nats", context.STACK.env()["MP_TEST_NATS_URL"], "--prefix", prefix,
                          "--workers", "16"], stdout=subprocess.PIPE, text=True)
    assert "ready" in p.stdout.readline()
    return p


class EngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        shutil.copytree(ENGINE_SCRIPTS, cls.scripts, dirs_exist_ok=True)
        cls.echo = start_echo()
        cls.mp = context.new_moonport(roles="gateway,auth", extra_config=f"bff:\n  scripts_dir: {cls.scripts}\n"
                                      "  cpu_budget: 5000000\n").start()
        cls.c = Client(cls.mp.url)

    @classmethod
    def tearDownClass(cls):
        cls.mp.stop()
        cls.echo.terminate()
        cls.echo.wait()
        shutil.rmtree(cls.scripts)

    def get(self, path, **kw):
        return self.c.get("/bff/lab" + path, **kw)

    def test_four_100ms_calls_take_about_100ms(self):
        t0 = time.monotonic()
        r = self.get("/parallel?ms=100")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["sum"], 10)
        self.assertGreaterEqual(r.json["elapsed_ms"], 95)
        self.assertLess(r.json["elapsed_ms"], 250)  # sequential would be 400+
        self.assertLess(took, 0.4)
        timing = r.header("server-timing")
        self.assertEqual(len(re.findall(r"echo;dur=\d+\.\d", timing)), 4, timing)

    def test_optional_call_falls_back_on_timeout(self):
        r = self.get("/fallback")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"items": [], "value": 7,
                                  "degraded": [{"dependency": "echo.v1.slow", "reason": "timeout"}]})
        self.assertIn('desc="timeout"', r.header("server-timing"))

    def test_required_failures_map_to_502_503_504(self):
        self.assertEqual(self.get("/required-timeout").status, 504)
        t0 = time.monotonic()
        r = self.get("/deadline")
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 0.3)  # the route's 80 ms deadline, not the call's 5 s
        r = self.get("/unavailable")
        self.assertEqual(r.status, 503)
        self.assertIn("nobody.v1.here", r.json["detail"])
        r = self.get("/status/404")
        self.assertEqual(r.status, 404)
        self.assertEqual(self.get("/status/500").status, 502)
        # a service that says it is down (its Postgres restarting) or out of time is not one that "answered badly"
        r = self.get("/status/503")
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("echo.v1.status is unavailable", r.json["detail"])
        self.assertEqual(self.get("/status/504").status, 504)

    def test_script_errors_are_500_problems_without_traceback(self):
        r = self.get("/boom", headers={"X-Request-Id": "boom-1"})
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json["request_id"], "boom-1")
        self.assertNotIn("lua", r.body.decode().lower())
        self.assertNotIn("traceback", r.body.decode().lower())
        time.sleep(0.1)
        lines = [l for l in self.mp.log_lines() if l.get("request_id") == "boom-1" and "traceback" in l]
        self.assertEqual(len(lines), 1)
        self.assertIn("lab/routes.lua:", lines[0]["traceback"])
        self.assertIn("attempt to index", lines[0]["traceback"])
        r = self.get("/fail")
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json["errors"], [{"pointer": "/thing", "detail": "taken"}])

    def test_endless_loop_and_allocation_bomb_are_contained(self):
        def normal():
            return self.get("/version").status

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            bad = [pool.submit(self.get, p) for p in ("/loop", "/pcall-loop", "/bomb", "/pattern-bomb")]
            good = [pool.submit(normal) for _ in range(20)]
            self.assertEqual([f.result().status for f in bad], [500, 500, 500, 500])
            self.assertEqual([f.result() for f in good], [200] * 20)
        details = [f.result().json["detail"] for f in bad]
        self.assertIn("CPU", details[0])
        self.assertIn("CPU", details[1])
        self.assertIn("memory", details[2])
        self.assertIn("CPU", details[3])
        self.assertEqual(self.get("/version").json, {"version": "v1"})

    def test_sandbox_escape_attempts_are_refused(self):
        r = self.get("/escape")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["escaped"], [])

    def test_auth_caller_and_roles(self):
        self.assertEqual(self.get("/me").status, 401)
        acct, tok = new_user(Client(self.mp.url))
        r = self.get("/me", token=tok["access_token"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"sub": acct["user_id"], "roles": ["user"]})
        self.assertEqual(self.get("/admin", token=tok["access_token"]).status, 403)
        self.assertEqual(self.get("/me", token="not.a.token").status, 401)
        self.assertEqual(self.c.get("/bff/other/ping").status, 401)  # that client requires a caller by default

    def test_bodies_params_and_errors(self):
        r = self.c.post("/bff/lab/echo-body", {"a": [1, 2]}, headers={"X-Request-Id": "body-1"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json, {"got": {"a": [1, 2]}, "id": "body-1"})
        r = self.c.post("/bff/lab/echo-body", raw=b"{bad", headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.get("/items/not-a-uuid").status, 400)
        self.assertEqual(self.get("/nowhere").status, 404)
        self.assertEqual(self.c.get("/bff/nobody/x").status, 404)
        r = self.c.delete("/bff/lab/version")
        self.assertEqual((r.status, r.header("allow")), (405, "GET"))

    def test_cache_and_coalescing(self):
        k = f"k{time.time_ns()}"
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda _: self.get(f"/cached?k={k}"), range(10)))
        self.assertEqual({r.status for r in results}, {200})
        descs = [r.header("server-timing") for r in results]
        # ten concurrent identical calls: at most one per loop thread went out; the rest rode along or hit the cache
        went_out = sum(1 for d in descs if "desc=" not in d)
        self.assertLessEqual(went_out, 2, descs)
        r = self.get(f"/cached?k={k}")
        self.assertIn('desc="cache hit"', r.header("server-timing"))
        self.assertEqual(r.json, {"k": k})

    def test_cors_preflight_and_logs(self):
        from httpc import request
        r = request(self.mp.url, "OPTIONS", "/bff/lab/version",
                    headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("access-control-allow-origin"), "http://localhost:5173")
        self.assertIn("GET", r.header("access-control-allow-methods"))
        # the same request headers as REST (a browser app sends traceparent and Idempotency-Key to both) ...
        allowed = {h.strip().lower() for h in r.header("access-control-allow-headers").split(",")}
        self.assertLessEqual({"authorization", "content-type", "idempotency-key", "traceparent", "x-request-id"},
                             allowed)
        # ... and the app may read what tells it about its request
        exposed = {h.strip().lower() for h in r.header("access-control-expose-headers").split(",")}
        self.assertLessEqual({"x-request-id", "server-timing", "idempotent-replayed", "retry-after"}, exposed)
        r = request(self.mp.url, "OPTIONS", "/bff/lab/version",
                    headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.header("access-control-allow-origin"))
        r = self.get("/log", headers={"X-Request-Id": "log-1"})
        self.assertEqual(r.status, 200)
        time.sleep(0.1)
        lines = [l for l in self.mp.log_lines() if l.get("msg") == "hello from a script"]
        self.assertEqual(lines[-1]["request_id"], "log-1")
        self.assertEqual(lines[-1]["who"], "lab")
        self.assertRegex(lines[-1]["script"], r"lab/routes\.lua:\d+")

    def test_metrics_per_route_and_call(self):
        self.get("/parallel?ms=1")
        text = Client(self.mp.admin_url).get("/metrics").body.decode()
        self.assertRegex(text, r'moonport_bff_requests_total\{client="lab",route="/parallel",status="200"\} \d+')
        self.assertRegex(text, r'moonport_bff_calls_total\{client="lab",subject="echo.v1.a",result="ok"\} \d+')
        self.assertIn('moonport_bff_call_duration_seconds_bucket{subject="echo.v1.a"', text)

    def test_metrics_count_each_status_and_result_of_one_route(self):
        # the engine keeps series per route and per subject: switching between statuses must count each in its own
        def counts():
            return [self.mp.metric("moonport_bff_requests_total", client="lab", route="/status/{code:int}",
                                   status=s) or 0 for s in ("200", "404")] + \
                   [self.mp.metric("moonport_bff_calls_total", client="lab", subject="echo.v1.status",
                                   result=res) or 0 for res in ("ok", "rejected")]
        before = counts()
        for code in (200, 404, 200, 404, 404, 200, 200):
            self.assertEqual(self.get(f"/status/{code}").status, code)
        after = counts()
        self.assertEqual([a - b for a, b in zip(after, before)], [4, 3, 4, 3])


class HotReloadTest(unittest.TestCase):
    def setUp(self):
        self.scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        shutil.copytree(ENGINE_SCRIPTS, self.scripts, dirs_exist_ok=True)
        self.echo = start_echo()
        self.mp = context.new_moonport(roles="gateway", extra_config=f"bff:\n  scripts_dir: {self.scripts}\n").start()
        self.c = Client(self.mp.url)
        self.routes = os.path.join(self.scripts, "lab", "routes.lua")

    def tearDown(self):
        self.mp.stop()
        self.echo.terminate()
        self.echo.wait()
        shutil.rmtree(self.scripts)

    def set_version(self, text: str):
        with open(self.routes) as f:
            src = f.read()
        src = re.sub(r'return \{ version = "[^"]*" \}', f'return {{ version = "{text}" }}', src)
        with open(self.routes, "w") as f:
            f.write(src)

    def wait_version(self, v: str, within: float = 1.5) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            r = self.c.get("/bff/lab/version")
            if r.status == 200 and r.json["version"] == v:
                return time.monotonic() - t0
            time.sleep(0.02)
        self.fail(f"version {v} not served within {within}s")

    def test_reload_under_load_fails_no_request(self):
        statuses, stop = [], threading.Event()

        def load():
            c = Client(self.mp.url)
            while not stop.is_set():
                statuses.append(c.get("/bff/lab/parallel?ms=20").status)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(2, 6):
                self.set_version(f"v{i}")
                self.assertLess(self.wait_version(f"v{i}"), 1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertGreater(len(statuses), 20)
        self.assertEqual(set(statuses), {200})

    def test_a_broken_reload_keeps_the_last_good_version(self):
        self.set_version("good")
        self.wait_version("good")
        with open(self.routes, "a") as f:
            f.write('\nbff.get("/broken", function( return 1 end)\n')
        time.sleep(1.0)
        r = self.c.get("/bff/lab/version")
        self.assertEqual((r.status, r.json["version"]), (200, "good"))
        page = Client(self.mp.admin_url).get("/bff/scripts").json
        self.assertRegex(page["last_error"], r"lab/routes\.lua:\d+:")
        lines = [l for l in self.mp.log_lines() if l.get("msg", "").startswith("BFF script reload failed")]
        self.assertTrue(lines)
        # fixing it brings the new version in
        with open(self.routes) as f:
            src = f.read().replace('\nbff.get("/broken", function( return 1 end)\n', "")
        with open(self.routes, "w") as f:
            f.write(src)
        self.set_version("fixed")
        self.wait_version("fixed")
        self.assertIsNone(Client(self.mp.admin_url).get("/bff/scripts").json["last_error"])

    def test_sighup_forces_a_reload(self):
        gen = Client(self.mp.admin_url).get("/bff/scripts").json["generation"]
        self.mp.signal(1)  # SIGHUP
        deadline = time.time() + 3
        while time.time() < deadline and Client(self.mp.admin_url).get("/bff/scripts").json["generation"] == gen:
            time.sleep(0.05)
        self.assertGreater(Client(self.mp.admin_url).get("/bff/scripts").json["generation"], gen)


class StartupAndToolsTest(unittest.TestCase):
    def test_a_syntax_error_stops_start_up_with_file_and_line(self):
        scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        try:
            os.makedirs(os.path.join(scripts, "web"))
            with open(os.path.join(scripts, "web", "home.lua"), "w") as f:
                f.write('local bff = require "moonport.bff"\n\nbff.get("/home", function(req\n  return {}\nend)\n')
            mp = context.new_moonport(roles="gateway", extra_config=f"bff:\n  scripts_dir: {scripts}\n")
            mp.start(wait_ready=False)
            rc = mp.proc.wait(20)
            self.assertNotEqual(rc, 0)
            self.assertRegex(mp.log_tail(), r"web/home\.lua:4:")
        finally:
            shutil.rmtree(scripts)

    def test_offline_runner_passes_good_tests_and_fails_a_wrong_fixture(self):
        r = subprocess.run([context.BINARY, "bff", "test", os.path.join(ENGINE_SCRIPTS, "lab")], cwd=ROOT,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"bff test: \d+ passed, 0 failed")
        scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        try:
            shutil.copytree(ENGINE_SCRIPTS, scripts, dirs_exist_ok=True)
            with open(os.path.join(scripts, "lab", "fixtures", "cached.json"), "w") as f:
                f.write('{"k": ')  # a broken fixture
            with open(os.path.join(scripts, "lab", "wrong_test.lua"), "w") as f:
                f.write('local t = require "moonport.test"\n'
                        't.case("expects the wrong thing", function()\n'
                        '  t.reply("echo.v1.fast", { value = 8 })\n'
                        '  t.reply("echo.v1.slow", { items = {} })\n'
                        '  t.eq(t.get("/fallback").body.value, 7)\n'
                        'end)\n')
            r = subprocess.run([context.BINARY, "bff", "test", os.path.join(scripts, "lab")], cwd=ROOT,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("fixtures/cached.json: not valid JSON", r.stdout)
            self.assertIn("expected 7, got 8", r.stdout)
            self.assertRegex(r.stdout, r"bff test: \d+ passed, 2 failed")
        finally:
            shutil.rmtree(scripts)

    def test_check_finds_a_subject_typo(self):
        scripts = tempfile.mkdtemp(prefix="moonport-lua-")
        try:
            os.makedirs(os.path.join(scripts, "web"))
            with open(os.path.join(scripts, "web", "x.lua"), "w") as f:
                f.write('local bff = require "moonport.bff"\n'
                        'bff.get("/x", function() return bff.fetch("auth.v1.jwkz", {}) end)\n'
                        'bff.get("/y", function() return bff.fetch("auth.v1.login", { email = "e" }) end)\n')
            r = subprocess.run([context.BINARY, "bff", "check", scripts], cwd=ROOT, capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn('web/x.lua:2: no service offers "auth.v1.jwkz" (did you mean "auth.v1.jwks"?)', r.stdout)
            self.assertIn('web/x.lua:3: auth.v1.login needs the field "password"', r.stdout)
        finally:
            shutil.rmtree(scripts)


if __name__ == "__main__":
    unittest.main()
