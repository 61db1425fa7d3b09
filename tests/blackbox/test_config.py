"""The shipped configuration, black-box: `moonport serve` with
config/moonport.yaml (as `make run` starts it; addresses and credentials
from the environment, which wins over the file) starts, serves through
every policy, and exits 0 on SIGTERM. Catches a shipped file that a code
change no longer accepts."""
from __future__ import annotations

import os, subprocess, tempfile, time, unittest, urllib.request

import context
from httpc import Client
from moonport import ROOT
from stack import free_port


class ShippedConfigTest(unittest.TestCase):
    def test_make_run_config_serves(self):
        http, admin = free_port(), free_port()
        keys = tempfile.mkdtemp(prefix="moonport-keys-")
        env = {**os.environ, **context.STACK.env(), **context.STACK.nats_env(None),
               "MOONPORT_GATEWAY_LISTEN": f"127.0.0.1:{http}", "MOONPORT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
               "MOONPORT_AUTH_KEYS_DIR": keys}
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen([context.BINARY, "serve", "--config", os.path.join(ROOT, "config", "moonport.yaml")],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            deadline, ready = time.time() + 30, False
            while time.time() < deadline and proc.poll() is None and not ready:
                try:
                    ready = opener.open(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200
                except Exception:
                    time.sleep(0.1)
            log.seek(0)
            self.assertTrue(ready, log.read().decode(errors="replace")[-3000:])
            r = Client(f"http://127.0.0.1:{http}").post("/v1/auth/login", {"email": "nobody@example.com",
                                                                            "password": "not a password"})
            self.assertEqual(r.status, 401, r.body)
            self.assertEqual(r.header("ratelimit-limit"), "5")  # the shipped login limit
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(20), 0)
            log.close()


if __name__ == "__main__":
    unittest.main()
