// The peer: the same BFF compositions written the way a team would without
// moonport — a Node.js BFF with fastify and the `nats` client, one process,
// calling the same subjects over the same NATS. Used only by `make bench`.
"use strict";
const fastify = require("fastify")({ logger: false });
const { connect, JSONCodec, headers } = require("nats");

const jc = JSONCodec();
const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const PORT = Number(process.env.PORT || 8090);

async function main() {
  // nats://user:pass@host:port, as moonport's test stacks hand out: nats.js wants the credentials apart
  const u = new URL(NATS_URL);
  const opts = { servers: `${u.hostname}:${u.port || 4222}`, name: "node-bff" };
  if (u.username) {
    opts.user = decodeURIComponent(u.username);
    opts.pass = decodeURIComponent(u.password);
  }
  const nc = await connect(opts);

  async function call(subject, input, fallback) {
    try {
      const msg = await nc.request(subject, jc.encode(input), { timeout: 2000 });
      return jc.decode(msg.data);
    } catch (err) {
      if (fallback !== undefined) return fallback;
      throw err;
    }
  }

  // ---- against the real services: the web home and search of scripts/lua/web, written in Node ----

  // the caller's id from the bearer token, read WITHOUT verifying its signature: moonport verifies every
  // token, so this is an advantage to Node, stated in docs/benchmarks.md
  function subOf(req) {
    const part = (req.headers.authorization || "").split(".")[1] || "";
    return JSON.parse(Buffer.from(part, "base64url").toString() || "{}").sub;
  }

  async function callAs(sub, subject, input, fallback) {
    try {
      const h = headers();
      h.set("Auth-Sub", sub);
      h.set("Auth-Roles", "user");
      const msg = await nc.request(subject, jc.encode(input), { timeout: 2000, headers: h });
      const status = msg.headers && msg.headers.get("Status");
      if (status && status !== "200") throw new Error(`${subject} answered ${status}`);
      return jc.decode(msg.data);
    } catch (err) {
      if (fallback !== undefined) return fallback;
      throw err;
    }
  }

  // the featured list is cached for 30 s, as the Lua script caches it (cache_s = 30)
  let featuredCache = { at: 0, value: null };
  async function featured(sub) {
    if (featuredCache.value && Date.now() - featuredCache.at < 30000) return featuredCache.value;
    const value = await callAs(sub, "product.v1.list", { tag: "featured", limit: 8 }, { items: [] });
    featuredCache = { at: Date.now(), value };
    return value;
  }

  const card = (p) => ({ id: p.id, name: p.name, price: p.price, image_url: p.image_url, category: p.category });
  const row = (o) => ({ id: o.id, status: o.status, total: o.total, created_at: o.created_at,
                        item_count: o.items.length });

  fastify.get("/bff/real/home", async (req) => {
    const sub = subOf(req);
    const [profile, feat, orders, unread] = await Promise.all([
      callAs(sub, "user.v1.get", { id: sub }),
      featured(sub),
      callAs(sub, "order.v1.list", { limit: 5 }, { items: [] }),
      callAs(sub, "notification.v1.count", { unread: true }, { count: 0 }),
    ]);
    return {
      user: { id: profile.id, name: profile.display_name, avatar: profile.avatar_url, locale: profile.locale },
      featured: feat.items.map(card),
      recent_orders: orders.items.map(row),
      unread_notifications: unread.count,
    };
  });

  fastify.get("/bff/real/search", async (req) => {
    const q = req.query.q;
    const page = await call("product.v1.list", { q, limit: 20 });
    return { query: q, items: page.items.map(card), next_cursor: page.next_cursor ?? null };
  });

  // ---- against the echo responders ----

  fastify.get("/bff/bench/home", async () => {
    const [profile, featured, orders, unread] = await Promise.all([
      call("echo.v1.profile", { id: "u1" }),
      call("echo.v1.featured", { tag: "featured", limit: 8 }, { items: [] }),
      call("echo.v1.orders", { user_id: "u1", limit: 5 }, { items: [] }),
      call("echo.v1.unread", { unread: true }, { items: [] }),
    ]);
    return {
      user: profile.items[0],
      featured: featured.items,
      recent_orders: orders.items,
      unread_notifications: unread.items.length,
    };
  });

  fastify.get("/bff/bench/one", async () => {
    const p = await call("echo.v1.product", { id: "p1" });
    return { product: p.items[0], count: p.items.length };
  });

  await fastify.listen({ port: PORT, host: "127.0.0.1" });
  console.log(`node-bff ready on ${PORT}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
