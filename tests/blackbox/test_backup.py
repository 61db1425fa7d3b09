"""Backups and disaster recovery (issue 11, docs/operations.md), black-box.

On a platform of its own (its own NATS and database, tests/blackbox/isolated.py):

  1. four shoppers place orders (Idempotency-Keys, one in five declined) for
     ten seconds; three seconds in, `moonport backup` runs as the operator's
     NATS user `backup` would;
  2. a restore is refused while the platform runs; the platform stops;
  3. damaged backups (a byte flipped in one archive, a broken manifest) are
     refused, and nothing changes; a restore that fails half-way (a
     database without pg_trgm) commits no schema;
  4. the disaster: every service schema dropped, the EVENTS stream deleted;
  5. `moonport restore`, then the platform starts again, and the ledger must
     hold: the orders GET returns are the backup's; every order ends
     confirmed or cancelled (the saga finishes what was in flight); stock is
     conserved per product (initial minus what confirmed orders hold is
     what is left, and what Product holds reserved is exactly that); every
     confirmed order was charged once and no payment is left without its
     order; and the platform takes new orders.
"""
from __future__ import annotations

import hashlib, json, os, random, shutil, subprocess, tempfile, threading, time, unittest, uuid

import context
import stack as stacklib
from catalog import Catalog
from helpers import new_user
from httpc import Client
from isolated import Isolated
from moonport import ROOT
from natsraw import Nats
from order_helpers import place_until_answered, wait_for

# every service that owns a schema: the folders with migrations
SCHEMAS = sorted(d for d in os.listdir(os.path.join(ROOT, "services"))
                 if os.path.isdir(os.path.join(ROOT, "services", d, "migrations")))
STOCK = 5000


def dump_rows(path: str, table: str, columns: list[str]) -> list[dict]:
    """The rows of `table` in a pg_dump archive, read with pg_restore (not from any database)."""
    exe = os.path.join(stacklib.pg_bindir(), "pg_restore")
    sql = subprocess.run([exe, "--data-only", f"--table={table}", "--file=-", path], capture_output=True, text=True,
                         check=True).stdout
    rows, inside = [], False
    for line in sql.splitlines():
        if line.startswith("COPY "):
            head = line[line.index("(") + 1:line.index(")")]
            names = [n.strip().strip('"') for n in head.split(",")]
            inside = True
        elif inside and line == "\\.":
            inside = False
        elif inside:
            values = dict(zip(names, line.split("\t")))
            rows.append({c: values[c] for c in columns})
    return rows


