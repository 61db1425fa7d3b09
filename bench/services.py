"""The services section of `make bench`: each read subject straight over NATS
(64 in flight, no gateway) beside pgbench running the very statement that
subject ran, on the same Postgres, in the same run.

The pgbench script is not written by hand: while mp-ceiling drives a subject,
pg_stat_activity is sampled for the service's connections (application_name
moonport-<service>) and the statement seen most is what pgbench runs, with the
subject's own parameter values, prepared (-M prepared), as the service now
does. So the comparison cannot drift from the code. The scripts of the last
run are kept under bench/services/ for reading.
"""
from __future__ import annotations

import collections, json, os, re, subprocess, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "services")

# pgbench clients: two per core is where Postgres on this 2-core box peaks for one-row reads (8 measured no
# better and noisier); the services' pools are 4-8 connections
PGBENCH_CLIENTS = 4


def subjects(uid: str) -> list[dict]:
    """(label, subject, body, service, parameter values of its statement in $n order)."""
    return [
        {"label": "user.v1.get", "subject": "user.v1.get", "body": "{}", "service": "user", "params": [uid]},
        {"label": "product.v1.list tag=featured", "subject": "product.v1.list",
         "body": json.dumps({"tag": "featured", "limit": 8}), "service": "product", "params": ["featured", "9"]},
        {"label": "order.v1.list", "subject": "order.v1.list", "body": "{}", "service": "order",
         "params": [uid, "21"]},
        {"label": "notification.v1.count", "subject": "notification.v1.count", "body": json.dumps({"unread": True}),
         "service": "notification", "params": [uid]},
        {"label": "product.v1.list q=lamp", "subject": "product.v1.list", "body": json.dumps({"q": "lamp"}),
         "service": "product", "params": ["lamp", "21"]},
    ]


