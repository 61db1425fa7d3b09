"""A platform of its own for tests that would disturb the shared one: its
own nats-server (JetStream) and its own database in the shared Postgres
(the shared Redis is fine: it holds caches only). Tests that restart a
consumer or deliver notifications elsewhere use one, so the shared
moonport's consumers of the same durables never take their events.

    iso = Isolated().start()
    mp = iso.moonport(roles="notification", extra_config="...")
    ...
    iso.stop()   # stops what it started, drops the database
"""
from __future__ import annotations

import os, shutil, tempfile, uuid

import context
import stack as stacklib
from moonport import ROOT, Moonport


def roles_except(*left_out: str) -> str:
    """Every role this build has (services/<name>/ folders), minus `left_out`."""
    names = sorted(d for d in os.listdir(os.path.join(ROOT, "services"))
                   if os.path.isfile(os.path.join(ROOT, "services", d, d + ".yaml")))
    return ",".join(n for n in names if n not in left_out)


class Isolated:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="moonport-iso-")
        os.chmod(self.root, 0o755)
        shared = context.STACK
        self.nats = stacklib.Stack(self.root, stacklib.free_port(), shared.pg_port, shared.redis_port,
                                   persistent=False)
        self.db = f"mp_iso_{uuid.uuid4().hex[:10]}"
        self.procs: list[Moonport] = []

    def start(self) -> "Isolated":
        self.nats.start_nats()
        context.STACK.psql(f"CREATE DATABASE {self.db} OWNER {stacklib.DB_USER}", superuser=True, dbname="postgres")
        context.STACK.psql("CREATE EXTENSION IF NOT EXISTS pg_trgm", superuser=True, dbname=self.db)
        return self

    @property
    def nats_url(self) -> str:
        """For test clients (natsraw): with the test user's credentials when NATS has per-role users."""
        return self.nats.env()["MP_TEST_NATS_URL"]

    def env(self, roles: str | None = None) -> dict:
        """What a moonport process of this platform needs (its NATS user too, when NATS has per-role users)."""
        dsn = f"host={stacklib.HOST} port={context.STACK.pg_port} dbname={self.db} user={stacklib.DB_USER}"
        users = self.nats.nats_env(roles) if hasattr(self.nats, "nats_env") else {}
        return {"MOONPORT_NATS_URL": f"nats://{stacklib.HOST}:{self.nats.nats_port}", "MOONPORT_POSTGRES_DSN": dsn,
                **users}

    def moonport(self, roles: str | None = None, extra_config: str = "", env: dict | None = None) -> Moonport:
        mp = Moonport(context.STACK, context.BINARY, roles=roles, extra_config=extra_config,
                      env={**self.env(roles), **(env or {})})
        self.procs.append(mp)
        return mp

    def psql(self, sql: str) -> str:
        return context.STACK.psql(sql, dbname=self.db)

    def stop(self) -> None:
        for mp in self.procs:
            mp.stop()
        self.nats.stop_nats()
        context.STACK.psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)", superuser=True, dbname="postgres")
        shutil.rmtree(self.root, ignore_errors=True)