class BackupRestoreTest(unittest.TestCase):
    SHOPPERS = 4
    LOAD_S = 10
    BACKUP_AFTER_S = 3
    # a claim whose request died with the platform is freed soon after the restart, not after 10 minutes
    CONFIG = "order:\n  abandoned_claim_after: 3s\n"

    def setUp(self):
        self.iso = Isolated().start()
        self.addCleanup(self.iso.stop)
        self.mp = self.iso.moonport(extra_config=self.CONFIG).start()
        self.dir = tempfile.mkdtemp(prefix="moonport-backup-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.nats = Nats(self.iso.nats_url, name="backup-test")
        self.addCleanup(self.nats.close)

    # ---- helpers ------------------------------------------------------------------------------

    def tool(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """`moonport backup|restore ...` with the platform's configuration, as the NATS user `backup`."""
        self.iso.nats.nats_password("backup")
        env = {**self.mp.env, "MOONPORT_NATS_USER": "backup",
               "MOONPORT_NATS_PASSWORD_FILE": os.path.join(self.iso.nats.nats_secrets_dir(), "backup"), **(env or {})}
        return subprocess.run(self.mp.command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    def stream_info(self) -> dict:
        status, _, body = self.nats.request("$JS.API.STREAM.INFO.EVENTS", b"")
        return json.loads(body)

    def fingerprint(self) -> tuple:
        """What a refused restore must leave as it was: the schemas, the orders, the stream."""
        psql = self.iso.psql
        schemas = psql("SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace").strip()
        orders = psql("SELECT count(*), md5(string_agg(id::text || status, ',' ORDER BY id)) FROM \"order\".orders")
        return schemas, orders.strip(), self.stream_info().get("state", {}).get("last_seq")

    def shop(self, c: Client, token: str, products: list[str], stop: threading.Event, log: list, errors: list):
        rng = random.Random()
        try:
            while not stop.is_set():
                pay = "tok_declined" if rng.random() < 0.2 else "tok_ok"
                r = place_until_answered(c, token, [(rng.choice(products), rng.randint(1, 3))], pay,
                                         key=str(uuid.uuid4()), give_up_after=30)
                log.append((time.time(), r.status, r.json.get("id") if isinstance(r.json, dict) else None))
                time.sleep(0.02)
        except Exception as e:  # reported by the test thread
            errors.append(e)

    def load_with_backup(self, c: Client, tokens: list[str], products: list[str]):
        """Orders from every shopper for LOAD_S seconds, a backup BACKUP_AFTER_S seconds in. Returns the answers,
        when the backup ran, and its result."""
        stop, errors = threading.Event(), []
        logs = [[] for _ in tokens]
        threads = [threading.Thread(target=self.shop, args=(c, t, products, stop, logs[i], errors))
                   for i, t in enumerate(tokens)]
        t0 = time.time()
        for t in threads:
            t.start()
        time.sleep(self.BACKUP_AFTER_S)
        began = time.time()
        result = self.tool("backup", "--out", self.dir)
        ended = time.time()
        # orders go on for a while after the backup too, however long it took
        time.sleep(max(self.LOAD_S - (time.time() - t0), ended + 2.5 - time.time(), 0.0))
        stop.set()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        return [e for log in logs for e in log], began, ended, result

    # ---- the test ----------------------------------------------------------------------------------

    def test_backup_under_load_restores_a_platform_whose_ledger_holds(self):
        c = Client(self.mp.url)
        catalog = Catalog(self.mp)
        products = [catalog.add(f"Backup mug {i}", 900 + i, STOCK) for i in range(4)]
        shoppers = [new_user(c) for _ in range(self.SHOPPERS)]
        token_of = {acct["user_id"]: tokens["access_token"] for acct, tokens in shoppers}

        answers, began, ended, backup = self.load_with_backup(c, list(token_of.values()), products)
        self.assertEqual(backup.returncode, 0, backup.stdout + backup.stderr)
        placed = [(t, oid) for t, status, oid in answers if status == 201]
        before = {oid for t, oid in placed if t < began}
        after = {oid for t, oid in placed if t > ended + 1}
        self.assertTrue(before and after, f"orders before and after the backup: {len(before)}, {len(after)}")
        manifest = self.check_manifest(backup)

        # a restore is refused while the platform runs
        r = self.tool("restore", "--from", self.dir)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("running", r.stderr)
        self.assertEqual(self.mp.stop(), 0)
        self.check_damaged_backups_are_refused()

        # the disaster
        self.iso.psql("DROP SCHEMA " + ", ".join(f'"{s}"' for s in SCHEMAS) + " CASCADE")
        status, _, body = self.nats.request("$JS.API.STREAM.DELETE.EVENTS", b"")
        self.assertTrue(json.loads(body).get("success"), body)

        r = self.tool("restore", "--from", self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the snapshot may end a few messages after the state it was reported with, never before
        self.assertGreaterEqual(self.stream_info()["state"]["last_seq"], manifest["stream"]["last_seq"])
        dumped = {row["id"]: row for row in dump_rows(os.path.join(self.dir, "order.dump"), "orders",
                                                      ["id", "user_id", "status", "total_amount"])}
        self.assertLessEqual(before, set(dumped), "an order answered before the backup began is not in it")
        self.assertEqual(after & set(dumped), set(), "orders answered after the backup are in it")
        self.assertEqual(int(self.iso.psql("SELECT count(*) FROM \"order\".orders")), len(dumped))

        pending = sum(1 for row in dumped.values() if row["status"] == "pending")
        print(f"\n  {len(placed)} orders placed, {len(before)} before the backup, {len(after)} after it; the backup "
              f"has {len(dumped)}, {pending} pending; restore said:\n  " + r.stdout.strip().replace("\n", "\n  "),
              flush=True)
        self.mp = self.iso.moonport(extra_config=self.CONFIG).start()
        c = Client(self.mp.url)
        self.check_orders_match_the_dump(c, dumped, token_of)
        self.check_the_saga_finishes()
        self.check_stock_is_conserved(products)
        self.check_charged_once()
        # and the restored platform takes new orders
        r = place_until_answered(c, token_of[next(iter(token_of))], [(products[0], 1)], "tok_ok")
        self.assertEqual(r.status, 201, r.body)
        wait_for("the new order is confirmed", lambda: self.iso.psql(
            f"SELECT status FROM \"order\".orders WHERE id = '{r.json['id']}'").strip() == "confirmed", timeout=30)

    # ---- the checks ---------------------------------------------------------------------------------

    def check_manifest(self, backup: subprocess.CompletedProcess) -> dict:
        with open(os.path.join(self.dir, "manifest.json")) as f:
            text = f.read()
        m = json.loads(text)
        self.assertEqual(m["format"], "moonport-backup")
        self.assertEqual(sorted(s["name"] for s in m["schemas"]), SCHEMAS)
        self.assertEqual(m["stream"]["name"], "EVENTS")
        self.assertGreater(m["stream"]["last_seq"], 0)
        self.assertRegex(m["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        for name, f in m["files"].items():
            with open(os.path.join(self.dir, name), "rb") as fh:
                data = fh.read()
            self.assertEqual((len(data), hashlib.sha256(data).hexdigest()), (f["bytes"], f["sha256"]), name)
            self.assertEqual(os.stat(os.path.join(self.dir, name)).st_mode & 0o077, 0, f"{name} is private")
        # no secret in what the backup wrote or said
        with open(self.mp.env["MOONPORT_NATS_PASSWORD_FILE"]) as f:
            secret = f.read().strip()
        for where, what in (("manifest", text), ("output", backup.stdout + backup.stderr)):
            self.assertNotIn(secret, what, where)
            self.assertNotIn("password", what.lower(), where)
        return m

    def check_damaged_backups_are_refused(self):
        fp = self.fingerprint()
        flipped = os.path.join(tempfile.mkdtemp(prefix="moonport-backup-flipped-"), "b")
        self.addCleanup(shutil.rmtree, os.path.dirname(flipped), True)
        shutil.copytree(self.dir, flipped)
        with open(os.path.join(flipped, "order.dump"), "r+b") as f:
            f.seek(os.path.getsize(f.name) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))
        r = self.tool("restore", "--from", flipped)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("order.dump does not match the manifest", r.stderr)
        self.assertEqual(r.stdout, "", "nothing restored")

        with open(os.path.join(flipped, "manifest.json"), "w") as f:
            f.write('{"format": "moonport-backup", "format_version": 1, "schemas": [')
        r = self.tool("restore", "--from", flipped)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("manifest.json", r.stderr)
        self.assertEqual(self.fingerprint(), fp, "a refused restore changed something")
        self.check_a_failed_restore_commits_nothing()

    def check_a_failed_restore_commits_nothing(self):
        """Into a database without pg_trgm, Product's indexes fail after other schemas went in: none may stay."""
        db = f"mp_bare_{uuid.uuid4().hex[:8]}"
        stack = context.STACK
        stack.psql(f"CREATE DATABASE {db} OWNER {stacklib.DB_USER}", superuser=True, dbname="postgres")
        self.addCleanup(stack.psql, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", superuser=True, dbname="postgres")
        dsn = f"host={stacklib.HOST} port={stack.pg_port} dbname={db} user={stacklib.DB_USER}"
        r = self.tool("restore", "--from", self.dir, env={"MOONPORT_POSTGRES_DSN": dsn})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("nothing was committed", r.stderr)
        self.assertEqual(stack.psql("SELECT count(*) FROM pg_namespace WHERE nspname IN ('"
                                    + "','".join(SCHEMAS) + "')", dbname=db).strip(), "0")

    def check_orders_match_the_dump(self, c: Client, dumped: dict, token_of: dict):
        for oid, row in dumped.items():
            r = c.get(f"/v1/orders/{oid}", token=token_of[row["user_id"]])
            self.assertEqual(r.status, 200, (oid, r.body))
            self.assertEqual((r.json["id"], r.json["total"]["amount"]), (oid, int(row["total_amount"])))
            if row["status"] != "pending":  # a pending one may have moved on since
                self.assertEqual(r.json["status"], row["status"], oid)

    def check_the_saga_finishes(self):
        psql = self.iso.psql
        wait_for("every order is confirmed or cancelled", lambda: int(psql(
            "SELECT count(*) FROM \"order\".orders WHERE status = 'pending'")) == 0, timeout=90)
        # requests that died with the platform: their claims freed, their stock given back
        wait_for("no order claim is left unanswered", lambda: int(psql(
            "SELECT count(*) FROM \"order\".idempotency_keys WHERE response_status IS NULL")) == 0, timeout=60)

    def check_stock_is_conserved(self, products: list[str]):
        psql = self.iso.psql
        ids = "','".join(products)

        def per_product(sql: str) -> dict:
            return {p: int(n) for p, n in (line.split("|") for line in psql(sql).split())}

        def settled() -> bool:  # releases of cancelled orders go through the saga too
            return per_product(f"SELECT r.product_id, sum(r.quantity) FROM product.reservations r JOIN "
                               f"product.stock_orders s USING (order_id) WHERE s.state = 'reserved' AND "
                               f"r.product_id IN ('{ids}') GROUP BY 1") == confirmed

        confirmed = per_product(f"SELECT i.product_id, sum(i.quantity) FROM \"order\".order_items i JOIN "
                                f"\"order\".orders o ON o.id = i.order_id WHERE o.status = 'confirmed' AND "
                                f"i.product_id IN ('{ids}') GROUP BY 1")
        wait_for("what Product holds reserved is what confirmed orders hold", settled, timeout=60)
        stock = per_product(f"SELECT id, stock FROM product.products WHERE id IN ('{ids}')")
        for p in products:
            self.assertEqual(stock[p], STOCK - confirmed.get(p, 0), f"stock of {p}")

    def check_charged_once(self):
        psql = self.iso.psql
        self.assertEqual(psql("SELECT o.id FROM \"order\".orders o LEFT JOIN payment.payments p ON p.order_id = o.id "
                              "AND p.status = 'succeeded' WHERE o.status = 'confirmed' GROUP BY o.id "
                              "HAVING count(p.order_id) <> 1").strip(), "", "confirmed orders not charged once")
        self.assertEqual(psql("SELECT p.order_id FROM payment.payments p LEFT JOIN \"order\".orders o ON o.id = "
                              "p.order_id WHERE o.id IS NULL").strip(), "", "payments without their order")


if __name__ == "__main__":
    unittest.main()
