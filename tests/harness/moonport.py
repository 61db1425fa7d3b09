"""Starting and stopping real moonport processes for black-box tests.

A `Moonport` is one `moonport serve` process with its own config file (made
from a template plus overrides), free ports for the public and admin
listeners, and its log captured to a file. It talks to the stack the harness
started (NATS, Postgres, Redis) through MOONPORT_* environment variables.
"""
from __future__ import annotations

import json, os, re, signal, subprocess, tempfile, time, urllib.request
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "infra", "local"))
import stack as stacklib  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

BASE_CONFIG = """\
log:
  level: {log_level}
admin:
  listen: 127.0.0.1:{admin_port}
shutdown:
  drain: 5s
gateway:
  listen: 127.0.0.1:{http_port}
  threads: 2
  routes_file: {routes_file}
  specs_dir: {specs_dir}
  rate_limits:
{rate_limits}  rate_limit:
    key_prefix: "mp:rl:{run_id}:"
{gateway_extra}auth:
  keys_dir: {keys_dir}
  # a cheaper scrypt than production's so the suite stays fast; hashes record their cost
  scrypt:
    log_n: 12
    r: 8
    p: 1
notification:
  # one JSON file per delivered notification, read by tests through Moonport.notifications_dir
  adapter: file
  file_dir: {notifications_dir}
"""

# the suite talks from one address: generous limits, so that only the tests of rate limiting meet them
GENEROUS_LIMITS = {g: {"rate": "1000/s", "burst": 2000} for g in ("default", "login", "auth")}
GENEROUS_LIMITS["bff"] = {"rate": "100000/s", "burst": 100000}  # BFF load tests send thousands a second

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Moonport:
    """One moonport process. Use start(), then .url / .admin_url, then stop()."""

    def __init__(self, stack: stacklib.Stack, binary: str, roles: str | None = None, extra_config: str = "",
                 env: dict | None = None, keys_dir: str | None = None, routes_file: str | None = None,
                 specs_dir: str | None = None, log_level: str = "info", rate_limits: dict | None = None,
                 gateway_extra: str = "", http_port: int | None = None):
        self.stack = stack
        self.binary = binary
        self.roles = roles
        self.dir = tempfile.mkdtemp(prefix="moonport-proc-")
        self.http_port = http_port or stacklib.free_port()  # gateways given one port share it (SO_REUSEPORT)
        self.admin_port = stacklib.free_port()
        # one signing-key directory per stack, as replicas share one key Secret: every Auth on the stack's NATS
        # answers in the same queue group, so a token from one must verify with the keys another publishes
        self.keys_dir = keys_dir or stack.path("auth-keys")
        self.config_path = os.path.join(self.dir, "moonport.yaml")
        self.notifications_dir = os.path.join(self.dir, "notifications")
        with open(self.config_path, "w") as f:
            f.write(BASE_CONFIG.format(admin_port=self.admin_port, http_port=self.http_port,
                                       routes_file=routes_file or os.path.join(ROOT, "config", "routes.yaml"),
                                       keys_dir=self.keys_dir, log_level=log_level,
                                       specs_dir=specs_dir or os.path.join(ROOT, "api-specs"),
                                       run_id=os.path.basename(self.dir),
                                       rate_limits="".join(f"    {g}: {json.dumps(v)}\n"
                                                           for g, v in {**GENEROUS_LIMITS, **(rate_limits or {})}.items()),
                                       gateway_extra=gateway_extra,
                                       notifications_dir=self.notifications_dir))
            f.write(extra_config)
        self.log_path = os.path.join(self.dir, "moonport.log")
        # each role set connects to NATS as its own user (infra/local/nats_auth.py); all roles: `moonport`
        self.env = {**os.environ, **stack.env(), **stack.nats_env(roles), **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def command(self, *args: str) -> list[str]:
        return [self.binary, *args, "--config", self.config_path]

    def start(self, wait_ready: bool = True, timeout: float = 30) -> "Moonport":
        argv = self.command("serve") + (["--roles", self.roles] if self.roles else [])
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def ready(self) -> tuple[int, dict | None]:
        try:
            with _opener.open(self.admin_url + "/readyz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
        except Exception:
            return 0, None

    def wait_ready(self, timeout: float = 30, status: int = 200) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"moonport exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready()[0] == status:
                return
            time.sleep(0.05)
        raise RuntimeError(f"moonport not ready ({status}) within {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            rc = self.proc.returncode
        self._log.close()
        return rc

    def notifications(self) -> list[dict]:
        """The notifications this process delivered so far (its file adapter's directory), oldest first."""
        out = []
        try:
            names = [n for n in os.listdir(self.notifications_dir) if n.endswith(".json")]
        except FileNotFoundError:
            return out
        for name in names:
            with open(os.path.join(self.notifications_dir, name)) as f:
                out.append(json.load(f))
        return sorted(out, key=lambda n: (n["created_at"], n["id"]))

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    def metrics(self) -> str:
        """The process's /metrics text."""
        with _opener.open(self.admin_url + "/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float | None:
        """One series' value from /metrics (labels must match exactly as given, in any order), or None."""
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
            if all(got.get(k) == str(v) for k, v in labels.items()):
                return float(value)
        return None

    def log_lines(self) -> list[dict]:
        """The process's JSON log lines so far (non-JSON lines are skipped)."""
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a moonport subcommand with this process's config and environment."""
        return subprocess.run(self.command(*args), cwd=ROOT, env=self.env, input=stdin, capture_output=True,
                              text=True, timeout=timeout)
