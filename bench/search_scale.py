"""Search as the catalogue grows: product.v1.list q=lamp (the typo-tolerant
search) straight over NATS with 64 in flight, at each catalogue size in
turn, on the same stack, in the same run. The catalogue is grown with
`moonport seed --products N` (the seed is deterministic, so each size holds
the smaller one), analysed, and warmed before it is measured.

Targets (issue 10): p99 under 50 ms at 100,000 products; p50 growing less
than 3x from 2,400 to 1,000,000.
"""
from __future__ import annotations

import json, time

from services import ceiling  # bench/services.py: mp-ceiling with a signed-in caller

SIZES = (2400, 100_000, 1_000_000)
QUERY = {"q": "lamp"}


def measure(st, mp, build: str, nats_url: str, uid: str, seconds: float, inflight: int,
            sizes: tuple[int, ...] = SIZES) -> list[dict]:
    rows = []
    for n in sizes:
        t0 = time.monotonic()
        r = mp.run("seed", "--products", str(n), timeout=3600)
        if r.returncode:
            raise SystemExit(f"search bench: seed --products {n}: {r.stderr}")
        seeded_s = time.monotonic() - t0
        st.psql("ANALYZE product.products", superuser=True)
        count = int(st.psql("SELECT count(*) FROM product.products").strip())
        body = json.dumps(QUERY)
        ceiling(build, nats_url, "product.v1.list", body, 2, uid, inflight)  # warm-up: the index pages into the cache
        print(f"search: {count} products, q=lamp, {inflight} in flight", flush=True)
        out = ceiling(build, nats_url, "product.v1.list", body, seconds, uid, inflight)
        rows.append({"products": count, "seed_s": seeded_s, **out})
    return rows


def table(rows: list[dict], inflight: int) -> list[str]:
    base = rows[0]["p50_ms"] if rows else 0
    lines = [f"| products | search q=lamp, {inflight} in flight | p50 | p99 | p50 against {rows[0]['products']:,} "
             "| target | seeding took |" if rows else "",
             "|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        target = ("p99 under 50 ms" if r["products"] == 100_000 else
                  "p50 under 3x" if r["products"] >= 1_000_000 else "")
        lines.append(f"| {r['products']:,} | {r['calls_per_s']:.0f}/s | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                     f"| x{r['p50_ms'] / base:.2f} | {target} | {r['seed_s']:.0f} s |")
    return lines
