#!/usr/bin/env python3
"""Runs every moonport test against real servers and prints one summary line.

  1. unit tests (cmocka, no servers)                    ctest -L unit
     and the Lua checks: luacheck, `moonport bff check`, and every BFF
     client's offline tests (`moonport bff test`)
  2. starts NATS (JetStream), Postgres and Redis on free ports in a temp dir
  3. integration tests (cmocka, against those servers)  ctest -L integration
  4. starts `moonport serve` with every role, runs the black-box HTTP tests
     in tests/blackbox/ against it, then stops it with SIGTERM (it must exit 0)
  5. stops the servers and removes the temp dir

Only when asked for (--only cluster, `make test-cluster`; --only chaos,
`make chaos`): a stack whose NATS is a 3-node cluster, and the tests in
tests/cluster/ or tests/chaos/ (faults under load), which start the
platform's processes themselves (replicas of every role).

Usage: run_tests.py [--build build] [--only unit,lua,integration,blackbox,cluster,chaos] [-k pattern]
Exit status: 0 when everything passed.
"""
from __future__ import annotations

import argparse, os, re, subprocess, sys, time, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "infra", "local"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))  # the load, the replicas and the ledger, for tests/chaos

import context  # noqa: E402
import stack as stacklib  # noqa: E402
from moonport import Moonport  # noqa: E402


class Tally:
    def __init__(self):
        self.parts: list[tuple[str, int, int]] = []

    def add(self, name: str, passed: int, failed: int) -> None:
        self.parts.append((name, passed, failed))

    @property
    def failed(self) -> int:
        return sum(f for _, _, f in self.parts)

    def line(self, secs: float) -> str:
        passed = sum(p for _, p, _ in self.parts)
        detail = ", ".join(f"{n} {p}/{p + f}" for n, p, f in self.parts)
        verdict = "OK" if self.failed == 0 else "FAILED"
        return f"moonport tests: {verdict}: {passed} passed, {self.failed} failed ({detail}) in {secs:.1f}s"


def ctest(build: str, label: str, env: dict, pattern: str | None) -> tuple[int, int]:
    argv = ["ctest", "--test-dir", build, "-L", label, "--output-on-failure", "-j", "2"]
    if pattern:
        argv += ["-R", pattern]
    print(f"\n=== {label} tests ===", flush=True)
    r = subprocess.run(argv, env=env, text=True, capture_output=True)
    sys.stdout.write(r.stdout[-20000:])
    sys.stdout.write(r.stderr[-5000:])
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", r.stdout)
    if not m:
        if "No tests were found" in r.stdout:
            return 0, 0
        return 0, 1  # ctest itself failed: count it as a failure, never as a pass
    failed, total = int(m.group(2)), int(m.group(3))
    return total - failed, failed


def lua(binary: str) -> tuple[int, int]:
    """luacheck, `bff check` against the services in this binary, and each client's offline tests."""
    print("\n=== Lua: luacheck, bff check, bff test ===", flush=True)
    passed = failed = 0
    steps = [["luacheck", "-q", "--no-color", "scripts/lua", "tests/lua", "bench/lua"],
             [binary, "bff", "check", "scripts/lua"]]
    for base in ("scripts/lua", "tests/lua/engine"):
        for client in sorted(os.listdir(os.path.join(ROOT, base))):
            d = os.path.join(ROOT, base, client)
            if os.path.isdir(d) and any(f.endswith("_test.lua") for f in os.listdir(d)):
                steps.append([binary, "bff", "test", os.path.join(base, client)])
    for argv in steps:
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        last = out.splitlines()[-1] if out else ""
        print(f"{'ok  ' if r.returncode == 0 else 'FAIL'} {' '.join(argv[1:] if argv[0] == binary else argv)}: {last}")
        if r.returncode != 0:
            print(out[-4000:])
            failed += 1
        else:
            passed += 1
    return passed, failed


def blackbox(pattern: str | None, folder: str = "blackbox") -> tuple[int, int]:
    print(f"\n=== {folder} tests ===", flush=True)
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [f"*{pattern}*"]
    suite = loader.discover(os.path.join(ROOT, "tests", folder), pattern="test_*.py",
                            top_level_dir=os.path.join(ROOT, "tests", folder))
    if suite.countTestCases() == 0:  # a -k that matches nothing must not read as a pass
        print(f"no {folder} test matches {pattern!r}", flush=True)
        return 0, 1
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.testsRun - bad, bad


def cluster(binary: str, pattern: str | None, folder: str = "cluster") -> tuple[int, int]:
    """tests/<folder>/ (cluster, chaos) on a stack of its own whose NATS is a 3-node cluster; no shared moonport."""
    stack = stacklib.temp_stack(nats_nodes=3)
    print(f"\nstarting a 3-node NATS cluster, Postgres and Redis in {stack.root}", flush=True)
    try:
        stack.start()
        context.STACK, context.BINARY, context.MOONPORT = stack, binary, None
        return blackbox(pattern, folder)
    finally:
        stack.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="unit,lua,integration,blackbox")
    ap.add_argument("-k", dest="pattern", default=None)
    args = ap.parse_args()
    parts = set(args.only.split(","))
    build = os.path.abspath(args.build)
    binary = os.path.join(build, "moonport")
    tally = Tally()
    t0 = time.time()

    if "unit" in parts:
        tally.add("unit", *ctest(build, "unit", dict(os.environ), args.pattern))
    if "lua" in parts:
        tally.add("lua", *lua(binary))

    stack = None
    if parts & {"integration", "blackbox"}:
        stack = stacklib.temp_stack()
        print(f"\nstarting NATS, Postgres and Redis in {stack.root}", flush=True)
        stack.start()
    try:
        if "integration" in parts:
            tally.add("integration", *ctest(build, "integration", {**os.environ, **stack.env()}, args.pattern))
        if "blackbox" in parts:
            context.STACK, context.BINARY = stack, binary
            mp = Moonport(stack, binary)
            try:
                mp.start()
                context.MOONPORT = mp
                passed, failed = blackbox(args.pattern)
            except Exception as e:  # could not even start: that is a failure, with the log
                print(f"black-box tests could not run: {e}", flush=True)
                passed, failed = 0, 1
            rc = mp.stop()
            if rc != 0:
                print(f"moonport did not drain and exit 0 on SIGTERM (exit {rc}):\n{mp.log_tail()}", flush=True)
                failed += 1
            else:
                passed += 1  # the graceful drain is itself a check
            tally.add("blackbox", passed, failed)
    finally:
        if stack:
            stack.stop()

    for folder in ("cluster", "chaos"):
        if folder in parts:
            tally.add(folder, *cluster(binary, args.pattern, folder))

    print("\n" + tally.line(time.time() - t0), flush=True)
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
