"""Deployment files, checked without Docker or a cluster: the Dockerfile,
docker-compose.yml and the Helm chart in infra/helm/moonport must agree with
the code (its roles, its config keys, its ports and probes) and with each
other. Config keys and values are checked by the moonport binary itself:
`moonport migrate --roles gateway` loads and validates a configuration and
then has nothing to migrate."""
from __future__ import annotations

import os, re, shutil, subprocess, sys, tempfile, unittest

try:
    import yaml
except ImportError:  # a python3 other than Debian's does not see python3-yaml (infra/deps.txt)
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

try:
    import context  # tests/harness, on the path when run_tests.py runs us
except ImportError:
    context = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "infra", "helm", "moonport")
# roles planned beyond the ones in the image; the chart lists them disabled until they land
PLANNED_ROLES = ["gateway", "auth", "user", "product", "order", "payment", "notification"]
CONFIG_IN_IMAGE = "/etc/moonport/config/moonport.yaml"
GATEWAY_HTTP_DRAIN_S = 10  # services/gateway/gateway.c: gateway_stop gives open requests 10 s


def read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def load_yaml(*parts: str):
    return yaml.safe_load(read(*parts))


def registered_roles() -> list[str]:
    """The services compiled into the binary: mp_add_service(<name>) lines in CMakeLists.txt."""
    return re.findall(r"^\s*mp_add_service\((\w+)\)", read("CMakeLists.txt"), re.M)


def seconds(duration: str) -> float:
    """A moonport duration (250ms, 10s, 15m, 1h) in seconds."""
    m = re.fullmatch(r"(\d+)\s*(ms|s|m|h|d)?", str(duration))
    assert m, f"not a duration: {duration!r}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 0.001}[m.group(2)]


def deep_merge(defaults: dict, over: dict) -> dict:
    out = dict(defaults)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def values() -> dict:
    return load_yaml("infra", "helm", "moonport", "values.yaml")


def effective_roles(v: dict) -> dict[str, dict]:
    """Each role's entry over roleDefaults, as the chart's `merge` computes it."""
    return {name: deep_merge(v["roleDefaults"], role or {}) for name, role in v["roles"].items()}


def templates() -> dict[str, str]:
    d = os.path.join(CHART, "templates")
    return {n: read("infra", "helm", "moonport", "templates", n) for n in sorted(os.listdir(d))}


def resolve(tree, path: list[str]) -> bool:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def binary() -> str | None:
    b = getattr(context, "BINARY", None) or os.path.join(ROOT, "build", "moonport")
    return b if os.path.isfile(b) and os.access(b, os.X_OK) else None