def ceiling(build: str, nats_url: str, subject: str, body: str, seconds: float, uid: str, inflight: int,
            extra: list[str] | None = None) -> dict:
    argv = [os.path.join(build, "tests", "mp-ceiling"), "--nats", nats_url, "--subject", subject, "--body", body,
            "--inflight", str(inflight), "--seconds", str(seconds), "--sub", uid] + (extra or [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode:
        raise SystemExit(f"mp-ceiling {subject}: {r.stderr}")
    out = json.loads(r.stdout)
    if out["failed"]:
        raise SystemExit(f"services bench: {subject} had {out['failed']} failed calls: {r.stderr.strip()}")
    return out


def sample_statements(st, service: str, stop: threading.Event, seen: collections.Counter) -> None:
    sql = ("SELECT query FROM pg_stat_activity WHERE application_name = 'moonport-%s' AND state = 'active' "
           "AND query NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK', 'SELECT 1')" % service)
    while not stop.is_set():
        for line in st.psql(sql, superuser=True).split("\n"):
            if line.strip():
                seen[line.strip()] += 1
        time.sleep(0.3)  # psql is a process: sample lightly, the service shares the cores


def pgbench_script(statement: str, name: str) -> str:
    """The statement with $n as pgbench variables :pn, written under bench/services/."""
    os.makedirs(SCRIPTS, exist_ok=True)
    # pgbench reads ":name" as a variable even inside a string literal ('HH24:MI:SS'): split such colons out of
    # the literal ('HH24' || ':' || 'MI'), which the planner folds back into the same constant once, at PREPARE
    def literal(m: re.Match) -> str:
        return re.sub(r":(?=[A-Za-z_])", "' || ':' || '", m.group(0))
    text = re.sub(r"'(?:[^']|'')*'", literal, statement)
    text = re.sub(r"\$(\d+)", r":p\1", text).rstrip(";") + ";\n"
    path = os.path.join(SCRIPTS, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".sql")
    with open(path, "w") as f:
        f.write(f"-- the statement {name} ran in the last `make bench` (sampled from pg_stat_activity)\n" + text)
    return path


def pgbench(st, path: str, params: list[str], seconds: float) -> dict:
    from stack import pg_bindir, HOST  # noqa: E402 (infra/local on sys.path via run.py)
    argv = [os.path.join(pg_bindir(), "pgbench"), "-n", "-M", "prepared", "-c", str(PGBENCH_CLIENTS), "-j", "2",
            "-T", str(int(seconds)), "-f", path, "-h", HOST, "-p", str(st.pg_port), "-U", "moonport", "moonport"]
    for i, v in enumerate(params, 1):
        argv += ["-D", f"p{i}={v}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode:
        raise SystemExit(f"pgbench {path}: {r.stderr.strip()}")
    tps = re.search(r"tps = ([\d.]+) \(without initial", r.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", r.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench {path}: {failed.group(1)} failed transactions")
    return {"tps": float(tps.group(1)), "lat_ms": float(lat.group(1)) if lat else 0.0}


def run(st, build: str, nats_url: str, uid: str, seconds: float, inflight: int, order_body: str) -> list[dict]:
    rows = []
    for s in subjects(uid):
        ceiling(build, nats_url, s["subject"], s["body"], 2, uid, inflight)  # warm-up: plans, caches
        seen: collections.Counter = collections.Counter()
        stop = threading.Event()
        t = threading.Thread(target=sample_statements, args=(st, s["service"], stop, seen))
        t.start()
        print(f"services: {s['label']}, {inflight} in flight", flush=True)
        try:
            svc = ceiling(build, nats_url, s["subject"], s["body"], seconds, uid, inflight)
        finally:
            stop.set()
            t.join()
        if not seen:
            raise SystemExit(f"services bench: no statement of moonport-{s['service']} seen for {s['label']}")
        statement = seen.most_common(1)[0][0]
        nparams = len(set(re.findall(r"\$(\d+)", statement)))
        if nparams != len(s["params"]):
            raise SystemExit(f"services bench: {s['label']} ran a statement with {nparams} parameters, the bench "
                             f"knows values for {len(s['params'])}: {statement[:200]}")
        print(f"services: pgbench, the same statement", flush=True)
        pg = pgbench(st, pgbench_script(statement, s["label"]), s["params"], seconds)
        rows.append({"label": s["label"], "svc": svc, "pg": pg, "ratio": svc["calls_per_s"] / pg["tps"]})
    rows.append(nats_ceiling(build, nats_url, seconds, inflight))
    print("services: order.v1.create (tok_ok), one Idempotency-Key per call", flush=True)
    create = ceiling(build, nats_url, "order.v1.create", order_body, seconds, uid, inflight, ["--idempotent"])
    rows.append({"label": "order.v1.create (tok_ok)", "svc": create, "pg": None, "ratio": None,
                 "note": "(several statements and two services: no single SQL)"})
    return rows


def nats_ceiling(build: str, nats_url: str, seconds: float, inflight: int) -> dict:
    """The other floor the services stand on: NATS request-reply itself, a C responder answering ~200 bytes
    from its delivery callback, the same mp-ceiling client and in-flight count."""
    echo = subprocess.Popen([os.path.join(build, "tests", "mp-echo"), "--nats", nats_url, "--inline", "--bytes",
                             "200", "--send-asap", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in echo.stdout.readline()
        print("services: NATS request-reply alone (echo responder)", flush=True)
        argv = [os.path.join(build, "tests", "mp-ceiling"), "--nats", nats_url, "--subject", "echo.v1.product",
                "--inflight", str(inflight), "--seconds", str(seconds), "--send-asap", "1"]
        out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    finally:
        echo.terminate()
        echo.wait()
    return {"label": "NATS request-reply alone (C echo responder, 200 B)", "svc": out, "pg": None, "ratio": None,
            "note": "(no database: the NATS ceiling)"}


def table(rows: list[dict], inflight: int) -> list[str]:
    lines = [f"| subject ({inflight} in flight over NATS) | requests/s | p50 | p99 | pgbench, the same statement "
             f"(-M prepared, {PGBENCH_CLIENTS} clients) | service / pgbench | target |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["svc"]
        pg = f"{r['pg']['tps']:.0f}/s" if r["pg"] else r.get("note", "")
        ratio = f"{100 * r['ratio']:.0f}%" if r["ratio"] is not None else ""
        target = "at least 60%" if r["ratio"] is not None else ""
        lines.append(f"| {r['label']} | {s['calls_per_s']:.0f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {pg} "
                     f"| {ratio} | {target} |")
    return lines