def check_config(test: unittest.TestCase, config_text: str, env: dict[str, str]) -> tuple[int, str]:
    """Runs `moonport migrate --roles gateway` on a config and environment; (exit code, stderr)."""
    b = binary()
    if b is None:
        test.skipTest("the moonport binary is not built (make build)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "moonport.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MOONPORT_")}
        r = subprocess.run([b, "migrate", "--config", path, "--roles", "gateway"], env={**clean, **env},
                           capture_output=True, text=True, timeout=30)
    return r.returncode, r.stderr


def env_var_is_config_key(test: unittest.TestCase, var: str) -> bool:
    """True when MOONPORT_<X> is the override of a key the binary reads: some spelling of <X> with
    dots for underscores is a key it does not call unknown."""
    if var == "MOONPORT_CONFIG":  # the config file itself (core/serve.c)
        return True
    words = var[len("MOONPORT_"):].lower().split("_")
    for mask in range(1, 1 << (len(words) - 1)):  # at least one dot: keys live in sections
        key = words[0]
        for i, w in enumerate(words[1:]):
            key += ("." if mask >> i & 1 else "_") + w
        text = ""
        for depth, part in enumerate(key.split(".")):
            text += "  " * depth + part + ":" + ("\n" if depth < key.count(".") else " x\n")
        rc, err = check_config(test, text, {})
        if "unknown key" not in err:
            return True
    return False


def secret_files(env: dict[str, str], tmp: str) -> dict[str, str]:
    """The environment with every *_FILE secret pointed at a readable stand-in file."""
    stand_in = os.path.join(tmp, "secret")
    with open(stand_in, "w") as f:
        f.write("x\n")
    return {k: (stand_in if k.endswith("_FILE") and k != "MOONPORT_GATEWAY_ROUTES_FILE" else str(v))
            for k, v in env.items()}


# ---------------------------------------------------------------------------- Helm chart ---

class ChartFilesTest(unittest.TestCase):
    def test_chart_yaml_is_v2_and_deploys_the_cmake_version(self):
        chart = load_yaml("infra", "helm", "moonport", "Chart.yaml")
        self.assertEqual(chart["apiVersion"], "v2")
        self.assertEqual(chart["name"], "moonport")
        version = re.search(r"project\(moonport VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
        self.assertEqual(str(chart["appVersion"]), version, "Chart.yaml appVersion must follow CMakeLists.txt")
        self.assertRegex(str(chart["version"]), r"^\d+\.\d+\.\d+")

    def test_routes_copy_equals_config_routes(self):
        self.assertEqual(read("infra", "helm", "moonport", "files", "routes.yaml"), read("config", "routes.yaml"),
                         "infra/helm/moonport/files/routes.yaml must be a copy of config/routes.yaml: "
                         "cp config/routes.yaml infra/helm/moonport/files/routes.yaml")

    def test_template_actions_are_balanced(self):
        for name, text in templates().items():
            self.assertEqual(text.count("{{"), text.count("}}"), f"{name}: unbalanced braces")
            stack = []
            for m in re.finditer(r"\{\{-?\s*(.*?)\s*-?\}\}", text, re.S):
                action = m.group(1)
                if action.startswith("/*"):
                    self.assertTrue(action.endswith("*/"), f"{name}: unterminated comment")
                    continue
                word = (action.split() or [""])[0]
                line = text.count("\n", 0, m.start()) + 1
                if word in ("if", "range", "with", "define", "block"):
                    stack.append((word, line))
                elif word == "else":
                    self.assertTrue(stack and stack[-1][0] in ("if", "with", "range"), f"{name}:{line}: stray else")
                elif word == "end":
                    self.assertTrue(stack, f"{name}:{line}: end without an open block")
                    stack.pop()
            self.assertEqual(stack, [], f"{name}: blocks never closed: {stack}")

    def test_every_values_path_in_the_templates_exists(self):
        v = values()
        union = v["roleDefaults"]
        for role in v["roles"].values():
            union = deep_merge(union, role or {})
        for name, text in templates().items():
            for m in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
                path = m.group(1).split(".")[1:]
                self.assertTrue(resolve(v, path), f"{name}: .Values.{'.'.join(path)} is not in values.yaml")
            for m in re.finditer(r"\$(?:r|role)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
                path = m.group(1).split(".")[1:]
                self.assertTrue(resolve(union, path),
                                f"{name}: ${'.'.join(['r'] + path)} is in neither roleDefaults nor a role")

    def test_every_role_setting_is_used_by_a_template(self):
        used = set(re.findall(r"\$r\.([A-Za-z_]+)", "".join(templates().values())))
        unused = sorted(set(values()["roleDefaults"]) - used)
        self.assertEqual(unused, [], "roleDefaults settings no template reads")


class ValuesTest(unittest.TestCase):
    def setUp(self):
        self.v = values()
        self.roles = effective_roles(self.v)

    def test_roles_are_the_images_roles_plus_the_planned_ones_disabled(self):
        registered = registered_roles()
        self.assertIn("gateway", registered)
        for name in PLANNED_ROLES + registered:
            self.assertIn(name, self.v["roles"], f"values.yaml roles has no entry for {name}")
        for name, role in self.v["roles"].items():
            self.assertIs(role.get("enabled"), name in registered,
                          f"roles.{name}.enabled must be {name in registered}: "
                          f"{'it is' if name in registered else 'it is not'} a role of the image (CMakeLists.txt)")

    def test_probes_are_healthz_and_readyz_on_the_admin_port(self):
        self.assertEqual(self.v["ports"]["admin"], 9090)
        self.assertEqual(self.v["ports"]["http"], 8080)
        for name, r in self.roles.items():
            self.assertEqual(r["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"}, name)
            self.assertEqual(r["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"}, name)
        deployment = templates()["deployment.yaml"]
        self.assertIn("toYaml $r.livenessProbe", deployment)
        self.assertIn("toYaml $r.readinessProbe", deployment)
        self.assertRegex(deployment, r"- name: admin\s+containerPort: \{\{ int \$\.Values\.ports\.admin \}\}")

    def test_grace_period_outlasts_prestop_and_drain(self):
        drain = seconds(self.v["config"]["shutdown"]["drain"])
        for name, r in self.roles.items():
            budget = r["preStopSleepSeconds"] + drain + GATEWAY_HTTP_DRAIN_S
            self.assertGreater(r["terminationGracePeriodSeconds"], budget,
                               f"roles.{name}: terminationGracePeriodSeconds must exceed preStop + drain + "
                               f"{GATEWAY_HTTP_DRAIN_S}s")

    def test_role_defaults_survive_helms_merge(self):
        """sprig's merge treats false, 0 and [] in a role entry as unset: a default true or a non-empty
        default list could never be turned off from a role, so roleDefaults may hold neither."""
        def walk(node, path):
            if node is True:
                self.fail(f"roleDefaults.{path} defaults to true")
            if isinstance(node, list) and node:
                self.fail(f"roleDefaults.{path} defaults to a non-empty list")
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, f"{path}.{k}" if path else k)
        walk(self.v["roleDefaults"], "")

    def test_pods_run_as_the_images_user_on_a_read_only_root(self):
        uid = int(re.search(r"^USER (\d+)", read("Dockerfile"), re.M).group(1))
        pod, ctr = self.v["podSecurityContext"], self.v["securityContext"]
        self.assertIs(pod["runAsNonRoot"], True)
        self.assertEqual(pod["runAsUser"], uid)
        self.assertIs(ctr["readOnlyRootFilesystem"], True)
        self.assertIs(ctr["allowPrivilegeEscalation"], False)

    def test_only_auth_gets_signing_keys_and_gateway_the_http_port(self):
        self.assertEqual(sorted(n for n, r in self.roles.items() if r["signingKeys"]), ["auth"])
        self.assertEqual(sorted(n for n, r in self.roles.items() if r["http"]), ["gateway"])
        self.assertNotIn("postgres", self.roles["gateway"]["uses"])
        self.assertIn("postgres", self.roles["auth"]["uses"])
        helpers = templates()["_helpers.tpl"]
        self.assertRegex(helpers, r"MOONPORT_AUTH_GENERATE_KEY\s+value: \"false\"")

    def test_chart_config_is_accepted_by_moonport(self):
        text = yaml.safe_dump(self.v["config"], sort_keys=False)
        rc, err = check_config(self, text, {})
        self.assertEqual(rc, 0, f"values.yaml `config` is not a valid moonport.yaml:\n{err}")

    def test_environment_the_chart_sets_names_real_config_keys(self):
        names = set(re.findall(r"name: (MOONPORT_[A-Z0-9_]+)", "".join(templates().values())))
        self.assertTrue(names)
        for var in sorted(names):
            self.assertTrue(env_var_is_config_key(self, var), f"the chart sets {var}, which moonport does not read")


# ---------------------------------------------------------------------------- Dockerfile ---

def dockerfile_stages() -> list[str]:
    text = read("Dockerfile").replace("\\\n", " ")
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def apt_packages(stage: str) -> list[str]:
    m = re.search(r"apt-get install -y --no-install-recommends(.*?)(&&|$)", stage, re.M | re.S)
    return m.group(1).split() if m else []


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the build context (a pattern matches it or a parent)."""
    def regex(p: str) -> str:
        out, i = "", 0
        while i < len(p):
            if p.startswith("**", i):
                out, i = out + ".*", i + 2
            elif p[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif p[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(p[i]), i + 1
        return out
    parts, excluded = path.split("/"), False
    for p in patterns:
        neg = p.startswith("!")
        p = p[1:] if neg else p
        p = os.path.normpath(p.strip("/"))
        for n in range(1, len(parts) + 1):
            if re.fullmatch(regex(p), "/".join(parts[:n])):
                excluded = not neg
                break
    return excluded


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.stages = dockerfile_stages()

    def test_two_debian_12_slim_stages(self):
        self.assertEqual(len(self.stages), 2)
        for s in self.stages:
            self.assertTrue(s.startswith("debian:12-slim"), s[:40])

    def test_build_stage_uses_only_listed_debian_packages(self):
        listed = set(read("infra", "deps.txt").split())
        pkgs = apt_packages(self.stages[0])
        self.assertIn("cmake", pkgs)
        self.assertEqual(sorted(set(pkgs) - listed), [], "build packages missing from infra/deps.txt")
        self.assertRegex(self.stages[0], r"cmake -S \. -B build -DCMAKE_BUILD_TYPE=Release")

    def test_runtime_stage_runs_moonport_as_uid_10001(self):
        rt = self.stages[1]
        self.assertRegex(rt, r"\nUSER 10001(:10001)?\n")
        self.assertRegex(rt, r"useradd [^\n]*--uid 10001")
        self.assertIn('ENTRYPOINT ["moonport"]', rt)
        self.assertIn(f'CMD ["serve", "--config", "{CONFIG_IN_IMAGE}"]', rt)
        self.assertRegex(rt, r"\nEXPOSE 8080 9090\n")
        self.assertRegex(rt, r"COPY --from=build /src/build/moonport /usr/local/bin/moonport")
        self.assertRegex(rt, r"COPY --from=build /src/config/ /etc/moonport/config/")
        self.assertIn("mkdir -p scripts/lua", self.stages[0])
        self.assertIn("libssl3", apt_packages(rt))
        for tool in ("build-essential", "cmake", "pkg-config"):
            self.assertNotIn(tool, apt_packages(rt))

    def test_runtime_packages_provide_every_library_the_binary_needs(self):
        b = binary()
        if b is None or not all(shutil.which(t) for t in ("dpkg", "ldd", "objdump")):
            self.skipTest("needs the built binary, dpkg, ldd and objdump")
        runtime = set(apt_packages(self.stages[1]))
        in_base_image = {"libc6", "libgcc-s1"}
        needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(["objdump", "-p", b], capture_output=True,
                                                               text=True, check=True).stdout)
        paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(["ldd", b], capture_output=True, text=True,
                                                                          check=True).stdout, re.M))
        self.assertIn("libpq.so.5", needed)
        for lib in needed:
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.", lib):  # a sanitizer build (make test-asan)
                continue
            self.assertIn(lib, paths, f"ldd cannot find {lib}")
            real = os.path.realpath(paths[lib])
            owners = set()
            for candidate in {paths[lib], real, real.replace("/usr/lib/", "/lib/", 1)}:
                r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                for line in r.stdout.splitlines() if r.returncode == 0 else []:
                    owners |= {o.strip().split(":")[0] for o in line.rsplit(": ", 1)[0].split(",")}
            self.assertTrue(owners, f"no Debian package owns {real}")
            if not owners & in_base_image:
                self.assertTrue(owners & runtime, f"{lib} comes from {sorted(owners)}, which the Dockerfile's "
                                                  "runtime stage does not install")

    def test_dockerignore_keeps_what_the_build_reads(self):
        patterns = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
        for path in ("CMakeLists.txt", "cmake/deps.cmake", "core/serve.c", "core/include/mp/cfg.h",
                     "services/auth/auth.c", "services/auth/migrations/0001_accounts_sessions.sql",
                     "bff/CMakeLists.txt", "tests/CMakeLists.txt", "config/moonport.yaml", "config/routes.yaml"):
            self.assertTrue(os.path.exists(os.path.join(ROOT, path)), path)
            self.assertFalse(dockerignored(patterns, path), f".dockerignore leaves out {path}, which the build needs")
        for path in (".git/HEAD", "build/moonport", ".run/moonport.log", "infra/compose/secrets/postgres_password"):
            self.assertTrue(dockerignored(patterns, path), f".dockerignore should leave out {path}")


# ---------------------------------------------------------------------------- compose ---

class ComposeTest(unittest.TestCase):
    def setUp(self):
        self.c = load_yaml("docker-compose.yml")
        self.svc = self.c["services"]
        self.roles = effective_roles(values())

    def test_dependencies_are_the_official_images_with_healthchecks(self):
        nats, pg, redis = self.svc["nats"], self.svc["postgres"], self.svc["redis"]
        self.assertRegex(nats["image"], r"^nats:2\.10")
        self.assertIn("-js", nats["command"])
        self.assertEqual(nats["command"][nats["command"].index("-m") + 1], "8222")
        self.assertIn("8222/healthz", " ".join(nats["healthcheck"]["test"]))
        self.assertEqual(pg["image"], "postgres:15")
        self.assertIn("pg_isready", pg["healthcheck"]["test"])
        self.assertEqual(redis["image"], "redis:7")
        self.assertIn("redis-cli ping", " ".join(redis["healthcheck"]["test"]))

    def test_postgres_init_creates_the_role_database_and_pg_trgm(self):
        mounts = [v.split(":") for v in self.svc["postgres"]["volumes"] if v.startswith("./")]
        init = [m for m in mounts if m[1].startswith("/docker-entrypoint-initdb.d/")]
        self.assertEqual(len(init), 1, mounts)
        sql = read(init[0][0])
        self.assertRegex(sql, r"CREATE ROLE moonport LOGIN NOSUPERUSER")
        self.assertRegex(sql, r"CREATE DATABASE moonport OWNER moonport")
        self.assertRegex(sql, r"CREATE EXTENSION IF NOT EXISTS pg_trgm")
        self.assertIn("/run/secrets/postgres_password", sql)
        self.assertIn("postgres_password", self.svc["postgres"]["secrets"])

    def test_secrets_are_generated_files_outside_git(self):
        script = read("infra", "compose", "init-secrets.sh")
        made = re.search(r"for name in ([^;]+);", script).group(1).split()
        for name, s in self.c["secrets"].items():
            self.assertEqual(s["file"], f"./infra/compose/secrets/{name}")
            self.assertIn(name, made, f"infra/compose/init-secrets.sh does not create {name}")
        ignore = read("infra", "compose", "secrets", ".gitignore").split()
        self.assertIn("*", ignore)

    def test_one_service_per_enabled_role_running_only_that_role(self):
        enabled = sorted(n for n, r in values()["roles"].items() if r.get("enabled"))
        drain = seconds(values()["config"]["shutdown"]["drain"])
        for name in enabled:
            self.assertIn(name, self.svc, f"docker-compose.yml has no service for the {name} role")
            s = self.svc[name]
            self.assertEqual(s["build"], ".")
            self.assertEqual(s["command"], ["serve", "--config", CONFIG_IN_IMAGE, "--roles", name])
            self.assertEqual(s["depends_on"]["nats"]["condition"], "service_healthy", name)
            self.assertGreater(seconds(s["stop_grace_period"]), drain + GATEWAY_HTTP_DRAIN_S, name)
            if "postgres" in self.roles[name]["uses"]:
                self.assertEqual(s["depends_on"]["postgres"]["condition"], "service_healthy", name)
                self.assertEqual(s["depends_on"]["migrate"]["condition"], "service_completed_successfully", name)
                self.assertIn("postgres_password", s["secrets"], name)
                self.assertEqual(s["environment"]["MOONPORT_POSTGRES_PASSWORD_FILE"], "/run/secrets/postgres_password")
        self.assertIn("8080:8080", self.svc["gateway"]["ports"])
        roles_in_compose = sorted(n for n, s in self.svc.items() if "--roles" in s.get("command", []))
        self.assertEqual(roles_in_compose, enabled, "compose role services and the chart's enabled roles differ")

    def test_migrate_is_a_one_shot_before_the_roles(self):
        m = self.svc["migrate"]
        self.assertEqual(m["command"][:3], ["migrate", "--config", CONFIG_IN_IMAGE])
        self.assertEqual(m["restart"], "no")
        self.assertEqual(m["depends_on"]["postgres"]["condition"], "service_healthy")

    def test_auth_generates_its_key_into_its_own_volume(self):
        auth = self.svc["auth"]
        env = auth["environment"]
        self.assertEqual(str(env["MOONPORT_AUTH_GENERATE_KEY"]).lower(), "true")
        volumes = {v.split(":")[1]: v.split(":")[0] for v in auth["volumes"]}
        self.assertIn(env["MOONPORT_AUTH_KEYS_DIR"], volumes)
        self.assertIn(volumes[env["MOONPORT_AUTH_KEYS_DIR"]], self.c["volumes"])
        others = [n for n, s in self.svc.items() if n != "auth" and any(
            str(v).startswith(volumes[env["MOONPORT_AUTH_KEYS_DIR"]] + ":") for v in s.get("volumes", []))]
        self.assertEqual(others, [], "only auth may mount the signing keys")

    def test_every_moonport_service_environment_is_accepted_by_moonport(self):
        """The image's config/moonport.yaml with each service's environment: known keys, valid values."""
        config = read("config", "moonport.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            for name, s in self.svc.items():
                env = s.get("environment") or {}
                if not any(k.startswith("MOONPORT_") for k in env):
                    continue
                for var in env:
                    self.assertTrue(env_var_is_config_key(self, var), f"{name}: moonport does not read {var}")
                rc, err = check_config(self, config, secret_files(env, tmp))
                self.assertEqual(rc, 0, f"{name}: moonport rejects its configuration:\n{err}")


if __name__ == "__main__":
    unittest.main()
